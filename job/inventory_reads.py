"""The commercetools side of the sync: reading entries and finding products, in bulk.

Every GraphQL document here is a constant with `$variables`: values travel as JSON in the
request body, never spliced into the document (a SKU with a quote, a backslash or a
non-ASCII letter is data, not syntax). Look-ups by SKU go in request bodies too (GraphQL
`inventoryEntries(where: $where)`), never into a URL: 500 long SKUs in a query string can pass
a proxy's URL limit (414). Only the id-cursor read is a REST GET, whose URL holds one id.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from connector.commercetools import (
    CommercetoolsClient,
    CommercetoolsError,
    InventoryRow,
    graphql_error,
)
from job.bounded import NoProgress, Progress, chunks, for_each
from job.plan import Entry, channel_less_entries
from job.stocktable import StockTable

CHANNEL_LESS = "supplyChannel is not defined"
PAGE_LIMIT = 500  # the API's maximum
PRODUCT_BATCH = 500  # SKUs per products(skus:) look-up: at most one product per SKU
# SKUs per `sku in (...)` look-up: a SKU has at most one channel-less entry, so one page of
# PAGE_LIMIT results holds every entry of a batch.
REFETCH_BATCH = PAGE_LIMIT

PRODUCTS_BY_SKU = """
query ProductsBySku($skus: [String!], $limit: Int) {
  products(skus: $skus, limit: $limit) {
    results { masterData { current { skus } staged { skus } } }
  }
}
"""


ENTRIES_WHERE = """
query EntriesWhere($where: String!, $limit: Int!) {
  inventoryEntries(where: $where, limit: $limit, sort: ["id asc"]) {
    results { id version sku quantityOnStock supplyChannelRef { id } }
  }
}
"""


class CursorStalled(CommercetoolsError):
    """An id-cursor page did not move past the cursor: reading on would loop forever."""


def literal(value: str) -> str:
    """A string literal of the query predicate language: double-quoted, `"` and `\\`
    escaped; other characters, non-ASCII ones included, are left as they are (no `\\u`
    escapes, which only some parsers take). Control characters are escaped as JSON does.
    https://docs.commercetools.com/api/predicates/query (string values in double quotes)"""
    return json.dumps(value, ensure_ascii=False)


# The id space, cut into ranges read side by side: commercetools ids are UUIDs (lowercase
# hex), so each first hex digit holds about a sixteenth of the entries. The first range has
# no lower bound and the last no upper one, so any id at all falls in exactly one.
ID_RANGE_BOUNDS = [f"{digit:x}" for digit in range(1, 16)]


def id_ranges() -> list[tuple[str | None, str | None]]:
    """[(lower, upper)]: `lower <= id < upper`, None for no bound."""
    bounds: list[str | None] = [None, *ID_RANGE_BOUNDS, None]
    return list(itertools.pairwise(bounds))


async def read_channel_less_entries(
    ctp: CommercetoolsClient,
    progress: Progress | None = None,
    concurrency: int = 1,
    into: StockTable | None = None,
) -> dict[str, Entry]:
    """Every channel-less entry, by SKU (or, with `into`, into that table: {} is returned).

    Paged by id cursor (`sort=id asc`, `id > last`), which, unlike offsets, has no 10,000
    limit and stays cheap deep into a large inventory. One cursor's pages depend on each
    other; so when the first page is full, the rest of the id space is cut into ranges
    (`id_ranges`), each read by its own cursor, `concurrency` of them at a time: at a
    million entries, 2,000 sequential pages become 16 cursors of about 125. A small
    inventory stays one request. The sync also overlaps this with the NewStore read.
    """
    progress = progress or NoProgress()
    progress.start("commercetools", None)
    entries: dict[str, Entry] = {}

    def keep(rows: Sequence[InventoryRow]) -> None:
        # The query already asks for `supplyChannel is not defined`; checking again means a
        # query mistake can never make the job write an entry that belongs to a channel.
        if into is not None:
            into.add_entries(rows)
            return
        for row in rows:
            if row.supplyChannel is None:
                entries[row.sku] = Entry(row.id, row.version, row.quantityOnStock)

    first = await ctp.query_inventory_rows([CHANNEL_LESS], PAGE_LIMIT)
    keep(first)
    progress.advance("commercetools")
    if len(first) < PAGE_LIMIT:
        return entries
    after = first[-1].id

    async def read_range(bounds: tuple[str | None, str | None]) -> None:
        lower, upper = bounds
        fixed = [CHANNEL_LESS]
        if lower is not None:
            fixed.append(f"id >= {literal(lower)}")
        if upper is not None:
            fixed.append(f"id < {literal(upper)}")
        # the range that holds the first page's last id starts after it
        cursor = after if lower is None or lower <= after else None
        while True:
            where = fixed if cursor is None else [*fixed, f"id > {literal(cursor)}"]
            rows = await ctp.query_inventory_rows(where, PAGE_LIMIT)
            _check_advances(cursor, [row.id for row in rows])
            keep(rows)
            progress.advance("commercetools")
            if len(rows) < PAGE_LIMIT:
                return
            cursor = rows[-1].id

    rest = [bounds for bounds in id_ranges() if bounds[1] is None or bounds[1] > after]
    await for_each(rest, read_range, concurrency)
    return entries


def _check_advances(cursor: str | None, ids: Sequence[str]) -> None:
    """Every id of a page after `id > cursor`, sorted by id, must be past the cursor, and
    the page's last id with it; otherwise the next page would be this one again (a proxy
    serving a cached page, an API ignoring the predicate), and the read would never end."""
    if cursor is None or not ids:
        return
    if any(entry_id <= cursor for entry_id in ids):
        raise CursorStalled(
            f"the inventory id cursor did not advance (after {cursor[:64]!r} came "
            f"{ids[-1][:64]!r}): stopped reading",
            errors=[],
        )


async def fetch_channel_less(
    ctp: CommercetoolsClient,
    skus: Sequence[str],
    concurrency: int = 1,
    progress: Progress | None = None,
) -> dict[str, Entry]:
    """The current channel-less entries of some SKUs, in bulk: those of a delta, or those
    to read again after a conflict. One GraphQL query per 500 SKUs (in the body),
    `concurrency` at a time."""
    progress = progress or NoProgress()
    batches = list(chunks(sorted(set(skus)), REFETCH_BATCH))
    progress.start("commercetools", len(batches))
    entries: dict[str, Entry] = {}

    async def read(batch: Sequence[str]) -> None:
        where = f"{CHANNEL_LESS} and sku in ({', '.join(literal(sku) for sku in batch)})"
        channel_less_entries(await entries_where(ctp, where), entries)
        progress.advance("commercetools")

    await for_each(batches, read, concurrency)
    return entries


async def entries_where(ctp: CommercetoolsClient, where: str) -> list[dict[str, Any]]:
    """One page (PAGE_LIMIT, by id) of the entries matching a predicate, read with GraphQL:
    the predicate travels in the request body, however many SKUs it names."""
    body = await ctp.graphql(ENTRIES_WHERE, {"where": where, "limit": PAGE_LIMIT})
    return _entry_results(body)


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


def _entry_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of an `inventoryEntries` answer, shaped as the REST API's (the plan
    reads `supplyChannel`)."""
    if body.get("errors"):
        errors = [graphql_error(error) for error in body["errors"]]
        raise CommercetoolsError(f"entry look-up failed: {errors[0]['message']}", errors=errors)
    page = (body.get("data") or {}).get("inventoryEntries") or {}
    return [
        {**result, "supplyChannel": result.get("supplyChannelRef")}
        for result in page.get("results") or []
    ]
