"""The incremental sync on both emulators: full export, deltas, the cursor, and the modes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from connector.settings import ConfigError
from job.cursor import CURSOR_KEY
from job.export import PollPolicy
from job.lease import Lease
from job.settings import InventorySettings
from job.sync import InventorySync, JobClients, Status, SyncReport
from sandbox.commercetools import CommercetoolsEmulator
from sandbox.commercetools.errors import invalid_input
from sandbox.newstore import NewStoreEmulator
from tests.job.conftest import FAST_RETRY, sandbox_ctp_settings

NODES = ("DC01", "STORE01", "STORE02")
PRODUCTS = 30  # SKU-1..30 are commercetools products; SKU-1..20 have an entry
CONTAINER = "newstore-connector-jobs"
FAST_POLLS = PollPolicy(timeout_s=5.0, first_s=0.001, max_s=0.01)


def sku(i: int) -> str:
    return f"SKU-{i}"


def node_atp(i: int, k: int) -> int:
    return (3 * i + 5 * k) % 7 - 1  # some nodes below zero, like oversold ones


@pytest.fixture(autouse=True)
def catalog(ns_emulator: NewStoreEmulator, ct_emulator: CommercetoolsEmulator) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(
        {"product_id": f"P{i}", "sku": sku(i), "fulfillment_node_id": node, "atp": node_atp(i, k)}
        for i in range(1, PRODUCTS + 1)
        for k, node in enumerate(NODES)
    )
    products = [{"masterVariant": {"id": 1, "sku": sku(i)}} for i in range(1, PRODUCTS + 1)]
    entries = [{"sku": sku(i), "quantityOnStock": 50 + i} for i in range(1, 21)]
    ct_emulator.seed({"products": products, "inventory": entries})


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_sync(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    clock: Clock,
    polls: PollPolicy = FAST_POLLS,
    **settings: Any,
) -> InventorySync:
    inventory = InventorySettings(**{"concurrency": 4, **settings})
    return InventorySync(JobClients(ctp, newstore), inventory, polls=polls, clock=clock)


def targets(emulator: NewStoreEmulator) -> dict[str, int]:
    return {
        emulator.products[p]: max(sum(atp for atp, _ in nodes.values()), 0)
        for p, nodes in emulator.stock.items()
    }


def held(emulator: CommercetoolsEmulator) -> dict[str, int]:
    entries = emulator.collections["inventory-entry"].items.values()
    return {e["sku"]: e["quantityOnStock"] for e in entries if "supplyChannel" not in e}


def stored_cursor(emulator: CommercetoolsEmulator) -> tuple[int | None, int]:
    """(last_updated_at, version) of the cursor object."""
    stored = emulator.get_custom_object(CONTAINER, CURSOR_KEY)
    return stored["value"]["last_updated_at"], stored["version"]


def stored_failing(emulator: CommercetoolsEmulator) -> dict[str, Any]:
    return emulator.get_custom_object(CONTAINER, CURSOR_KEY)["value"]["failing"]  # type: ignore[no-any-return]


def change(emulator: NewStoreEmulator, rows: list[tuple[int, str, int]]) -> None:
    emulator.set_stock(
        {"product_id": f"P{i}", "fulfillment_node_id": node, "atp": atp} for i, node, atp in rows
    )


def total_requests(report: SyncReport) -> int:
    return sum(report.requests.values())


async def test_a_first_full_export_then_a_delta_of_what_changed(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    sync = make_sync(ctp, newstore, clock)
    first = await sync.run()
    body = first.summary()
    assert (body["status"], body["mode"], body["export"]) == ("ok", "incremental", "full")
    assert "no cursor yet" in body["mode_reason"]
    assert held(ct_emulator) == targets(ns_emulator)
    assert (first.created, first.stock_rows) == (10, 3 * PRODUCTS)
    assert body["cursor"] == {"before": None, "exported": 1, "after": 1}

    # An entry edited in commercetools: no delta shows it (its ATP did not change).
    entries = ct_emulator.collections["inventory-entry"].items.values()
    drifted = next(e for e in entries if e["sku"] == sku(5))
    drifted["quantityOnStock"] = 999
    # P2 changes at one node of three; P7 at all three; P9 goes below zero in total.
    change(ns_emulator, [(2, "STORE01", 40)])
    change(ns_emulator, [(7, node, 1) for node in NODES] + [(9, "DC01", -30)])

    second = await sync.run()
    body = second.summary()
    assert (body["status"], body["export"], body["mode_reason"]) == (
        "ok",
        "delta",
        "delta since cursor 1",
    )
    assert body["cursor"] == {"before": 1, "exported": 3, "after": 3}
    # The emulator exports only the changed (product, node) rows by default: 1 + 3 + 1.
    assert (second.updated, second.created, second.stock_rows) == (3, 0, 5)
    expected = targets(ns_emulator)
    assert held(ct_emulator)[sku(2)] == expected[sku(2)] == 40 + node_atp(2, 0) + node_atp(2, 2)
    assert held(ct_emulator)[sku(9)] == 0 and second.negative_clamped == 1
    # a SKU absent from the delta is unchanged, not zero: the drifted entry is left alone
    assert held(ct_emulator)[sku(5)] == 999
    # a delta reads only its own SKUs' entries: no token, no entry pages
    assert second.requests["newstore"] == 4  # start, two polls, the file
    # lease (3), cursor read and write, one entry query, one write batch; the per-node
    # state: its marker, one query for the buckets of the 3 SKUs, one request writing them
    assert second.requests["commercetools"] == 10

    # Once the reconciliation period has passed, a full export heals the drift.
    clock.now += timedelta(days=1)
    third = await sync.run()
    assert (third.export, third.updated) == ("full", 1)
    assert "reconciliation due" in (third.mode_reason or "")
    assert held(ct_emulator) == targets(ns_emulator)


@pytest.mark.parametrize("empty_delta_cursor_zero", [False, True])
async def test_no_change_means_no_write_and_a_cursor_that_stays(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
    empty_delta_cursor_zero: bool,
) -> None:
    sync = make_sync(ctp, newstore, clock)
    await sync.run()
    before = stored_cursor(ct_emulator)
    ns_emulator.controls.empty_delta_cursor_zero = empty_delta_cursor_zero

    quiet = await sync.run()

    assert (quiet.status, quiet.created, quiet.updated, quiet.stock_rows) == (Status.OK, 0, 0, 0)
    exported = 0 if empty_delta_cursor_zero else before[0]
    assert quiet.summary()["cursor"] == {
        "before": before[0],
        "exported": exported,
        "after": before[0],
    }
    assert stored_cursor(ct_emulator) == before  # not even rewritten
    # lease (3), cursor read, the per-node state's marker, export start, two polls, and the
    # download unless NewStore reported the empty delta with last_updated_at 0 and no link
    assert total_requests(quiet) == (8 if empty_delta_cursor_zero else 9)
    # and the next change still arrives in a delta from the same cursor
    change(ns_emulator, [(4, "STORE02", 11)])
    after = await sync.run()
    assert (after.export, after.updated, after.cursor_before) == ("delta", 1, before[0])
    assert held(ct_emulator) == targets(ns_emulator)


class RefusingWrites(httpx.AsyncBaseTransport):
    """commercetools, except that GraphQL mutations after the first `allowed` answer 503."""

    def __init__(self, app: FastAPI, allowed: int) -> None:
        self.inner = httpx.ASGITransport(app)
        self.allowed = allowed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/graphql") and b"mutation" in request.content:
            if self.allowed <= 0:
                return httpx.Response(503, json={"statusCode": 503, "message": "down"})
            self.allowed -= 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def failing_ctp(ct_app: FastAPI) -> AsyncIterator[CommercetoolsClient]:
    settings = sandbox_ctp_settings()
    # the per-node state's one save (a mutation too), then two entry writes
    http = httpx.AsyncClient(transport=RefusingWrites(ct_app, allowed=3))
    async with CommercetoolsClient(settings, http=http, retry=FAST_RETRY) as client:
        yield client


async def test_a_failure_mid_run_moves_the_cursor_keeps_the_skus_and_the_next_run_heals(
    ctp: CommercetoolsClient,
    failing_ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    await make_sync(ctp, newstore, clock).run()
    cursor = stored_cursor(ct_emulator)
    change(ns_emulator, [(i, "DC01", 20 + i) for i in range(1, 7)])

    broken = await make_sync(failing_ctp, newstore, clock, graphql_batch=1).run()

    assert broken.status is Status.DEGRADED and broken.updated == 2
    assert len(broken.failed) == 4  # commercetools down after two writes
    # the cursor moves on; the four SKUs are kept, with what they should hold
    assert broken.summary()["cursor"]["after"] == ns_emulator.revision > (cursor[0] or 0)
    kept = stored_failing(ct_emulator)
    assert sorted(kept) == [sku(i) for i in range(3, 7)]
    assert all(kept[sku(i)]["quantity"] == targets(ns_emulator)[sku(i)] for i in range(3, 7))
    assert held(ct_emulator) != targets(ns_emulator)

    healed = await make_sync(ctp, newstore, clock).run()
    # an empty delta, and the four kept SKUs retried from the list
    assert (healed.status, healed.export, healed.stock_rows) == (Status.OK, "delta", 0)
    assert (healed.retried_failing, healed.updated, healed.failing) == (4, 4, [])
    assert held(ct_emulator) == targets(ns_emulator)
    assert stored_failing(ct_emulator) == {}


async def test_an_export_that_never_finishes_ends_at_its_deadline_with_a_clear_status(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    ns_emulator.controls.export_never_finish = True
    before = held(ct_emulator)
    polls = PollPolicy(timeout_s=0.2, first_s=0.01, max_s=0.05)

    report = await make_sync(ctp, newstore, clock, polls).run()

    body = report.summary()
    assert (body["status"], body["stopped"], body["mode"]) == (
        "partial",
        "export_timeout",
        "incremental",
    )
    assert body["export_id"] and body["cursor"] == {"before": None, "exported": None, "after": None}
    assert held(ct_emulator) == before
    with pytest.raises(Exception, match="not found"):
        ct_emulator.get_custom_object(CONTAINER, CURSOR_KEY)


async def test_auto_falls_back_to_a_full_sync_when_the_export_api_answers_404(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    ns_emulator.controls.export_api_enabled = False
    with capture_logs() as logs:
        report = await make_sync(ctp, newstore, clock, sync_mode="auto").run()

    body = report.summary()
    assert (body["status"], body["mode"], "cursor" in body) == ("ok", "full", False)
    assert "answered 404" in body["mode_reason"]
    assert held(ct_emulator) == targets(ns_emulator)
    fallback = [line for line in logs if "falling back" in line["event"]]
    assert fallback and fallback[0]["log_level"] == "warning" and fallback[0]["status"] == 404


async def test_incremental_mode_without_the_export_api_is_an_error(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    ns_emulator.controls.export_api_enabled = False
    before = held(ct_emulator)
    report = await make_sync(ctp, newstore, clock, sync_mode="incremental").run()
    assert report.status is Status.ERROR
    assert "availabilities export API refused" in (report.error or "")
    assert held(ct_emulator) == before


async def test_full_mode_never_asks_for_an_export(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    report = await make_sync(ctp, newstore, clock, sync_mode="full").run()
    assert (report.mode, report.mode_reason) == ("full", "INVENTORY_SYNC_MODE=full")
    assert held(ct_emulator) == targets(ns_emulator)
    assert ns_emulator.sandbox.counters["POST /v0/d/availabilities/bulk"] == 0


async def test_a_zipped_export_syncs_the_same(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    ns_emulator.controls.export_format = "zip"
    sync = make_sync(ctp, newstore, clock)
    assert (await sync.run()).status is Status.OK
    change(ns_emulator, [(4, "STORE02", 11)])
    delta = await sync.run()
    assert (delta.export, delta.updated) == ("delta", 1)
    assert held(ct_emulator) == targets(ns_emulator)


async def test_a_dry_run_plans_the_delta_and_moves_no_cursor(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    sync = make_sync(ctp, newstore, clock)
    await sync.run()
    cursor = stored_cursor(ct_emulator)
    change(ns_emulator, [(4, "STORE02", 11)])

    dry = await sync.run(dry_run=True)

    assert (dry.status, dry.export, dry.planned) == (
        Status.DRY_RUN,
        "delta",
        {"updates": 1, "creates": 0},
    )
    assert dry.sample and dry.sample[0]["sku"] == sku(4)
    assert stored_cursor(ct_emulator) == cursor
    assert (await sync.run()).updated == 1  # the real run still sees the change


class SlowWritesFailingLease(httpx.AsyncBaseTransport):
    """commercetools whose GraphQL mutations each take a little while, and whose lease
    renewals (Custom Object writes after the first) fail with an error that is not an
    upstream error (a bug, a broken proxy answer)."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app)
        self.lease_writes = 0
        self.mutations = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/custom-objects") and b"inventory-sync" in request.content:
            self.lease_writes += 1
            if self.lease_writes == 2:  # the first renewal
                raise RuntimeError("renewal broke")
        if request.url.path.endswith("/graphql") and b"mutation" in request.content:
            self.mutations += 1
            await asyncio.sleep(0.05)
        return await self.inner.handle_async_request(request)


async def test_a_renewal_failure_of_any_kind_stops_the_run_and_is_reported(
    ct_app: FastAPI,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    transport = SlowWritesFailingLease(ct_app)
    http = httpx.AsyncClient(transport=transport)
    async with CommercetoolsClient(sandbox_ctp_settings(), http=http, retry=FAST_RETRY) as ctp:
        inventory = InventorySettings(concurrency=1, graphql_batch=1, sync_mode="full")

        def lease() -> Lease:
            # renewed as soon as the run starts; trusted as long as renewals work
            return Lease(ctp, CONTAINER, "inventory-sync", 600, inflight_s=125, renew_every_s=0.01)

        sync = InventorySync(JobClients(ctp, newstore), inventory, clock=clock, lease_factory=lease)
        report = await sync.run()  # never raises

    body = report.summary()
    assert (body["status"], body["stopped"]) == ("partial", "lease_renewal_failed")
    assert "renewal broke" in body["error"]
    # nothing was started after the failure: at most the batch in flight then was written
    assert transport.mutations <= 1 and body["created"] + body["updated"] <= 1
    released = ct_emulator.get_custom_object(CONTAINER, "inventory-sync")["value"]
    assert released["last_run"]["stopped"] == "lease_renewal_failed"


def test_a_lease_too_short_for_the_longest_write_is_refused(
    ctp: CommercetoolsClient, newstore: NewStoreClient
) -> None:
    with pytest.raises(ConfigError, match="INVENTORY_LEASE_S=120 is too short"):
        InventorySync(JobClients(ctp, newstore), InventorySettings(lease_s=120))


POISON = sku(3)


async def test_a_sku_refused_on_every_run_never_stalls_the_cursor_and_heals_when_fixed(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusals: list[str] = []
    update = ct_emulator.update_inventory

    def refusing(entry_id: str, body: dict[str, Any]) -> Any:
        entry = ct_emulator.collections["inventory-entry"].items[entry_id]
        if entry["sku"] == POISON:
            refusals.append(entry["sku"])
            raise invalid_input("quantityOnStock: refused by a merchant's validation")
        return update(entry_id, body)

    monkeypatch.setattr(ct_emulator, "update_inventory", refusing)
    sync = make_sync(ctp, newstore, clock)

    with capture_logs() as logs:
        first = await sync.run()
    # a first run (a full export) with a permanent failure still stores its cursor
    body = first.summary()
    assert (body["status"], body["export"]) == ("degraded", "full")
    assert body["cursor"]["after"] == stored_cursor(ct_emulator)[0] == ns_emulator.revision
    assert [f["sku"] for f in body["failing"]] == [POISON]
    assert "refused by a merchant" in body["failing"][0]["reason"]
    assert [line["log_level"] for line in logs if line["event"] == "inventory sync"] == ["error"]

    change(ns_emulator, [(5, "DC01", 33)])
    second = await sync.run()
    # a delta, not a full export again: the cursor moved; the poisoned SKU is retried
    assert (second.status, second.export, second.retried_failing) == (Status.DEGRADED, "delta", 1)
    assert second.updated == 1 and [s for s, _ in second.failed] == [POISON]
    assert stored_cursor(ct_emulator)[0] == ns_emulator.revision
    assert refusals == [POISON, POISON]  # what commercetools received: one refusal a run

    monkeypatch.setattr(ct_emulator, "update_inventory", update)  # the merchant fixes it
    third = await sync.run()
    assert (third.status, third.export, third.updated, third.failing) == (
        Status.OK,
        "delta",
        1,
        [],
    )
    assert held(ct_emulator) == targets(ns_emulator)
    assert stored_failing(ct_emulator) == {}
    fourth = await sync.run()  # nothing left to retry: a quiet run writes nothing
    assert (fourth.status, fourth.retried_failing, fourth.updated) == (Status.OK, 0, 0)


async def test_full_mode_never_writes_from_a_read_that_lost_a_row(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    clock: Clock,
) -> None:
    ns_emulator.controls.stocked_products_delete_after_pages = 2  # P1 at DC01 goes mid-read
    report = await make_sync(
        ctp, newstore, clock, sync_mode="full", newstore_page_size=10, concurrency=2
    ).run()
    assert report.status is Status.OK and report.stock_rows == 3 * PRODUCTS - 1
    assert held(ct_emulator) == targets(ns_emulator)  # the truth after the deletion
