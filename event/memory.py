"""What one process remembers about recent orders, to save requests, never for correctness.

Bounded in size and age. Losing it (a restart, another instance) costs requests only:
exactly-once rests on NewStore's idempotency on `external_id`, and the durable state is in
the records.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RecentlySeen(Generic[T]):
    """A value per order id, forgotten after `ttl_s` or when more than `max_orders` are kept
    (the oldest first)."""

    def __init__(
        self,
        ttl_s: float,
        max_orders: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_orders = max_orders
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def get(self, order_id: str) -> T | None:
        entry = self._entries.get(order_id)
        if entry is None:
            return None
        if self._clock() - entry[0] > self.ttl_s:
            del self._entries[order_id]
            return None
        return entry[1]

    def add(self, order_id: str, value: T) -> None:
        self._entries[order_id] = (self._clock(), value)
        self._entries.move_to_end(order_id)
        while len(self._entries) > self.max_orders:
            self._entries.popitem(last=False)

    def forget(self, order_id: str) -> None:
        self._entries.pop(order_id, None)

    def clear(self) -> None:
        self._entries.clear()


class SharedWork(Generic[T]):
    """One piece of work per order at a time: concurrent deliveries of one order await the
    same task, and a result that `settled` accepts is kept in `recent`, so that a late
    duplicate costs nothing. The task is shielded: a delivery that gives up (its request
    cancelled) leaves the work running for the others."""

    def __init__(self, recent: RecentlySeen[T], settled: Callable[[T], bool]) -> None:
        self.recent = recent
        self.settled = settled
        self._in_flight: dict[str, asyncio.Task[T]] = {}

    async def run(self, order_id: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        done = self.recent.get(order_id)
        if done is not None:
            return done
        task = self._in_flight.get(order_id)
        if task is None:
            task = asyncio.create_task(work())
            self._in_flight[order_id] = task
            task.add_done_callback(lambda _: self._in_flight.pop(order_id, None))
        result = await asyncio.shield(task)
        if self.settled(result):
            self.recent.add(order_id, result)
        return result
