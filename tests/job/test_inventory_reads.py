"""Reading commercetools in bulk: channel-less entries by id cursor, products by SKU."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connector.commercetools import CommercetoolsClient
from job.inventory_reads import (
    CursorStalled,
    fetch_channel_less,
    id_ranges,
    product_skus,
    read_channel_less_entries,
)
from job.plan import Entry
from sandbox.commercetools import CommercetoolsEmulator
from tests.job.conftest import FAST_RETRY, sandbox_ctp_settings

CHANNEL = {"typeId": "channel", "id": "store-1"}


def entry_drafts(count: int, channel_every: int = 0) -> list[dict[str, Any]]:
    drafts: list[dict[str, Any]] = []
    for i in range(count):
        drafts.append({"sku": f"SKU-{i}", "quantityOnStock": i % 17, "reserved": i % 3})
        if channel_every and i % channel_every == 0:
            drafts.append({"sku": f"SKU-{i}", "quantityOnStock": 999, "supplyChannel": CHANNEL})
    return drafts


def requests_to(emulator: CommercetoolsEmulator, label: str) -> int:
    return emulator.sandbox.counters[label]


async def test_reads_more_than_10000_entries_by_id_cursor_without_channel_entries(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(10_300, channel_every=50)})

    entries = await read_channel_less_entries(ctp)

    assert len(entries) == 10_300  # past the API's 10,000 offset limit
    assert entries["SKU-50"].quantity == 50 % 17  # quantityOnStock, not the channel's 999
    stored = ct_emulator.collections["inventory-entry"].items
    assert all("supplyChannel" not in stored[entry.id] for entry in entries.values())
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == expected_pages(ct_emulator)


async def test_an_exact_multiple_of_the_page_size_needs_one_empty_page(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(1000)})
    assert len(await read_channel_less_entries(ctp)) == 1000
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == expected_pages(ct_emulator)


async def test_a_small_inventory_is_one_request(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(499)})
    assert len(await read_channel_less_entries(ctp, concurrency=16)) == 499
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == 1


async def test_id_ranges_are_read_side_by_side(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(8000, channel_every=7)})
    in_flight = most = 0
    query = ctp.query_inventory_rows

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.001)
            return await query(*args, **kwargs)
        finally:
            in_flight -= 1

    ctp.query_inventory_rows = counting  # type: ignore[method-assign]
    entries = await read_channel_less_entries(ctp, concurrency=8)
    assert len(entries) == 8000 and most == 8
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == expected_pages(ct_emulator)


def test_the_id_ranges_cover_every_id_once() -> None:
    ranges = id_ranges()
    ids = [str(uuid.uuid4()) for _ in range(2000)] + ["", "0", "f" * 40, "G-not-hex", "~"]
    for id_ in ids:
        holding = [
            (lo, hi) for lo, hi in ranges if (lo is None or lo <= id_) and (hi is None or id_ < hi)
        ]
        assert len(holding) == 1, id_


def expected_pages(emulator: CommercetoolsEmulator) -> int:
    """The first page of 500, then per id range after its last id: one page per 500
    channel-less entries, plus the last (short or empty) one."""
    items = emulator.collections["inventory-entry"].items
    ids = sorted(i for i, e in items.items() if "supplyChannel" not in e)
    if len(ids) < 500:
        return 1
    after = ids[499]
    pages = 1
    for lower, upper in id_ranges():
        if upper is not None and upper <= after:
            continue
        start = after if lower is None or lower <= after else None
        count = sum(
            1
            for i in ids
            if (start is None or i > start)
            and (lower is None or i >= lower)
            and (upper is None or i < upper)
        )
        pages += count // 500 + 1
    return pages


async def test_products_are_found_500_skus_per_request(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    products: list[dict[str, Any]] = [
        {"masterVariant": {"id": 1, "sku": f"SKU-{i}"}, "variants": [{"id": 2, "sku": f"V-{i}"}]}
        for i in range(600)
    ]
    staged_only = {"masterVariant": {"id": 1, "sku": "OLD"}, "variants": []}
    products.append(
        {
            "masterData": {
                "current": staged_only,
                "staged": {**staged_only, "variants": [{"id": 2, "sku": "STAGED"}]},
            }
        }
    )
    ct_emulator.seed({"products": products})
    asked = [f"SKU-{i}" for i in range(700)] + ["V-3", "STAGED", "NOPE"]

    found = await product_skus(ctp, asked, concurrency=4)

    assert found == {f"SKU-{i}" for i in range(600)} | {"V-3", "STAGED"}
    assert requests_to(ct_emulator, "POST /sandbox/graphql") == 2  # ceil(703 / 500)


async def test_no_sku_to_look_up_is_no_request(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    assert await product_skus(ctp, [], concurrency=4) == set()
    assert requests_to(ct_emulator, "POST /sandbox/graphql") == 0


async def test_entries_are_read_again_in_bulk(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(300, channel_every=2)})
    skus = [f"SKU-{i}" for i in range(250)] + ['we"ird\\sku']

    entries = await fetch_channel_less(ctp, skus)

    assert len(entries) == 250
    assert isinstance(entries["SKU-0"], Entry) and entries["SKU-0"].quantity == 0
    # 500 SKUs per look-up, in the body of a GraphQL query: no SKU in a URL
    assert requests_to(ct_emulator, "POST /sandbox/graphql") == 1
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == 0


AWKWARD = ["ümlaut-Größe", "emoji-😀", 'quote"d', "back\\slash", "漢字-1", "tab\there"]


class Recording(httpx.AsyncBaseTransport):
    """The emulator, keeping every request."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


async def test_non_ascii_skus_are_looked_up_through_variables_in_the_body(
    ct_app: FastAPI, ct_emulator: CommercetoolsEmulator
) -> None:
    for i, sku in enumerate(AWKWARD):
        ct_emulator.create_inventory({"sku": sku, "quantityOnStock": i + 1})
    transport = Recording(ct_app)
    http = httpx.AsyncClient(transport=transport)
    async with CommercetoolsClient(sandbox_ctp_settings(), http=http, retry=FAST_RETRY) as ctp:
        entries = await fetch_channel_less(ctp, [*AWKWARD, "absent"])

    assert {sku: entry.quantity for sku, entry in entries.items()} == {
        sku: i + 1 for i, sku in enumerate(AWKWARD)
    }
    (lookup,) = [r for r in transport.requests if r.url.path.endswith("/graphql")]
    body = json.loads(lookup.content)
    # the document holds no value; the predicate travels as a variable, non-ASCII unescaped
    assert not any(sku in body["query"] for sku in ("Größe", "absent"))
    assert "ümlaut-Größe" in body["variables"]["where"] and "\\u00fc" not in lookup.content.decode()
    assert all(len(str(r.url)) < 200 for r in transport.requests)


def stalled(pages: list[list[dict[str, Any]]]) -> CommercetoolsClient:
    """A commercetools whose inventory query answers `pages` in turn, the last one forever."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let the test's timeout fire, should the read loop
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        page = pages.pop(0) if len(pages) > 1 else pages[0]
        return httpx.Response(200, json={"results": page, "count": len(page)})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CommercetoolsClient(sandbox_ctp_settings(), http=http, retry=FAST_RETRY)


def page_of(first: int) -> list[dict[str, Any]]:
    return [
        {"id": f"id-{i:05d}", "version": 1, "sku": f"S{i}", "quantityOnStock": 1}
        for i in range(first, first + 500)
    ]


@pytest.mark.parametrize("second", [0, 499], ids=["same page", "overlapping page"])
async def test_an_id_cursor_that_does_not_advance_stops_the_read(second: int) -> None:
    async with stalled([page_of(0), page_of(second)]) as ctp:
        with pytest.raises(CursorStalled, match="did not advance"):
            await asyncio.wait_for(read_channel_less_entries(ctp), timeout=10)
