"""Applying the plan on the emulator: both writers, 409s, DuplicateField, per-SKU failures."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from connector.commercetools import CommercetoolsClient
from job.apply import (
    Done,
    Failed,
    OnResolved,
    Refetch,
    Retry,
    WriteOutcome,
    apply_writes,
    make_writer,
    mutation_document,
    resolve_error,
)
from job.inventory_reads import fetch_channel_less
from job.plan import Create, Entry, Update, Write
from sandbox.commercetools import CommercetoolsEmulator

MODES = ["graphql", "rest"]


def entry_of(emulator: CommercetoolsEmulator, sku: str) -> dict[str, Any]:
    entry_id = emulator.inventory_slots[(sku, None)]
    return emulator.collections["inventory-entry"].items[entry_id]


def seed_entry(emulator: CommercetoolsEmulator, sku: str, quantity: int) -> dict[str, Any]:
    return emulator.create_inventory({"sku": sku, "quantityOnStock": quantity})


async def apply(
    ctp: CommercetoolsClient,
    mode: str,
    writes: Sequence[Write],
    rounds: int = 3,
    stop: Callable[[], bool] = lambda: False,
) -> Any:
    writer = make_writer(ctp, mode, concurrency=4, batch=3)
    refetch = functools.partial(fetch_channel_less, ctp)
    return await apply_writes(writes, writer, refetch, rounds, stop)


@pytest.mark.parametrize("mode", MODES)
async def test_creates_and_updates_are_written(
    mode: str, ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    existing = [seed_entry(ct_emulator, f"U{i}", 1) for i in range(5)]
    writes: list[Write] = [Update(e["sku"], e["id"], e["version"], 7) for e in existing]
    writes += [Create(f"C{i}", i) for i in range(4)]

    result = await apply(ctp, mode, writes)

    assert (result.updated, result.created, result.failed, result.remaining) == (5, 4, [], 0)
    assert [entry_of(ct_emulator, f"U{i}")["quantityOnStock"] for i in range(5)] == [7] * 5
    assert [entry_of(ct_emulator, f"C{i}")["quantityOnStock"] for i in range(4)] == [0, 1, 2, 3]
    counters = ct_emulator.sandbox.counters
    if mode == "graphql":
        assert counters["POST /sandbox/graphql"] == 3  # 9 writes, 3 per request
    else:
        assert counters["POST /sandbox/inventory/{entry_id}"] == 5
        assert counters["POST /sandbox/inventory"] == 4


@pytest.mark.parametrize("mode", MODES)
async def test_a_concurrent_modification_is_retried_at_the_current_version(
    mode: str, ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    entry = seed_entry(ct_emulator, "A", 1)
    planned = Update("A", entry["id"], entry["version"], 9)
    # Someone else (an order reserving stock, another tool) writes the entry meanwhile.
    actions = [{"action": "changeQuantity", "quantity": 4}]
    ct_emulator.update_inventory(entry["id"], {"version": entry["version"], "actions": actions})

    result = await apply(ctp, mode, [planned])

    assert (result.updated, result.failed) == (1, [])
    assert entry_of(ct_emulator, "A")["quantityOnStock"] == 9
    assert entry_of(ct_emulator, "A")["version"] == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("theirs", "updated", "unchanged"), [(3, 1, 0), (5, 0, 1)])
async def test_duplicate_field_on_create_reads_the_entry_and_updates_it(
    mode: str,
    theirs: int,
    updated: int,
    unchanged: int,
    ctp: CommercetoolsClient,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    planned = Create("A", 5)
    seed_entry(ct_emulator, "A", theirs)  # created by someone else after the read
    channel = {"typeId": "channel", "id": "store"}
    ct_emulator.seed_inventory([{"sku": "A", "quantityOnStock": 50, "supplyChannel": channel}])

    result = await apply(ctp, mode, [planned])

    assert (result.created, result.updated, result.unchanged) == (0, updated, unchanged)
    assert entry_of(ct_emulator, "A")["quantityOnStock"] == 5
    assert ct_emulator.inventory_slots[("A", "store")]  # the channel entry is still there
    channel_entry_id = ct_emulator.inventory_slots[("A", "store")]
    assert ct_emulator.collections["inventory-entry"].items[channel_entry_id]["version"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_one_failing_sku_does_not_stop_the_others(
    mode: str, ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    gone = seed_entry(ct_emulator, "GONE", 1)
    ct_emulator.delete_inventory(gone["id"], gone["version"])
    kept = seed_entry(ct_emulator, "KEPT", 1)
    writes = [
        Update("GONE", gone["id"], 1, 5),
        Update("KEPT", kept["id"], 1, 5),
        Create("NEW", 2),
    ]

    result = await apply(ctp, mode, writes)

    assert result.failed == [("GONE", "entry deleted during the sync")]
    assert (result.updated, result.created) == (1, 1)


async def test_a_batch_refused_as_a_whole_fails_its_skus_only(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    assert ct_emulator.graphql is not None
    ct_emulator.graphql.complexity_limit = 5  # one write fits, three do not
    result = await apply(ctp, "graphql", [Create("A", 1), Create("B", 1), Create("C", 1)])
    assert {sku for sku, _ in result.failed} == {"A", "B", "C"}
    assert all("complexity" in reason.lower() for _, reason in result.failed)


async def test_stopping_leaves_the_writes_for_the_next_run(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    result = await apply(ctp, "graphql", [Create("A", 1), Create("B", 1)], stop=lambda: True)
    assert (result.remaining, result.created, result.failed) == (2, 0, [])
    assert ("A", None) not in ct_emulator.inventory_slots


class AlwaysConflicting:
    """A writer whose every attempt meets a conflict without a version to retry at."""

    def __init__(self) -> None:
        self.attempts = 0

    async def write(self, writes: Sequence[Write], record: OnResolved, stop: Any) -> None:
        for write in writes:
            self.attempts += 1
            record(write, Refetch())


async def test_conflicts_are_retried_a_bounded_number_of_rounds() -> None:
    writer = AlwaysConflicting()
    reads: list[list[str]] = []

    async def refetch(skus: Sequence[str]) -> dict[str, Entry]:
        reads.append(list(skus))
        return {"A": Entry("e", len(reads) + 1, 0)}

    result = await apply_writes([Update("A", "e", 1, 5)], writer, refetch, rounds=2)

    assert writer.attempts == 3 and len(reads) == 3
    assert result.failed == [("A", "still conflicting after 2 retries")]


@pytest.mark.parametrize(
    ("write", "errors", "expected"),
    [
        (
            Update("A", "e", 1, 5),
            [{"code": "ConcurrentModification", "currentVersion": 4}],
            Retry(Update("A", "e", 4, 5)),
        ),
        (Update("A", "e", 1, 5), [{"code": "ConcurrentModification"}], Refetch()),
        (Create("A", 5), [{"code": "DuplicateField", "field": "sku"}], Refetch()),
        (
            Update("A", "e", 1, 5),
            [{"code": "ResourceNotFound"}],
            Failed("entry deleted during the sync"),
        ),
        (Create("A", 5), [{"code": "InvalidInput"}], Failed("InvalidInput: bad")),
        (Create("A", 5), [], Failed("error: bad")),
    ],
)
def test_resolve_error(write: Write, errors: list[dict[str, Any]], expected: Any) -> None:
    assert resolve_error(write, errors, "bad") == expected


def test_done_names_the_outcome() -> None:
    assert Done(WriteOutcome.CREATED).outcome == "created"


AWKWARD = ["ümlaut-Größe", "emoji-😀", 'quote"d', "back\\slash", "漢字-1", "new\nline"]


@pytest.mark.parametrize("mode", MODES)
async def test_non_ascii_and_awkward_skus_are_written_as_given(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator, mode: str
) -> None:
    updated = [seed_entry(ct_emulator, f"{sku}-u", 1) for sku in AWKWARD]
    writes: list[Write] = [Create(sku, 4) for sku in AWKWARD]
    writes += [Update(e["sku"], e["id"], e["version"], 9) for e in updated]

    result = await apply(ctp, mode, writes)

    assert (result.created, result.updated, result.failed) == (len(AWKWARD), len(AWKWARD), [])
    assert all(entry_of(ct_emulator, sku)["quantityOnStock"] == 4 for sku in AWKWARD)
    assert all(entry_of(ct_emulator, f"{sku}-u")["quantityOnStock"] == 9 for sku in AWKWARD)


def test_the_mutation_document_carries_no_value() -> None:
    batch: list[Write] = [Create("ümlaut-😀", 3), Update('q"1', "entry-ü", 7, 12)]
    document, variables = mutation_document(batch)
    assert not any(text in document for text in ("ümlaut", "entry-ü", "q\\", '"'))
    assert variables == {
        "d0": {"sku": "ümlaut-😀", "quantityOnStock": 3},
        "id1": "entry-ü",
        "v1": 7,
        "a1": [{"changeQuantity": {"quantity": 12}}],
    }
