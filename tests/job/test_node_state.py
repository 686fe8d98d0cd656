"""Totals that stay right under both readings of a delta export (job/nodes.py).

A delta may hold only the (product, node) rows that changed (the emulator's default, the
reading NewStore's docs suggest) or every node of a changed product; the job keeps the
per-node ATP between runs and merges, so both give the true sum.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

import job.sync as job_sync
from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from job.export import PollPolicy
from job.inventory_reads import fetch_channel_less as fetch_entries
from job.inventory_reads import read_channel_less_entries as read_all_entries
from job.nodes import (
    Bucket,
    NodeStateStore,
    ReadBucket,
    Stored,
    bucket_key,
    canonical,
    container_of,
    decode_page,
    digest,
    encoded,
    from_stored,
    full_buckets,
    merge_delta,
    rebucket,
)
from job.settings import InventorySettings
from job.sync import InventorySync, JobClients, Status
from sandbox.commercetools import CommercetoolsEmulator
from sandbox.newstore import NewStoreEmulator

FAST_POLLS = PollPolicy(timeout_s=5.0, first_s=0.001, max_s=0.01)
NODES_CONTAINER = container_of("newstore-connector-jobs")


def make_sync(ctp: CommercetoolsClient, newstore: NewStoreClient, **settings: Any) -> InventorySync:
    inventory = InventorySettings(**{"concurrency": 4, "sync_mode": "incremental", **settings})
    return InventorySync(JobClients(ctp, newstore), inventory, polls=FAST_POLLS)


def held(emulator: CommercetoolsEmulator) -> dict[str, int]:
    entries = emulator.collections["inventory-entry"].items.values()
    return {e["sku"]: e["quantityOnStock"] for e in entries if "supplyChannel" not in e}


def stock(emulator: NewStoreEmulator, rows: list[tuple[str, str, int]], **extra: Any) -> None:
    emulator.set_stock(
        {"product_id": f"P-{sku}", "sku": sku, "fulfillment_node_id": node, "atp": atp, **extra}
        for sku, node, atp in rows
    )


@pytest.fixture(autouse=True)
def catalog(ns_emulator: NewStoreEmulator, ct_emulator: CommercetoolsEmulator) -> None:
    ns_emulator.clear()
    stock(
        ns_emulator, [("A", "DC01", 3), ("A", "STORE01", 4), ("B", "DC01", 5), ("B", "STORE01", 1)]
    )
    products = [{"masterVariant": {"id": 1, "sku": sku}} for sku in ("A", "B")]
    ct_emulator.seed({"products": products})


# --- pure ---------------------------------------------------------------------------------


def test_a_delta_of_changed_rows_merges_into_the_other_nodes() -> None:
    stored = {"A": {"DC01": 3, "STORE01": 4}}
    assert merge_delta(stored, {"A": {"DC01": 0}}, "changed") == {"A": {"STORE01": 4}}
    # the same rows merged twice give the same state (a repeated delta is harmless)
    once = merge_delta(stored, {"A": {"DC01": 2}}, "changed")
    assert (
        merge_delta(once, {"A": {"DC01": 2}}, "changed") == once == {"A": {"DC01": 2, "STORE01": 4}}
    )


def test_a_delta_of_whole_products_replaces_them_when_declared() -> None:
    stored = {"A": {"DC01": 3, "STORE01": 4}}
    assert merge_delta(stored, {"A": {"STORE01": 4}}, "product") == {"A": {"STORE01": 4}}
    # the same delta read as changed rows keeps the node it does not mention
    assert merge_delta(stored, {"A": {"STORE01": 4}}, "changed") == stored


def test_rebucketing_writes_only_buckets_that_change_and_a_full_export_drops_the_rest() -> None:
    key_a, key_b = bucket_key("A"), bucket_key("B")
    current = {key_a: read_bucket(key_a, 3, {"A": {"DC01": 3}})}
    assert rebucket(current, {"A": {"DC01": 3}}) == []
    stored = {key_a: Stored(3, digest(canonical({"A": {"DC01": 3}})))}
    assert full_buckets(stored, {"A": {"DC01": 3}}) == []  # unchanged: not rewritten
    written = full_buckets(stored, {"B": {"DC01": 1}})
    by_key = {bucket.key: bucket for bucket in written}
    assert by_key[key_b].skus == {"B": {"DC01": 1}} and by_key[key_b].version == 0
    assert len(written) == 2 and key_a != key_b  # no other bucket is written
    assert by_key[key_a].skus == {} and by_key[key_a].version == 3  # A is gone
    # a node at 0 is not kept, and the record it came from is left as it was
    record = {"C": {"DC01": 0, "STORE01": 2}}
    (only,) = full_buckets({}, record)
    assert only.skus == {"C": {"STORE01": 2}} and record["C"]["DC01"] == 0
    assert only.text == canonical(only.skus)


def read_bucket(key: str, version: int, skus: dict[str, dict[str, int]]) -> ReadBucket:
    return ReadBucket(
        key, version, {s: msgspec.Raw(json.dumps(r).encode()) for s, r in skus.items()}
    )


def records_of(bucket: ReadBucket) -> dict[str, dict[str, int]]:
    """What the bucket holds for a delta: a record that is no object counts as none."""
    found = {sku: bucket.record(sku) for sku in bucket.records}
    return {sku: record for sku, record in found.items() if record is not None}


def same_bucket(count: int) -> list[str]:
    """`count` SKUs that share one bucket."""
    by_key: dict[str, list[str]] = {}
    for index in range(100_000):
        skus = by_key.setdefault(bucket_key(f"S{index}"), [])
        skus.append(f"S{index}")
        if len(skus) == count:
            return skus
    raise AssertionError("no bucket holds enough SKUs")


def test_a_delta_rewrites_a_bucket_only_for_a_record_that_differs() -> None:
    a, b, c = same_bucket(3)
    key = bucket_key(a)
    stored = {a: {"DC01": 3}, b: {"DC01": 1, "STORE01": 2}}
    current = {key: read_bucket(key, 7, stored)}
    # unchanged, absent and still absent: nothing to write
    assert rebucket(current, {a: {"DC01": 3}, c: {"DC01": 0}}) == []
    (written,) = rebucket(current, {a: {"DC01": 3}, b: {"DC01": 0, "STORE01": 2}, c: {"X": 1}})
    assert (written.key, written.version) == (key, 7)
    assert json.loads(written.text) == {a: {"DC01": 3}, b: {"STORE01": 2}, c: {"X": 1}}
    assert records_of(current[key]) == stored == {a: {"DC01": 3}, b: {"DC01": 1, "STORE01": 2}}
    # every node at 0: the record goes; a record stored empty is cleaned up
    (dropped,) = rebucket(current, {b: {"DC01": 0}})
    assert json.loads(dropped.text) == {a: {"DC01": 3}}
    empty = {key: read_bucket(key, 2, {a: {}})}
    assert [json.loads(x.text) for x in rebucket(empty, {a: {"DC01": 0}})] == [{}]
    # a bucket not stored yet is created (version 0), an empty one is not
    (created,) = rebucket({}, {c: {"X": 1}})
    assert (created.version, json.loads(created.text)) == (0, {c: {"X": 1}})
    # the records a delta does not name are written back as they were read
    odd = {key: ReadBucket(key, 4, {a: msgspec.Raw(b'{"DC01":"x"}')})}
    (kept,) = rebucket(odd, {c: {"X": 1}})
    assert kept.text == encoded({a: {"DC01": "x"}, c: {"X": 1}})  # type: ignore[dict-item]


def test_a_delta_writes_the_value_a_full_export_would() -> None:
    skus = {"b": {"Z": 1, "A": 2}, "a": {"x": 4}, 'é"\\': {"n": -3}}
    text = encoded(skus)
    assert json.loads(text) == skus
    assert list(json.loads(text)) == sorted(skus)  # keys sorted, as `canonical` sorts them
    ascii_only = {"b": {"Z": 1, "A": 2}, "a": {"x": 4}}
    assert encoded(ascii_only) == canonical(ascii_only)


def page(*values: Any) -> bytes:
    results = [
        {"key": f"nodes-{index:03x}", "version": index + 1, "value": value}
        for index, value in enumerate(values)
    ]
    return json.dumps({"limit": 100, "count": len(results), "results": results}).encode()


def test_stored_buckets_are_decoded_as_they_were_written_and_odd_ones_leniently() -> None:
    good = page({"A": {"DC01": 3, "STORE01": 4}}, {})
    assert [(b.key, b.version, records_of(b)) for b in decode_page(good)] == [
        ("nodes-000", 1, {"A": {"DC01": 3, "STORE01": 4}}),
        ("nodes-001", 2, {}),
    ]
    # a record this job did not write (by hand, another format): what can be read is kept
    odd = page({"A": {"DC01": 3, "STORE01": "4"}, "B": 5}, {"C": {"DC01": 1.5}})
    assert [records_of(b) for b in decode_page(odd)] == [{"A": {"DC01": 3}}, {"C": {}}]
    expected = [from_stored(obj).skus for obj in json.loads(odd)["results"]]
    assert [records_of(b) for b in decode_page(odd)] == expected
    # a value that is no object at all: the page is read leniently
    (empty, fine) = decode_page(page("not an object", {"D": {"DC01": 2}}))
    assert (records_of(empty), records_of(fine)) == ({}, {"D": {"DC01": 2}})


async def test_a_delta_reads_the_buckets_of_its_skus_by_key(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    store = NodeStateStore(ctp, NODES_CONTAINER, concurrency=2)
    skus = [f"S{index}" for index in range(300)]
    keys = sorted({bucket_key(sku) for sku in skus})
    for index, key in enumerate(keys[::2]):  # half of them stored
        value = {"S-kept": {"DC01": index}} if index % 3 else {"odd": {"DC01": "x"}}
        ct_emulator.upsert_custom_object({"container": NODES_CONTAINER, "key": key, "value": value})
    found = await store.load(skus)
    assert sorted(found) == keys  # more than one query of KEYS_PER_QUERY
    for index, key in enumerate(keys):
        bucket = found[key]
        if index % 2:
            assert (bucket.version, records_of(bucket)) == (0, {})  # absent: to be created
        elif (index // 2) % 3:
            assert (bucket.version, records_of(bucket)) == (1, {"S-kept": {"DC01": index // 2}})
        else:
            assert records_of(bucket) == {"odd": {}}


async def test_each_batch_of_buckets_is_written_back_before_the_rest_are_read(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 1M SKUs a 1% delta reads and rewrites most of the 4,096 buckets: read, merged
    and written a batch at a time, the old state is never held whole and the reads overlap
    the writes; and every bucket is saved by the time `merge` returns."""
    store = NodeStateStore(ctp, NODES_CONTAINER, concurrency=1)
    rows = {f"S{index}": {"DC01": index + 1} for index in range(300)}
    events: list[str] = []
    read, write = ctp.query_custom_objects_body, ctp.graphql

    async def reading(*args: Any, **kwargs: Any) -> bytes:
        events.append("read")
        return await read(*args, **kwargs)

    async def writing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        events.append("write")
        return await write(*args, **kwargs)

    monkeypatch.setattr(ctp, "query_custom_objects_body", reading)
    monkeypatch.setattr(ctp, "graphql", writing)
    merged = await store.merge(rows, "changed", save=True)
    assert merged == rows
    assert len(events) > 2 and events == ["read", "write"] * (len(events) // 2)
    again = await store.load(rows)  # everything saved: read back the same records
    assert {sku: again[bucket_key(sku)].record(sku) for sku in rows} == rows
    events.clear()
    assert await store.merge(rows, "changed", save=True) == rows
    assert "write" not in events  # merged again: nothing changes, nothing is written


# --- end to end, both readings --------------------------------------------------------------


@pytest.mark.parametrize("delta_kind", ["changed", "product"])
async def test_a_node_dropping_to_zero_leaves_the_other_nodes_stock(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    delta_kind: str,
) -> None:
    ns_emulator.controls.export_delta_rows = delta_kind  # type: ignore[assignment]
    sync = make_sync(ctp, newstore)
    first = await sync.run()
    assert (first.status, first.export) == (Status.OK, "full")
    assert held(ct_emulator) == {"A": 7, "B": 6}

    stock(ns_emulator, [("A", "DC01", 0)])  # 3 + 4, the first node to 0
    second = await sync.run()
    assert (second.status, second.export, second.updated) == (Status.OK, "delta", 1)
    assert second.stock_rows == (1 if delta_kind == "changed" else 2)
    assert held(ct_emulator) == {"A": 4, "B": 6}

    # and back: the node that was 0 comes back at 2; B untouched all along
    stock(ns_emulator, [("A", "DC01", 2)])
    third = await sync.run()
    assert (third.export, third.updated) == ("delta", 1)
    assert held(ct_emulator) == {"A": 6, "B": 6}


@pytest.mark.parametrize(
    ("delta_kind", "delta_rows"), [("changed", "changed"), ("product", "product")]
)
async def test_a_location_that_disappears_from_a_product_no_longer_counts(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    delta_kind: str,
    delta_rows: str,
) -> None:
    """`changed`: NewStore sends the removed row with ATP 0 (the emulator's assumption);
    `product`: the row is just absent, and `INVENTORY_DELTA_ROWS=product` says so."""
    ns_emulator.controls.export_delta_rows = delta_kind  # type: ignore[assignment]
    sync = make_sync(ctp, newstore, delta_rows=delta_rows)
    await sync.run()
    stock(ns_emulator, [("A", "STORE01", 0)], remove=True)
    stock(ns_emulator, [("B", "DC01", 6)])  # another product changes in the same delta
    report = await sync.run()
    assert (report.status, report.export, report.updated) == (Status.OK, "delta", 2)
    assert held(ct_emulator) == {"A": 3, "B": 7}


async def test_a_cursor_without_per_node_state_makes_a_full_export_first(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    """After an upgrade the cursor exists but no per-node state: a delta would be merged
    into nothing (A at 3 + 4, DC01 to 0, would be written as 0)."""
    sync = make_sync(ctp, newstore)
    await sync.run()
    for key in [k for (c, k) in ct_emulator.custom_objects if c == NODES_CONTAINER]:
        ct_emulator.delete_custom_object(NODES_CONTAINER, key, None)
    stock(ns_emulator, [("A", "DC01", 0)])
    report = await sync.run()
    assert (report.export, report.mode_reason) == ("full", "full export: no per-node state yet")
    assert held(ct_emulator) == {"A": 4, "B": 6}
    after = await sync.run()  # the state exists again: back to deltas
    assert after.export == "delta"


async def test_a_state_that_cannot_be_saved_fails_the_run_before_any_write(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    sync = make_sync(ctp, newstore)
    await sync.run()
    # another writer changed A's bucket since it is read: the conditional write conflicts
    key = bucket_key("A")
    stored = ct_emulator.get_custom_object(NODES_CONTAINER, key)
    stock(ns_emulator, [("A", "DC01", 0)])

    async def racing_read(skus: Any) -> dict[str, Bucket]:
        found = await type(sync.nodes).load(sync.nodes, skus)
        ct_emulator.upsert_custom_object(
            {"container": NODES_CONTAINER, "key": key, "value": stored["value"]}
        )
        return found

    sync.nodes.load = racing_read  # type: ignore[method-assign]
    report = await sync.run()
    assert report.status is Status.ERROR and "per-node state not saved" in (report.error or "")
    assert held(ct_emulator) == {"A": 7, "B": 6}  # nothing written, the cursor kept
    sync.nodes.load = type(sync.nodes).load.__get__(sync.nodes)  # type: ignore[method-assign]
    healed = await sync.run()
    assert (healed.status, held(ct_emulator)) == (Status.OK, {"A": 4, "B": 6})


async def test_a_full_export_rewrites_only_the_buckets_whose_skus_changed(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    """Every run a full export (reconciliation due at once): at 1M SKUs rewriting all 4,096
    buckets each time would cost megabytes of writes for nothing."""
    sync = make_sync(ctp, newstore, full_reconcile_s=0)

    def versions() -> dict[str, int]:
        keys = [k for (c, k) in ct_emulator.custom_objects if k.startswith("nodes-")]
        return {k: ct_emulator.get_custom_object(NODES_CONTAINER, k)["version"] for k in keys}

    await sync.run()
    before = versions()
    assert set(before) == {bucket_key("A"), bucket_key("B")}
    stock(ns_emulator, [("B", "DC01", 2)])
    report = await sync.run()
    assert (report.export, report.updated) == ("full", 1)
    assert held(ct_emulator) == {"A": 7, "B": 3}
    after = versions()
    assert after[bucket_key("A")] == before[bucket_key("A")]  # unchanged: not written
    assert after[bucket_key("B")] == before[bucket_key("B")] + 1
    quiet = await sync.run()
    assert (quiet.export, versions()) == ("full", after)


async def test_the_node_state_is_kept_while_the_entries_are_still_being_read(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 1M SKUs the bucket reads and writes take seconds: they overlap the commercetools
    entry reads (full export and delta alike) instead of following them. Each entry read
    here waits until the state has been read, which a sequential run would never do."""
    sync = make_sync(ctp, newstore)
    state_read = asyncio.Event()
    original_all, original_some = sync.nodes.load_all, sync.nodes.load

    async def load_all() -> Any:
        state_read.set()
        return await original_all()

    async def load(skus: Any) -> Any:
        state_read.set()
        return await original_some(skus)

    def after_state(read: Any) -> Any:
        async def waiting(*args: Any, **kwargs: Any) -> Any:
            await asyncio.wait_for(state_read.wait(), timeout=5)
            return await read(*args, **kwargs)

        return waiting

    monkeypatch.setattr(sync.nodes, "load_all", load_all)
    monkeypatch.setattr(sync.nodes, "load", load)
    monkeypatch.setattr(job_sync, "read_channel_less_entries", after_state(read_all_entries))
    monkeypatch.setattr(job_sync, "fetch_channel_less", after_state(fetch_entries))
    first = await sync.run()
    assert (first.status, first.export) == (Status.OK, "full")
    state_read.clear()
    stock(ns_emulator, [("A", "DC01", 0)])
    second = await sync.run()
    assert (second.status, second.export, second.updated) == (Status.OK, "delta", 1)
    assert held(ct_emulator) == {"A": 4, "B": 6}
