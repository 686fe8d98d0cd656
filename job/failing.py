"""SKUs that commercetools keeps refusing: kept, retried on every run, never a stalled cursor.

A write that fails (a validation error on one SKU, or commercetools down for part of a run)
must neither be lost nor hold the incremental cursor back: one SKU refused for good would
otherwise make every later run export everything since that point, each reporting `ok`.
So the cursor advances once every write was *attempted*, and the SKUs whose write failed
are kept, with the quantity they should get and why they failed, in the same Custom Object
as the cursor (`job.cursor`: one version-checked write records both, so neither can be
lost without the other). Every later run retries them:

- a delta adds them to its own SKUs, at the kept quantity (a newer one in the delta wins:
  NewStore's ATP of a SKU absent from the delta has not changed since it was kept);
- a full export or a full read covers every SKU anyway.

A SKU leaves the list once a run gets it right (written, already right, or no longer a
product or no longer stocked by NewStore: nothing left to write). While the list is not
empty, the run's status is `degraded`: it lists the SKUs and reasons and logs at ERROR.

Pure functions; the I/O is the cursor's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from job.bounded import Progress
from job.sources import StockSnapshot, StockSource

# More failing SKUs than this are not recorded (the Custom Object stays small: about 150
# bytes a SKU); the cursor then stays where it is, so that none is lost.
MAX_FAILING = 10_000


@dataclass(frozen=True, slots=True)
class FailingSku:
    quantity: int  # the quantity the entry should hold
    reason: str
    since: str  # ISO time of the first failure in a row


Failing = Mapping[str, FailingSku]


def retry_into(atp: dict[str, int], failing: Failing) -> int:
    """Add the failing SKUs that a delta does not carry, at their kept quantity; answer
    how many were added."""
    added = 0
    for sku, kept in failing.items():
        if sku not in atp:
            atp[sku] = kept.quantity
            added += 1
    return added


def still_failing(
    failed: Iterable[tuple[str, str]], targets: Mapping[str, int], previous: Failing, now: str
) -> dict[str, FailingSku]:
    """The list after a run that attempted every write: exactly this run's failures (every
    kept SKU was retried, so one that did not fail again is done). `since` carries over for
    a SKU that keeps failing; `targets`: the quantity each failed write wanted."""
    result: dict[str, FailingSku] = {}
    for sku, reason in failed:
        earlier = previous.get(sku)
        quantity = targets.get(sku, earlier.quantity if earlier else 0)
        result[sku] = FailingSku(quantity, reason[:300], earlier.since if earlier else now)
    return result


def to_value(failing: Failing) -> dict[str, Any]:
    return {
        sku: {"quantity": kept.quantity, "reason": kept.reason, "since": kept.since}
        for sku, kept in sorted(failing.items())
    }


def from_value(value: Any) -> dict[str, FailingSku]:
    """The stored list; an entry that cannot be read is dropped (the next full export
    covers its SKU)."""
    if not isinstance(value, dict):
        return {}
    result: dict[str, FailingSku] = {}
    for sku, kept in value.items():
        if not isinstance(kept, dict):
            continue
        quantity = kept.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            continue
        result[str(sku)] = FailingSku(quantity, str(kept.get("reason")), str(kept.get("since")))
    return result


def listed(failing: Failing, limit: int) -> list[dict[str, Any]]:
    """The list as the reply shows it."""
    return [
        {"sku": sku, "reason": kept.reason, "since": kept.since}
        for sku, kept in sorted(failing.items())[:limit]
    ]


class RetryingFailing:
    """A `StockSource` that adds the failing SKUs to the delta it reads (a full read
    already holds every SKU)."""

    def __init__(self, inner: StockSource, failing: Failing) -> None:
        self.inner = inner
        self.failing = failing
        self.delta = inner.delta
        self.retried = 0

    async def read(self, progress: Progress, stop: Callable[[], bool]) -> StockSnapshot:
        snapshot = await self.inner.read(progress, stop)
        if snapshot.complete and self.delta:
            snapshot.atp = atp = dict(snapshot.atp)  # a delta's: small
            self.retried = retry_into(atp, self.failing)
        return snapshot
