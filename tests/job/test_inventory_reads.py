"""Reading commercetools in bulk: channel-less entries by id cursor, products by SKU."""

from __future__ import annotations

from typing import Any

from connector.commercetools import CommercetoolsClient
from job.inventory_reads import fetch_channel_less, product_skus, read_channel_less_entries
from job.plan import Entry
from sandbox.commercetools import CommercetoolsEmulator

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
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == 21  # ceil(10,300 / 500)


async def test_an_exact_multiple_of_the_page_size_needs_one_empty_page(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    ct_emulator.seed({"inventory": entry_drafts(1000)})
    assert len(await read_channel_less_entries(ctp)) == 1000
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == 3


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
    assert requests_to(ct_emulator, "GET /sandbox/inventory") == 3  # 100 SKUs per predicate
