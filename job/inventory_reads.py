"""The commercetools side of the sync: reading entries and finding products, in bulk."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from connector.commercetools import CommercetoolsClient, CommercetoolsError, graphql_error
from job.bounded import NoProgress, Progress, chunks, for_each
from job.plan import Entry, channel_less_entries

CHANNEL_LESS = "supplyChannel is not defined"
PAGE_LIMIT = 500  # the API's maximum
PRODUCT_BATCH = 500  # SKUs per products(skus:) look-up: at most one product per SKU
REFETCH_BATCH = 100  # SKUs per `sku in (...)` predicate, to keep the URL short

PRODUCTS_BY_SKU = """
query ProductsBySku($skus: [String!], $limit: Int) {
  products(skus: $skus, limit: $limit) {
    results { masterData { current { skus } staged { skus } } }
  }
}
"""


def literal(value: str) -> str:
    """A string literal for a query predicate (JSON escaping is what the API parses)."""
    return json.dumps(value)


async def read_channel_less_entries(
    ctp: CommercetoolsClient, progress: Progress | None = None
) -> dict[str, Entry]:
    """Every channel-less entry, by SKU.

    Paged by id cursor (`sort=id asc`, `id > last`), which, unlike offsets, has no 10,000
    limit and stays cheap deep into a large inventory. The pages depend on each other, so
    they are sequential; the sync overlaps them with the NewStore read.
    """
    progress = progress or NoProgress()
    progress.start("commercetools", None)
    entries: dict[str, Entry] = {}
    where = [CHANNEL_LESS]
    while True:
        results = await ctp.query_inventory(where, PAGE_LIMIT)
        channel_less_entries(results, entries)
        progress.advance("commercetools")
        if len(results) < PAGE_LIMIT:
            return entries
        where = [CHANNEL_LESS, f"id > {literal(results[-1]['id'])}"]


async def fetch_channel_less(
    ctp: CommercetoolsClient,
    skus: Sequence[str],
    concurrency: int = 1,
    progress: Progress | None = None,
) -> dict[str, Entry]:
    """The current channel-less entries of some SKUs, in bulk: those of a delta, or those
    to read again after a conflict. One query per 100 SKUs, `concurrency` at a time."""
    progress = progress or NoProgress()
    batches = list(chunks(sorted(set(skus)), REFETCH_BATCH))
    progress.start("commercetools", len(batches))
    entries: dict[str, Entry] = {}

    async def read(batch: Sequence[str]) -> None:
        sku_in = f"sku in ({', '.join(literal(sku) for sku in batch)})"
        channel_less_entries(await ctp.query_inventory([CHANNEL_LESS, sku_in]), entries)
        progress.advance("commercetools")

    await for_each(batches, read, concurrency)
    return entries


async def product_skus(
    ctp: CommercetoolsClient,
    skus: Sequence[str],
    concurrency: int,
    progress: Progress | None = None,
) -> set[str]:
    """Those of `skus` that are a variant of some product (current or staged data).

    One GraphQL `products(skus:)` request per 500 SKUs, never one request per SKU.
    """
    progress = progress or NoProgress()
    batches = list(chunks(skus, PRODUCT_BATCH))
    progress.start("products", len(batches))
    found: set[str] = set()

    async def look_up(batch: Sequence[str]) -> None:
        body = await ctp.graphql(PRODUCTS_BY_SKU, {"skus": list(batch), "limit": len(batch)})
        for product in _products(body):
            data = product.get("masterData") or {}
            for projection in (data.get("current"), data.get("staged")):
                found.update((projection or {}).get("skus") or ())
        progress.advance("products")

    await for_each(batches, look_up, concurrency)
    return found.intersection(skus)


def _products(body: dict[str, Any]) -> list[dict[str, Any]]:
    if body.get("errors"):
        errors = [graphql_error(error) for error in body["errors"]]
        raise CommercetoolsError(f"product look-up failed: {errors[0]['message']}", errors=errors)
    return list(((body.get("data") or {}).get("products") or {}).get("results") or [])
