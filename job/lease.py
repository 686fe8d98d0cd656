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
machines; the lease duration must be much larger than their clock skew. A holder treats its
lease as lost a little *before* the expiry it wrote (`SAFETY_MARGIN`), so that a run whose
renewals fail stops writing before anyone else can take over.
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

# Of the lease duration: stop trusting the lease this early, renew this often.
SAFETY_MARGIN = 0.2
RENEW_EVERY = 1 / 3


class Lease:
    def __init__(
        self,
        ctp: CommercetoolsClient,
        container: str,
        key: str,
        duration_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctp = ctp
        self.container = container
        self.key = key
        self.duration_s = duration_s
        self.clock = clock
        self.holder = f"{socket.gethostname()}/{uuid.uuid4()}"
        self.lost = False
        self._version: int | None = None
        self._expires_at = 0.0
        self.other: dict[str, Any] | None = None  # who holds it, when acquiring failed

    def held(self) -> bool:
        """True while this run may still act under the lease."""
        if self._version is None or self.lost:
            return False
        return self.clock() < self._expires_at - SAFETY_MARGIN * self.duration_s

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
        while not self.lost:
            await asyncio.sleep(self.duration_s * RENEW_EVERY)
            try:
                await self.renew()
            except UpstreamError as error:
                # Keep trying: `held()` turns false on its own if renewals keep failing.
                log.warning("lease renewal failed", key=self.key, error=str(error))

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
