"""The sync plan: exhaustive table tests, and properties over generated states."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.plan import (
    Create,
    Entry,
    Plan,
    Update,
    channel_less_entries,
    plan_sync,
    recompute,
    sample_changes,
    skus_without_entry,
)

E1 = Entry("id-1", 3, 10)


# (name, atp, entries, product skus, expected plan)
CASES: list[tuple[str, dict[str, int], dict[str, Entry], set[str], Plan]] = [
    ("nothing at all", {}, {}, set(), Plan()),
    ("equal quantity", {"A": 10}, {"A": E1}, set(), Plan(unchanged=1)),
    (
        "different quantity: update at the entry's version",
        {"A": 7},
        {"A": E1},
        set(),
        Plan(updates=[Update("A", "id-1", 3, 7)]),
    ),
    (
        "update does not need a product",
        {"A": 11},
        {"A": E1},
        {"B"},
        Plan(updates=[Update("A", "id-1", 3, 11)]),
    ),
    ("no entry, a product: create", {"A": 4}, {}, {"A"}, Plan(creates=[Create("A", 4)])),
    ("no entry, no product: skip", {"A": 4}, {}, set(), Plan(skipped_no_product=1)),
    (
        "no entry, zero stock, a product: create 0",
        {"A": 0},
        {},
        {"A"},
        Plan(creates=[Create("A", 0)]),
    ),
    (
        "negative aggregate, entry at 0: unchanged, counted",
        {"A": -3},
        {"A": Entry("id-1", 1, 0)},
        set(),
        Plan(unchanged=1, negative_clamped=1),
    ),
    (
        "negative aggregate, entry above 0: written as 0",
        {"A": -3},
        {"A": E1},
        set(),
        Plan(updates=[Update("A", "id-1", 3, 0)], negative_clamped=1),
    ),
    (
        "negative aggregate, no entry, a product: created at 0",
        {"A": -1},
        {},
        {"A"},
        Plan(creates=[Create("A", 0)], negative_clamped=1),
    ),
    (
        "negative aggregate, no entry, no product: skipped, counted",
        {"A": -1},
        {},
        set(),
        Plan(skipped_no_product=1, negative_clamped=1),
    ),
    (
        "entry of a SKU NewStore does not stock: left alone, counted",
        {},
        {"A": E1},
        {"A"},
        Plan(not_in_newstore=1),
    ),
    (
        "every case at once, output sorted by SKU",
        {"D": 1, "C": 5, "B": 10, "A": 2, "E": 3},
        {"B": E1, "A": Entry("id-a", 1, 1), "Z": Entry("id-z", 1, 1)},
        {"C", "D"},
        Plan(
            updates=[Update("A", "id-a", 1, 2)],
            creates=[Create("C", 5), Create("D", 1)],
            unchanged=1,
            skipped_no_product=1,
            not_in_newstore=1,
        ),
    ),
]


@pytest.mark.parametrize(
    ("atp", "entries", "products", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan_table(
    atp: dict[str, int], entries: dict[str, Entry], products: set[str], expected: Plan
) -> None:
    assert plan_sync(atp, entries, products) == expected


def test_only_skus_without_entry_need_a_product_check() -> None:
    assert skus_without_entry({"B": 1, "A": 2, "C": 0}, {"C": E1}) == ["A", "B"]


def test_entries_compare_quantity_on_stock_not_available_quantity() -> None:
    """The seed's trap: with a reservation the two differ; only quantityOnStock is written."""
    entries: dict[str, Entry] = {}
    reserved = {"id": "e", "version": 2, "sku": "A", "quantityOnStock": 10, "availableQuantity": 8}
    channel_less_entries([reserved], entries)
    assert entries == {"A": Entry("e", 2, 10)}
    assert plan_sync({"A": 10}, entries, set()) == Plan(unchanged=1)


def test_entries_with_a_supply_channel_are_never_indexed() -> None:
    entries: dict[str, Entry] = {}
    channel = {"typeId": "channel", "id": "store"}
    results = [
        {"id": "c", "version": 1, "sku": "A", "quantityOnStock": 5, "supplyChannel": channel},
        {"id": "n", "version": 1, "sku": "B", "quantityOnStock": 5},
    ]
    channel_less_entries(results, entries)
    assert entries == {"B": Entry("n", 1, 5)}


@pytest.mark.parametrize(
    ("write", "current", "expected"),
    [
        (Update("A", "e", 1, 5), Entry("e", 4, 2), Update("A", "e", 4, 5)),
        (Update("A", "e", 1, 5), Entry("e", 4, 5), None),
        (Create("A", 5), Entry("x", 1, 3), Update("A", "x", 1, 5)),
        (Create("A", 5), Entry("x", 1, 5), None),
        (Create("A", 5), None, Create("A", 5)),
    ],
)
def test_recompute_after_reading_the_entry_again(
    write: Update | Create, current: Entry | None, expected: Update | Create | None
) -> None:
    assert recompute(write, current) == expected


def test_sample_shows_what_each_write_replaces() -> None:
    entries = {"A": E1}
    plan = plan_sync({"A": 3, "B": 4}, entries, {"B"})
    assert sample_changes(plan, entries, 5) == [
        {"sku": "A", "action": "update", "from": 10, "to": 3},
        {"sku": "B", "action": "create", "from": None, "to": 4},
    ]


# --- properties ---------------------------------------------------------------------------

SKUS = [f"sku-{i}" for i in range(12)]


@st.composite
def states(draw: st.DrawFn) -> tuple[dict[str, int], list[dict[str, Any]], set[str]]:
    """(aggregate ATP, raw commercetools entries with and without channels, product SKUs)."""
    atp = draw(st.dictionaries(st.sampled_from(SKUS), st.integers(-5, 30)))
    raw: list[dict[str, Any]] = []
    for index, sku in enumerate(draw(st.sets(st.sampled_from(SKUS)))):
        quantity = draw(st.integers(-3, 30))
        reserved = draw(st.integers(0, 3))
        raw.append(_entry(f"plain-{index}", sku, quantity, reserved))
    for index, sku in enumerate(draw(st.sets(st.sampled_from(SKUS)))):
        channel = {"typeId": "channel", "id": f"store-{draw(st.integers(0, 2))}"}
        raw.append(
            {**_entry(f"chan-{index}", sku, draw(st.integers(0, 9)), 0), "supplyChannel": channel}
        )
    products = draw(st.sets(st.sampled_from(SKUS)))
    return atp, raw, products


def _entry(entry_id: str, sku: str, quantity: int, reserved: int) -> dict[str, Any]:
    return {
        "id": entry_id,
        "version": 1,
        "sku": sku,
        "quantityOnStock": quantity,
        "availableQuantity": quantity - reserved,
    }


def apply_plan(raw: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """What commercetools would hold after the plan's writes (a model of the API)."""
    state = {entry["id"]: copy.deepcopy(entry) for entry in raw}
    for update in plan.updates:
        entry = state[update.entry_id]
        assert entry["version"] == update.version and entry["sku"] == update.sku
        reserved = entry["quantityOnStock"] - entry["availableQuantity"]
        entry.update(quantityOnStock=update.quantity, availableQuantity=update.quantity - reserved)
        entry["version"] += 1
    for create in plan.creates:
        clash = [e for e in state.values() if e["sku"] == create.sku and "supplyChannel" not in e]
        assert not clash, "a create would fail with DuplicateField"
        state[f"new-{create.sku}"] = _entry(f"new-{create.sku}", create.sku, create.quantity, 0)
    return list(state.values())


def plan_for(atp: dict[str, int], raw: list[dict[str, Any]], products: set[str]) -> Plan:
    entries: dict[str, Entry] = {}
    channel_less_entries(raw, entries)
    return plan_sync(atp, entries, products)


@settings(max_examples=300, deadline=None)
@given(states())
def test_applying_the_plan_reaches_the_target(state: Any) -> None:
    atp, raw, products = state
    after = apply_plan(raw, plan_for(atp, raw, products))
    channel_less = {e["sku"]: e["quantityOnStock"] for e in after if "supplyChannel" not in e}
    had_entry = {e["sku"] for e in raw if "supplyChannel" not in e}
    for sku, aggregate in atp.items():
        if sku in had_entry or sku in products:
            assert channel_less[sku] == max(aggregate, 0)
        else:
            assert sku not in channel_less
    for sku in had_entry - set(atp):  # not stocked by NewStore: untouched
        before = next(e for e in raw if e["sku"] == sku and "supplyChannel" not in e)
        assert channel_less[sku] == before["quantityOnStock"]


@settings(max_examples=300, deadline=None)
@given(states())
def test_planning_again_on_the_result_plans_nothing(state: Any) -> None:
    atp, raw, products = state
    after = apply_plan(raw, plan_for(atp, raw, products))
    assert plan_for(atp, after, products).writes == []


@settings(max_examples=300, deadline=None)
@given(states())
def test_channel_entries_are_never_touched(state: Any) -> None:
    atp, raw, products = state
    plan = plan_for(atp, raw, products)
    channel_ids = {e["id"] for e in raw if "supplyChannel" in e}
    assert not channel_ids & {update.entry_id for update in plan.updates}
    after = apply_plan(raw, plan)
    assert [e for e in after if "supplyChannel" in e] == [e for e in raw if "supplyChannel" in e]


@settings(max_examples=300, deadline=None)
@given(states())
def test_every_stocked_sku_is_accounted_for_once(state: Any) -> None:
    atp, raw, products = state
    plan = plan_for(atp, raw, products)
    counted = len(plan.updates) + len(plan.creates) + plan.unchanged + plan.skipped_no_product
    assert counted == len(atp)
    assert plan.negative_clamped == sum(1 for value in atp.values() if value < 0)
