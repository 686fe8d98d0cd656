"""The inbox: events the receiver could not apply at once, kept durably in commercetools
Custom Objects (container `LIFECYCLE_INBOX_CONTAINER`, key = event name + idempotency key, so
a redelivery of a waiting event overwrites its own entry instead of adding one).

The job drains it on every run (`newstore-connector lifecycle drain` does the same by hand):
each entry is applied again; applied (or found unchanged) -> deleted; deferred again ->
attempts + 1, the reason kept; after `LIFECYCLE_INBOX_MAX_ATTEMPTS` an entry is parked:
kept with `status: parked`, skipped by later drains, listed by `lifecycle inbox` and
retried by `lifecycle drain --parked` or deleted by `lifecycle dismiss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from connector.commercetools import CommercetoolsClient, CommercetoolsError
from connector.http import UpstreamError
from lifecycle.apply import Deferred, LifecycleApplier
from lifecycle.events import LifecycleEvent, parse_event

log = structlog.get_logger("lifecycle.inbox")
Json = dict[str, Any]
WAITING, PARKED = "waiting", "parked"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DrainReport:
    applied: int = 0
    unchanged: int = 0
    waiting: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> Json:
        body: Json = {
            "applied": self.applied,
            "unchanged": self.unchanged,
            "waiting": self.waiting,
            "parked": self.parked,
        }
        if self.errors:
            body["errors"] = self.errors[:10]
        return body


class Inbox:
    def __init__(self, ctp: CommercetoolsClient, container: str, max_attempts: int) -> None:
        self.ctp = ctp
        self.container = container
        self.max_attempts = max_attempts

    async def put(self, event: LifecycleEvent, reason: str) -> None:
        """Store the event; raises UpstreamError when commercetools cannot take it (the
        receiver then answers 5xx, so that NewStore keeps the event)."""
        value = {
            "event": event.body,
            "status": WAITING,
            "reason": reason,
            "attempts": 0,
            "queued_at": _now(),
        }
        await self.ctp.put_custom_object(self.container, event.inbox_key, value)

    async def entries(self, limit: int = 500) -> list[Json]:
        return await self.ctp.query_custom_objects(self.container, limit=limit, sort="key asc")

    async def dismiss(self, key: str) -> bool:
        return await self.ctp.delete_custom_object(self.container, key) is not None

    async def drain(
        self, applier: LifecycleApplier, *, limit: int = 500, parked_too: bool = False
    ) -> DrainReport:
        report = DrainReport()
        for entry in await self.entries(limit):
            value = entry.get("value") or {}
            if value.get("status") == PARKED and not parked_too:
                report.parked += 1
                continue
            event = parse_event(value.get("event"))
            if event is None:
                await self._park(entry, value, "not_an_event", report)
                continue
            try:
                result = await applier.apply(event)
            except Deferred as deferred:
                await self._again(entry, value, deferred.reason, report)
                continue
            except UpstreamError as error:  # e.g. the inbox itself unreachable mid-drain
                report.errors.append(str(error)[:200])
                break
            if result.outcome == "applied":
                report.applied += 1
            else:
                report.unchanged += 1
            await self._remove(entry, report)
        return report

    async def _again(self, entry: Json, value: Json, reason: str, report: DrainReport) -> None:
        attempts = int(value.get("attempts") or 0) + 1
        if attempts >= self.max_attempts:
            await self._park(entry, value, reason, report)
            return
        value = {**value, "attempts": attempts, "reason": reason, "last_attempt_at": _now()}
        report.waiting += 1
        await self._write(entry, value, report)

    async def _park(self, entry: Json, value: Json, reason: str, report: DrainReport) -> None:
        log.error("lifecycle event parked", key=entry.get("key"), reason=reason)
        value = {**value, "status": PARKED, "reason": reason, "last_attempt_at": _now()}
        report.parked += 1
        await self._write(entry, value, report)

    async def _write(self, entry: Json, value: Json, report: DrainReport) -> None:
        try:
            await self.ctp.put_custom_object(
                self.container, entry["key"], value, version=entry["version"]
            )
        except CommercetoolsError as error:
            # A redelivery rewrote the entry meanwhile: its next drain sees the new one.
            if "ConcurrentModification" not in error.codes:
                report.errors.append(str(error)[:200])

    async def _remove(self, entry: Json, report: DrainReport) -> None:
        try:
            await self.ctp.delete_custom_object(
                self.container, entry["key"], version=entry["version"]
            )
        except CommercetoolsError as error:
            if "ConcurrentModification" not in error.codes:
                report.errors.append(str(error)[:200])
