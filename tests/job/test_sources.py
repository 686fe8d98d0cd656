"""Reading NewStore's stock: paging that ends, concurrent pages, 429s, aggregation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.ratelimit import RateGate
from connector.settings import NewStoreSettings
from job.sources import StockAggregator, StockedProductsSource
from sandbox.controls import Controls
from sandbox.newstore import NewStoreEmulator
from tests.job.conftest import NS_URL

NODES = ("DC01", "STORE01", "STORE02")


def stock_rows(products: int) -> list[dict[str, Any]]:
    return [
        {"product_id": f"P{p}", "sku": f"SKU-{p}", "fulfillment_node_id": node, "atp": p + n}
        for p in range(products)
        for n, node in enumerate(NODES)
    ]


def expected_atp(products: int) -> dict[str, int]:
    return {f"SKU-{p}": sum(p + n for n in range(len(NODES))) for p in range(products)}


def page_requests(emulator: NewStoreEmulator) -> int:
    return emulator.sandbox.counters["GET /_/v0/hq/stocked_products"]


@pytest.mark.parametrize(
    ("page_size", "served", "pages"), [(100, 100, 3), (100, 30, 9), (40, 100, 7)]
)
async def test_paging_over_more_than_200_rows_ends_with_every_row_once(
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    page_size: int,
    served: int,
    pages: int,
) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(stock_rows(84))  # 252 rows
    ns_emulator.controls.stocked_products_max_limit = served

    snapshot = await StockedProductsSource(newstore, "sku", page_size, concurrency=4).read()

    assert snapshot.atp == expected_atp(84)
    assert (snapshot.rows, snapshot.duplicate_rows, snapshot.complete) == (252, 0, True)
    assert page_requests(ns_emulator) == pages  # ceil(252 / rows actually served per page)


async def test_match_on_product_id(newstore: NewStoreClient, ns_emulator: NewStoreEmulator) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(stock_rows(3))
    snapshot = await StockedProductsSource(newstore, "product_id", 100, 2).read()
    assert snapshot.atp == {"P0": 3, "P1": 6, "P2": 9}


async def test_an_empty_stock_is_one_request(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    ns_emulator.clear()
    snapshot = await StockedProductsSource(newstore, "sku", 100, 4).read()
    assert (snapshot.atp, snapshot.complete, page_requests(ns_emulator)) == ({}, True, 1)


async def test_rate_limited_pages_are_retried_after_retry_after(
    ns_app: Any, ns_emulator: NewStoreEmulator
) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(stock_rows(100))
    ns_emulator.sandbox.set_controls(
        Controls(rate_limit_rate=0.3, retry_after_s=0.01, random_seed=3)
    )
    gate = RateGate(10_000)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(ns_app), event_hooks=gate.event_hooks())

    settings = NewStoreSettings(
        base_url=NS_URL, shop="s", username="sandbox-user", password="sandbox-password"
    )
    patient = RetryPolicy(max_attempts=10, budget_s=5, initial_backoff_s=0.01, max_backoff_s=0.02)
    async with NewStoreClient(settings, http=http, retry=patient) as client:
        snapshot = await StockedProductsSource(client, "sku", 100, 4).read()

    assert snapshot.atp == expected_atp(100)
    assert gate.pauses > 0
    limited = sum(n for label, n in ns_emulator.sandbox.counters.items() if "(429)" in label)
    assert limited > 0


async def test_the_stop_signal_leaves_the_snapshot_incomplete(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(stock_rows(100))
    snapshot = await StockedProductsSource(newstore, "sku", 100, 2).read(stop=lambda: True)
    assert not snapshot.complete


class FakeStock:
    """Serves pages of a list of rows, optionally pages shorter than asked, and optionally
    changing the rows before the `change_at`-th request (stock changing while it is read):
    inserting a row at the front, or deleting the first one; `every` repeats the change
    before each later read too."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        short_page: int = 0,
        insert: bool = False,
        delete: bool = False,
        change_at: int = 2,
        every: int = 0,
    ):
        self.rows = rows
        self.short_page = short_page
        self.insert = insert
        self.delete = delete
        self.change_at = change_at
        self.every = every
        self.calls: list[tuple[int, int]] = []

    async def stocked_products(self, limit: int, offset: int) -> dict[str, Any]:
        self.calls.append((limit, offset))
        n = len(self.calls)
        if n == self.change_at or (self.every and n > self.change_at and n % self.every == 0):
            if self.insert:
                new = {"product_id": f"NEW{n}", "sku": "NEW", "fulfillment_node_id": "X", "atp": 1}
                self.rows.insert(0, new)
            if self.delete:
                self.rows.pop(0)
        served = min(limit, self.short_page) if self.short_page and offset else limit
        items = self.rows[offset : offset + served]
        await asyncio.sleep(0)
        info = {"count": len(items), "total": len(self.rows), "offset": offset}
        return {"items": items, "pagination_info": info}


def truth(rows: list[dict[str, Any]]) -> dict[str, int]:
    atp: dict[str, int] = {}
    for row in rows:
        atp[row["sku"]] = atp.get(row["sku"], 0) + row["atp"]
    return atp


@pytest.mark.parametrize("change", ["insert", "delete"])
async def test_stock_that_changed_under_the_read_is_read_again(change: str) -> None:
    fake = FakeStock(stock_rows(10), **{change: True})
    snapshot = await StockedProductsSource(fake, "sku", 10, 1).read()  # type: ignore[arg-type]
    # the first read saw totals 30 then 31 (or 29): not used; the second one is the truth
    assert snapshot.complete and snapshot.atp == truth(fake.rows)
    assert (snapshot.rows, snapshot.duplicate_rows) == (len(fake.rows), 0)
    # page 0, then 10 and 20; read again over the new total (a short last page after a
    # deletion is completed by asking for its missing row, which is gone)
    assert len(fake.calls) == (3 + 4 if change == "insert" else 4 + 3)


async def test_stock_that_never_holds_still_gives_no_snapshot() -> None:
    fake = FakeStock(stock_rows(10), delete=True, every=2)
    source = StockedProductsSource(fake, "sku", 10, 1, attempts=3)
    with capture_logs() as logs:
        snapshot = await source.read()  # type: ignore[arg-type]
    assert (snapshot.complete, snapshot.stopped, snapshot.atp) == (
        False,
        "stock_changed_during_read",
        {},
    )
    assert [line["log_level"] for line in logs].count("warning") == 3
    assert logs[-1]["log_level"] == "error"


async def test_a_row_deleted_mid_read_in_the_emulator_is_never_a_smaller_total(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    ns_emulator.clear()
    ns_emulator.set_stock(stock_rows(100))  # 300 rows, 3 pages of 100
    ns_emulator.controls.stocked_products_delete_after_pages = 1  # P0 at DC01 goes
    snapshot = await StockedProductsSource(newstore, "sku", 100, 2).read()
    held = {
        ns_emulator.products[p]: sum(atp for atp, _ in nodes.values())
        for p, nodes in ns_emulator.stock.items()
    }
    assert snapshot.complete and snapshot.rows == 299 and snapshot.atp == held
    # read twice: the first saw the total change (and asked for its short page's last row)
    assert page_requests(ns_emulator) == 4 + 3


async def test_a_short_page_is_completed_by_asking_for_the_rest() -> None:
    fake = FakeStock(stock_rows(10), short_page=4)
    snapshot = await StockedProductsSource(fake, "sku", 10, 2).read()  # type: ignore[arg-type]
    assert snapshot.atp == expected_atp(10)
    assert (10, 10) in fake.calls and (6, 14) in fake.calls  # a 4-row page, then the other 6


def test_aggregator_skips_rows_without_a_key_and_sums_negative_atp() -> None:
    aggregator = StockAggregator("sku")
    aggregator.add(
        [
            {"product_id": "P", "sku": "A", "fulfillment_node_id": "1", "atp": 5},
            {"product_id": "P", "sku": "A", "fulfillment_node_id": "2", "atp": -7},
            {"product_id": "Q", "sku": None, "fulfillment_node_id": "1", "atp": 3},
            {"product_id": "P", "sku": "A", "fulfillment_node_id": "1", "atp": 5},
        ]
    )
    snapshot = aggregator.snapshot
    assert snapshot.atp == {"A": -2}
    assert (snapshot.rows, snapshot.rows_without_key, snapshot.duplicate_rows) == (2, 1, 1)


async def test_rate_gate_pauses_every_request_after_a_429() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        now[0] += delay

    gate = RateGate(1000, clock=lambda: now[0], sleep=sleep)
    request = httpx.Request("GET", "http://newstore.test/")
    await gate.after_response(httpx.Response(429, headers={"Retry-After": "30"}, request=request))
    await gate.after_response(httpx.Response(429, headers={"Retry-After": "2"}, request=request))
    await gate.before_request(request)
    await gate.before_request(request)  # the pause is over: no more waiting
    assert (slept, gate.pauses) == ([30.0], 1)
