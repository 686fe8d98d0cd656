"""A client-side rate limit for one upstream, applied to every HTTP attempt.

NewStore allows about 200 calls/s on a production tenant and 100 on a development one, and
answers `429` with `Retry-After` beyond that. A token bucket (aiolimiter) keeps a steady pace
below the limit, and a 429 pauses *every* request of the client until its `Retry-After` has
passed: retrying only the refused call while the others keep going would earn more 429s.

It hooks into httpx's request/response events, so it applies to each attempt that the
shared tenacity retries make (and to token requests, auth resends and export downloads: all
go through the same `httpx.AsyncClient`) without a second retry loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from connector.http import retry_after_seconds

# The bucket holds a tenth of a second of calls: a burst at the start stays small.
BURST_WINDOW_S = 0.1
DEFAULT_PAUSE_S = 1.0


class RateGate:
    def __init__(
        self,
        calls_per_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        capacity = max(1.0, calls_per_s * BURST_WINDOW_S)
        self._limiter = AsyncLimiter(capacity, capacity / calls_per_s)
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self.pauses = 0

    async def before_request(self, _: httpx.Request) -> None:
        while (delay := self._paused_until - self._clock()) > 0:
            await self._sleep(delay)
        await self._limiter.acquire()

    async def after_response(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        pause = retry_after_seconds(response)
        until = self._clock() + (DEFAULT_PAUSE_S if pause is None else pause)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    def event_hooks(self) -> dict[str, list[Any]]:
        """For `httpx.AsyncClient(event_hooks=...)`."""
        return {"request": [self.before_request], "response": [self.after_response]}
