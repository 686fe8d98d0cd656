"""The compact state of a full export (job/stocktable.py) plans and buckets exactly as the
dicts do: the same plan as `plan_sync`, the same per-node buckets as `full_buckets`."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.commercetools import InventoryRow
from job.export import ExportFailed, ExportRow, read_export_file
from job.nodes import Stored, canonical, digest, full_buckets, table_buckets
from job.plan import Entry, plan_sync, skus_without_entry
from job.stocktable import (
    ATP_LIMIT,
    MAX_NODES,
    StockTable,
    plan_table,
    table_entries,
    unpacked,
)
from job.stocktable import skus_without_entry as table_skus_without_entry

skus = st.sampled_from([f"SKU-{i}" for i in range(40)] + ["é-ü", 'q"uote', "back\\slash"])
nodes = st.sampled_from(["DC01", "STORE01", "STORE02", ""])
rows = st.lists(
    st.tuples(skus, st.sampled_from(["P1", "P2", None]), nodes, st.integers(-5, 30)), max_size=60
)
entry_ids = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=8))
entries = st.dictionaries(
    skus, st.tuples(entry_ids, st.integers(1, 9), st.integers(0, 30)), max_size=30
)


def export_rows(*rows: tuple[str, str | None, str, int]) -> list[ExportRow]:
    """Rows as an export file holds them (the SKU in the external identifiers)."""
    shaped = [
        {
            "product_id": product,
            "fulfillment_node_id": node,
            "atp": atp,
            "external_identifiers": [{"identifiers": {"sku": sku}}],
        }
        for sku, product, node, atp in rows
    ]
    return msgspec.convert(shaped, list[ExportRow])


def page_of(found: dict[str, tuple[str, int, int]]) -> list[InventoryRow]:
    return [InventoryRow(entry_id, v, sku, q) for sku, (entry_id, v, q) in found.items()]


def table_of(
    stock: list[tuple[str, str | None, str, int]],
    found: dict[str, tuple[str, int, int]],
    entries_first: bool,
) -> StockTable:
    """Both reads fill one table, in either order (they run side by side)."""
    table = StockTable()
    unique = {(row[1] or row[0], row[2]): row for row in stock}  # (product, node) once
    steps = [
        lambda: table.add_export_rows(export_rows(*unique.values()), by_sku=True),
        lambda: table.add_entries(page_of(found)),
    ]
    for step in reversed(steps) if entries_first else steps:
        step()
    return table


def dicts_of(table: StockTable) -> tuple[dict[str, int], dict[str, Entry]]:
    return dict(table.totals_view()), table_entries(table, table.index)


@settings(max_examples=300, deadline=None)
@given(stock=rows, found=entries, entries_first=st.booleans(), products=st.sets(skus))
def test_the_table_plans_exactly_as_the_dicts(
    stock: list[tuple[str, str | None, str, int]],
    found: dict[str, tuple[str, int, int]],
    entries_first: bool,
    products: set[str],
) -> None:
    table = table_of(stock, found, entries_first)
    atp, by_sku = dicts_of(table)
    assert by_sku == {sku: Entry(*entry) for sku, entry in found.items()}  # ids round trip
    assert table_skus_without_entry(table) == skus_without_entry(atp, by_sku)
    assert plan_table(table, products) == plan_sync(atp, by_sku, products)


@settings(max_examples=200, deadline=None)
@given(stock=rows, old=rows)
def test_the_table_buckets_exactly_as_the_dicts(
    stock: list[tuple[str, str | None, str, int]], old: list[tuple[str, str | None, str, int]]
) -> None:
    """The same buckets (keys, versions, contents, texts) whether a bucket is new, stored
    with other contents (rewritten) or stored the same (not written)."""
    before = table_of(old, {}, False).node_records()
    stored = {
        bucket.key: Stored(7, digest(canonical(bucket.skus))) for bucket in full_buckets({}, before)
    }
    table = table_of(stock, {}, False)
    expected = full_buckets(stored, table.node_records())
    assert list(table_buckets(stored, table)) == expected
    assert [bucket.text for bucket in expected] == [canonical(b.skus) for b in expected]


def test_a_repeated_row_is_found_and_an_exact_reread_counts_it_once() -> None:
    table = StockTable()
    table.add_entries(page_of({"SKU-1": (str(uuid.uuid4()), 3, 9)}))
    twice = export_rows(("SKU-1", "P1", "DC01", 4), ("SKU-1", "P1", "DC01", 4))
    table.add_export_rows(twice, by_sku=True)
    assert table.repeated_rows()
    table.restart_stock()
    table.add_export_rows(twice, by_sku=True)
    assert (dict(table.totals_view()), table.rows, table.duplicate_rows) == ({"SKU-1": 4}, 1, 1)
    assert table_entries(table, ["SKU-1"])["SKU-1"].version == 3  # the entries stay


def test_skus_only_commercetools_has_are_not_totals() -> None:
    table = StockTable()
    table.add_entries(page_of({"SKU-ct": ("e1", 1, 5)}))
    table.add_export_rows(export_rows(("SKU-ns", "P1", "DC01", 2)), by_sku=True)
    totals = table.totals_view()
    assert dict(totals) == {"SKU-ns": 2} and len(totals) == 1 and "SKU-ct" not in totals


def test_node_and_atp_share_a_row_value_exactly() -> None:
    """The extremes that fit 48 signed bits come back whole, at any node number."""
    table = StockTable()
    extremes = [ATP_LIMIT - 1, -ATP_LIMIT, -1, 0]
    rows = [(f"S{i}", f"P{i}", f"N{i}", atp) for i, atp in enumerate(extremes)]
    table.add_export_rows(export_rows(*rows), by_sku=True)
    assert table.node_records() == {sku: {node: atp} for sku, _, node, atp in rows}
    assert [unpacked(v)[0] for v in table.row_values] == [0, 1, 2, 3]
    assert unpacked((MAX_NODES - 1) << 48 | 5) == (MAX_NODES - 1, 5)


@pytest.mark.parametrize("atp", [ATP_LIMIT, -ATP_LIMIT - 1])
def test_an_export_row_beyond_any_stock_level_makes_the_file_unreadable(atp: int) -> None:
    row: dict[str, Any] = {"product_id": "P1", "fulfillment_node_id": "A", "atp": atp}
    with pytest.raises(ExportFailed, match="not a stock level"):
        read_export_file(io.BytesIO(json.dumps([row]).encode()), "product_id")


@settings(max_examples=100, deadline=None)
@given(found=entries, channel=st.sets(skus))
def test_a_page_of_entries_never_takes_a_channel_entry(
    found: dict[str, tuple[str, int, int]], channel: set[str]
) -> None:
    """A query mistake must never make the job write an entry that belongs to a channel."""
    page = page_of(found)
    page += [InventoryRow("c", 1, sku, 99, {"typeId": "channel", "id": "x"}) for sku in channel]
    table = StockTable()
    table.add_entries(page)
    assert table_entries(table, table.index) == {sku: Entry(*e) for sku, e in found.items()}
