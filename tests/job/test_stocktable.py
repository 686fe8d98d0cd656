"""The compact state of a full export (job/stocktable.py) plans and buckets exactly as the
dicts do: the same plan as `plan_sync`, the same per-node buckets as `full_buckets`."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.nodes import Stored, canonical, digest, full_buckets, table_buckets
from job.plan import Entry, plan_sync, skus_without_entry
from job.stocktable import (
    ATP_LIMIT,
    MAX_NODES,
    StockTable,
    packed,
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


def table_of(
    stock: list[tuple[str, str | None, str, int]],
    found: dict[str, tuple[str, int, int]],
    entries_first: bool,
) -> StockTable:
    """Both reads fill one table, in either order (they run side by side)."""
    table = StockTable()
    unique = {(row[1] or row[0], row[2]): row for row in stock}  # (product, node) once

    def add_stock() -> None:
        for sku, product, node, atp in unique.values():
            table.add_row(sku, product, node, atp)

    def add_entries() -> None:
        for sku, (entry_id, version, quantity) in found.items():
            table.add_entry(sku, entry_id, version, quantity)

    for step in (add_entries, add_stock) if entries_first else (add_stock, add_entries):
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
    table.add_entry("SKU-1", str(uuid.uuid4()), 3, 9)
    for _ in range(2):
        table.add_row("SKU-1", "P1", "DC01", 4)
    assert table.repeated_rows()
    table.restart_stock()
    for _ in range(2):
        table.add_row("SKU-1", "P1", "DC01", 4)
    assert (dict(table.totals_view()), table.rows, table.duplicate_rows) == ({"SKU-1": 4}, 1, 1)
    assert table_entries(table, ["SKU-1"])["SKU-1"].version == 3  # the entries stay


def test_skus_only_commercetools_has_are_not_totals() -> None:
    table = StockTable()
    table.add_entry("SKU-ct", "e1", 1, 5)
    table.add_row("SKU-ns", "P1", "DC01", 2)
    totals = table.totals_view()
    assert dict(totals) == {"SKU-ns": 2} and len(totals) == 1 and "SKU-ct" not in totals


def test_node_and_atp_share_a_row_value_exactly_and_refuse_what_does_not_fit() -> None:
    for node, atp in [(0, 0), (5, -1), (MAX_NODES - 1, ATP_LIMIT - 1), (3, -ATP_LIMIT)]:
        assert unpacked(packed(node, atp)) == (node, atp)
    for atp in (ATP_LIMIT, -ATP_LIMIT - 1):
        with pytest.raises(ValueError, match="not a stock level"):
            packed(0, atp)


def test_an_export_row_beyond_any_stock_level_makes_the_file_unreadable() -> None:
    import io
    import json

    from job.export import ExportFailed, read_export_file

    row = {"product_id": "P1", "fulfillment_node_id": "A", "atp": ATP_LIMIT}
    with pytest.raises(ExportFailed, match="not a stock level"):
        read_export_file(io.BytesIO(json.dumps([row]).encode()), "product_id")


@settings(max_examples=100, deadline=None)
@given(found=entries, channel=st.sets(skus))
def test_a_page_of_entries_fills_the_table_as_one_entry_at_a_time(
    found: dict[str, tuple[str, int, int]], channel: set[str]
) -> None:
    """Channel entries are never taken (a query mistake must not make the job write one)."""
    from connector.commercetools import InventoryRow

    page = [InventoryRow(e[0], e[1], sku, e[2]) for sku, e in found.items()]
    page += [InventoryRow("c", 1, sku, 99, {"typeId": "channel", "id": "x"}) for sku in channel]
    one_by_one, paged = StockTable(), StockTable()
    for sku, (entry_id, version, quantity) in found.items():
        one_by_one.add_entry(sku, entry_id, version, quantity)
    paged.add_entries(page)
    assert table_entries(paged, paged.index) == table_entries(one_by_one, one_by_one.index)
