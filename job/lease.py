"""A lease (an expiring lock) kept in a commercetools Custom Object.

Connect provides no lock against overlapping job runs, so a run takes a lease first:

- Acquire: read the object; if it is absent, create it with `version: 0` (create only if
  absent); if it is present but expired (or released), overwrite it with its current
  `version`. Either write fails with `ConcurrentModification` when another run got there
  first, so exactly one of several racing runs wins.
- Renew: the holder rewrites it with its version every third of the lease duration, so a
  crashed run blocks the next ones for at most one lease duration.
- Release: the holder marks it expired (keeping the last run's summary in the value, which
  makes the object a small audit trail).

`expires_at` is wall-clock time (`time.time()`) because the runs may be on different
machines; the lease duration must be much larger than their clock skew.

Trust (fencing): a holder may start a write only if that write, however long it takes,
ends before the expiry it last wrote. `inflight_s` is the longest a write can take: one
attempt's timeouts plus the retry budget (`job.sync.LONGEST_CALL_S`). So `held()` is true
only while `now + inflight_s < expires_at`, and every write batch asks it first: even a run
whose renewals stall or fail never has a write in flight once another run may take over.
For renewals to keep it trusted, the duration must leave room for a stalled renewal
(`minimum_duration`). A renewal that fails in any way (refused, conflicting, an upstream
error after its retries, or any other exception) ends the trust at once: the run stops
starting work and reports why (`stop_reason`), and the failure is never raised over the
run's own result.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from connector.clock import now_iso
from connector.commercetools import CommercetoolsClient, CommercetoolsError
from connector.http import UpstreamError

log = structlog.get_logger("lease")

# Of the lease duration: renew this often.
RENEW_EVERY = 1 / 3
LOST = "lease_lost"  # another run took it over
RENEWAL_FAILED = "lease_renewal_failed"
EXPIRING = "lease_expiring"  # a write started now might outlive it


def minimum_duration(inflight_s: float) -> float:
    """The shortest lease that renewals keep trusted when each renewal may itself take up
    to `inflight_s`: after a renewal that started at t (its expiry: t + d), the next one
    starts at most `inflight_s + d/3` later and takes up to `inflight_s` more; trust must
    last until then: `d - inflight_s > 2 * inflight_s + d / 3`, so `d > 4.5 * inflight_s`."""
    return 3 * inflight_s / (1 - RENEW_EVERY)


class Lease:
    def __init__(
        self,
        ctp: CommercetoolsClient,
        container: str,
        key: str,
        duration_s: float,
        clock: Callable[[], float] = time.time,
        inflight_s: float | None = None,
        renew_every_s: float | None = None,
    ) -> None:
        """`inflight_s`: the longest a write may take (default: a fifth of the duration);
        `renew_every_s`: how often to renew (default: a third of the duration)."""
        self.ctp = ctp
        self.container = container
        self.key = key
        self.duration_s = duration_s
        self.clock = clock
        self.inflight_s = duration_s / 5 if inflight_s is None else inflight_s
        self.renew_every_s = duration_s * RENEW_EVERY if renew_every_s is None else renew_every_s
        self.holder = f"{socket.gethostname()}/{uuid.uuid4()}"
        self.lost = False
        self.renew_error: str | None = None  # why a renewal failed, once one has
        self._version: int | None = None
        self._expires_at = 0.0
        self.other: dict[str, Any] | None = None  # who holds it, when acquiring failed

    def held(self) -> bool:
        """True while this run may start a write: one that ends before the lease can."""
        return self.stop_reason() is None

    def stop_reason(self) -> str | None:
        """None while the lease is trusted; otherwise why not."""
        if self.lost:
            return LOST
        if self.renew_error is not None:
            return RENEWAL_FAILED
        if self._version is None or self.clock() + self.inflight_s >= self._expires_at:
            return EXPIRING
        return None

    async def acquire(self) -> bool:
        stored = await self.ctp.get_custom_object(self.container, self.key)
        if stored is not None and self._taken(stored["value"]):
            self.other = stored["value"]
            return False
        version = stored["version"] if stored is not None else 0
        return await self._write(version, self._held_value())

    async def renew(self) -> bool:
        """Extend the lease; False (and `lost`) when another run has taken it over."""
        if self._version is None or self.lost:
            return False
        if not await self._write(self._version, self._held_value()):
            self.lost = True
        return not self.lost

    async def release(self, last_run: dict[str, Any] | None = None) -> None:
        if self._version is None or self.lost:
            return
        value = {"released_at": now_iso(), "expires_at": 0, "last_run": last_run}
        try:
            await self._write(self._version, value)
        except UpstreamError as error:
            # Not fatal: the lease expires by itself.
            log.warning("lease release failed", key=self.key, error=str(error))
        self._version = None

    @contextlib.asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[Lease]:
        """Renew in the background while the block runs."""
        task = asyncio.create_task(self._renew_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_forever(self) -> None:
        """Renew until the block ends. Any failure ends the trust and this task, and is
        recorded, never raised: the run stops starting work and reports it."""
        while self.stop_reason() is None:
            await asyncio.sleep(self.renew_every_s)
            try:
                if not await self.renew():
                    log.error("lease taken over by another run: stopping", key=self.key)
                    return
            except Exception as error:  # any failure stops the run, cleanly
                message = str(error) if isinstance(error, UpstreamError) else repr(error)
                self.renew_error = message[:300]
                log.error("lease renewal failed: stopping", key=self.key, error=self.renew_error)
                return

    def _taken(self, value: dict[str, Any]) -> bool:
        expires_at = float(value.get("expires_at") or 0)
        return value.get("holder") != self.holder and expires_at > self.clock()

    def _held_value(self) -> dict[str, Any]:
        expires_at = self.clock() + self.duration_s
        return {"holder": self.holder, "expires_at": expires_at, "renewed_at": now_iso()}

    async def _write(self, version: int, value: dict[str, Any]) -> bool:
        """Write at `version`; False when another writer got there first."""
        try:
            stored = await self.ctp.put_custom_object(self.container, self.key, value, version)
        except CommercetoolsError as error:
            if "ConcurrentModification" not in error.codes:
                raise
            return await self._written_by_us_anyway(value)
        self._remember(stored)
        return True

    async def _written_by_us_anyway(self, value: dict[str, Any]) -> bool:
        """A write whose answer was lost and was retried conflicts with itself: the object
        then already carries our value."""
        stored = await self.ctp.get_custom_object(self.container, self.key)
        if stored is None or stored["value"].get("holder") != value.get("holder"):
            return False
        if stored["value"].get("expires_at") != value.get("expires_at"):
            return False
        self._remember(stored)
        return True

    def _remember(self, stored: dict[str, Any]) -> None:
        self._version = int(stored["version"])
        self._expires_at = float(stored["value"].get("expires_at") or 0)
