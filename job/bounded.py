"""Bounded concurrency for the job's many independent requests, and its progress hooks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


def never() -> bool:
    return False


async def for_each(
    items: Iterable[T],
    action: Callable[[T], Awaitable[None]],
    concurrency: int,
    stop: Callable[[], bool] = never,
) -> None:
    """Run `action` on every item, at most `concurrency` at a time, in item order.

    A fixed pool of workers pulls from one shared iterator (so a million items never become
    a million tasks), and no worker starts an item once `stop()` is true. An exception in
    one action cancels the others and propagates: actions that must not abort the batch
    catch their own errors.
    """
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # next() never awaits, so two workers never take one item
            if stop():
                return
            await action(item)

    await together(*(worker() for _ in range(concurrency)))


async def together(*coroutines: Awaitable[Any]) -> list[Any]:
    """Await all; the first failure cancels the rest and is raised as itself (callers handle
    one error, such as an upstream that is down, not an ExceptionGroup)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(coroutine)) for coroutine in coroutines]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (itertools.batched is Python 3.12+)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Progress(Protocol):
    """What the sync reports as it goes (the CLI draws bars from it)."""

    def start(self, phase: str, total: int | None) -> None: ...

    def advance(self, phase: str, amount: int = 1) -> None: ...


class NoProgress:
    def start(self, phase: str, total: int | None) -> None:
        pass

    def advance(self, phase: str, amount: int = 1) -> None:
        pass
