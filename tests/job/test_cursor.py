"""The incremental cursor: which export to run, how it moves (never backwards), its storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.commercetools import CommercetoolsClient
from job.cursor import (
    CursorState,
    CursorStore,
    advanced,
    choose_export,
    from_stored,
)
from sandbox.commercetools import CommercetoolsEmulator

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = 24 * 3600


@pytest.mark.parametrize(
    ("state", "expected_cursor", "reason"),
    [
        (CursorState(), None, "no cursor yet"),
        (CursorState(40, None), None, "reconciliation due"),
        (CursorState(40, NOW - timedelta(days=1)), None, "reconciliation due"),
        (CursorState(40, NOW - timedelta(hours=23)), 40, "delta since cursor 40"),
        (CursorState(0, NOW), 0, "delta since cursor 0"),
    ],
)
def test_choose_export(state: CursorState, expected_cursor: int | None, reason: str) -> None:
    choice = choose_export(state, NOW, DAY)
    assert choice.cursor == expected_cursor
    assert reason in choice.reason


@pytest.mark.parametrize(
    ("before", "exported", "after"),
    [
        (None, 12, 12),  # the first full export sets it
        (12, 15, 15),
        (15, 15, 15),  # a quiet delta reports the same position
        (15, 0, 15),  # an empty delta may report 0: never backwards
        (15, 9, 15),
        (15, None, 15),  # a finished export without a cursor moves nothing
        (None, None, None),
    ],
)
def test_the_cursor_never_moves_backwards(
    before: int | None, exported: int | None, after: int | None
) -> None:
    assert advanced(CursorState(before), exported, False, NOW).last_updated_at == after


def test_only_a_full_export_records_a_reconciliation() -> None:
    earlier = NOW - timedelta(hours=3)
    state = CursorState(5, earlier, version=3)
    assert advanced(state, 6, False, NOW) == CursorState(6, earlier, 3)
    assert advanced(state, 6, True, NOW) == CursorState(6, NOW, 3)


@pytest.mark.parametrize(
    "value",
    [{}, {"last_updated_at": "12"}, {"last_updated_at": True}, "junk"],
)
def test_an_unreadable_cursor_counts_as_none(value: object) -> None:
    state = from_stored({"version": 4, "value": value})
    assert (state.last_updated_at, state.full_reconciled_at, state.version) == (None, None, 4)


async def test_stored_and_read_back_with_optimistic_concurrency(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    store = CursorStore(ctp, "jobs")
    assert await store.load() == CursorState()

    assert await store.save(CursorState(41, NOW))
    stored = await store.load()
    assert (stored.last_updated_at, stored.full_reconciled_at, stored.version) == (41, NOW, 1)
    value = ct_emulator.get_custom_object("jobs", "inventory-cursor")["value"]
    assert value == {"last_updated_at": 41, "full_reconciled_at": NOW.isoformat(), "failing": {}}

    assert await store.save(advanced(stored, 50, False, NOW))
    # a writer that read before that save must not overwrite it
    assert not await store.save(advanced(stored, 45, False, NOW))
    assert (await store.load()).last_updated_at == 50
