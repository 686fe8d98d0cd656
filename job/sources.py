"""Where the stock comes from: NewStore's aggregate ATP per SKU.

`StockSource` is what the sync needs; `StockedProductsSource` reads the full stock through
`GET /_/v0/hq/stocked_products`. `job.export.ExportSource` reads it through the
Availabilities Export API: everything, or only what changed since a cursor (a delta).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from connector.newstore import NewStoreClient
from job.bounded import NoProgress, Progress, for_each, never
from job.stocktable import StockTable

log = structlog.get_logger("job")

MatchField = Literal["sku", "product_id"]
READ_ATTEMPTS = 3  # full reads of a stock that keeps changing before the run gives up
STOCK_CHANGED = "stock_changed_during_read"
PARTITIONS = 256  # of the deferred row identities (by their low bits)
PARTITION_MASK = PARTITIONS - 1


@dataclass
class StockSnapshot:
    """Aggregate ATP per SKU, and how the rows that made it looked."""

    # a dict, or for a full export in the aggregate mode a view of `table`
    atp: Mapping[str, int] = field(default_factory=dict)
    rows: int = 0
    duplicate_rows: int = 0
    rows_without_key: int = 0
    complete: bool = True  # False when the read stopped early: never plan on a partial sum
    stopped: str | None = None  # why it is incomplete, when the source itself gave up
    # A delta holds only the SKUs whose stock changed: a SKU absent from it is unchanged.
    delta: bool = False
    # ATP per SKU per fulfillment node, when the reader was asked to keep it (incremental
    # runs merge it into the per-node state, per-location runs map it onto channels).
    nodes: dict[str, dict[str, int]] | None = None
    cursor: int | None = None  # the position in NewStore's stock that this snapshot reflects
    export_id: str | None = None
    # A full export in the aggregate mode: the compact state (job/stocktable.py) that `atp`
    # reads, the export's rows and the commercetools entries in it.
    table: StockTable | None = None


class StockSource(Protocol):
    # True when `read` returns a delta; known before reading, so that the sync reads only
    # the commercetools entries of the SKUs in it, and all of them otherwise.
    delta: bool

    async def read(self, progress: Progress, stop: Callable[[], bool]) -> StockSnapshot: ...


class StockAggregator:
    """Sums ATP per SKU over fulfillment nodes, one page of rows at a time.

    Rows are not kept: only the running sum per SKU, and a 64-bit hash of each row's
    (product, node) identity. Offset pages of a dataset that changes during the read can
    overlap; counting a row twice would overstate stock (the overselling this job exists
    to prevent), so a row seen before is ignored.

    `defer_duplicates`: the hashes are only recorded, 8 bytes each in arrays, not in a set
    (at 3M rows a set of them takes ~130 MB), and `repeated_rows()` tells at the end whether
    any row came twice; the caller then reads the rows again without deferring (an export
    file is on disk: `job.export`). The sums are right only when it answers False.
    """

    def __init__(
        self, match_field: MatchField, keep_nodes: bool = False, defer_duplicates: bool = False
    ) -> None:
        self.match_field = match_field
        self._atp: dict[str, int] = {}
        self.snapshot = StockSnapshot(atp=self._atp, nodes={} if keep_nodes else None)
        self._seen: set[int] | None = None if defer_duplicates else set()
        self._recorded = [array("q") for _ in range(PARTITIONS)] if defer_duplicates else []

    def repeated_rows(self) -> bool:
        """Deferred: whether a row identity was recorded twice (one partition at a time, so
        the check never holds more than a small set)."""
        return any(len(set(part)) != len(part) for part in self._recorded)

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        snapshot, seen, atp = self.snapshot, self._seen, self._atp
        per_node, recorded = snapshot.nodes, self._recorded
        for row in rows:
            key = row.get(self.match_field)
            if not isinstance(key, str) or not key:
                snapshot.rows_without_key += 1
                continue
            identity = hash((row.get("product_id") or key, row.get("fulfillment_node_id")))
            if seen is None:
                recorded[identity & PARTITION_MASK].append(identity)
            elif identity in seen:
                snapshot.duplicate_rows += 1
                continue
            else:
                seen.add(identity)
            snapshot.rows += 1
            value = int(row.get("atp") or 0)
            atp[key] = atp.get(key, 0) + value
            if per_node is not None:
                nodes = per_node.setdefault(key, {})
                # One string per node, not one per row: a parsed row brings its own copy,
                # and at 1M SKUs x 3 nodes those copies alone would take ~150 MB.
                node = sys.intern(str(row.get("fulfillment_node_id") or ""))
                nodes[node] = nodes.get(node, 0) + value


class StockedProductsSource:
    """All stock rows, by offset paging, pages fetched concurrently.

    The first page gives `pagination_info.total` and the page size NewStore really serves
    (it may serve fewer rows than asked); every other offset is then known up front, so the
    pages are fetched in parallel and the read always ends (the seed's loop re-requested the
    same offset forever). A short page is completed by asking for the rest of its range.

    Consistent or not used: offset pages of rows that change while they are read can skip
    a row (one deleted before it shifts it onto a page already read) and the sum would be
    understated, silently. A read counts only if every page reported the same `total` and
    exactly that many distinct rows were seen, none twice; otherwise the stock is read
    again, up to `attempts` times, and if it never holds still the snapshot is incomplete
    (`stopped: stock_changed_during_read`): nothing is written from it.
    """

    delta = False

    def __init__(
        self,
        newstore: NewStoreClient,
        match_field: MatchField,
        page_size: int,
        concurrency: int,
        keep_nodes: bool = False,
        attempts: int = READ_ATTEMPTS,
    ) -> None:
        self.keep_nodes = keep_nodes  # per-location runs need ATP per node
        self.newstore = newstore
        self.match_field = match_field
        self.page_size = page_size
        self.concurrency = concurrency
        self.attempts = attempts

    async def read(
        self, progress: Progress | None = None, stop: Callable[[], bool] = never
    ) -> StockSnapshot:
        progress = progress or NoProgress()
        for attempt in range(1, self.attempts + 1):
            snapshot, totals = await self._read_once(progress, stop)
            if not snapshot.complete:
                return snapshot
            seen = snapshot.rows + snapshot.rows_without_key
            (first_total, *_) = totals
            if set(totals) == {first_total} and seen == first_total and not snapshot.duplicate_rows:
                return snapshot
            log.warning(
                "stock changed while it was read: reading it again",
                attempt=attempt,
                attempts=self.attempts,
                totals=sorted(set(totals))[:5],
                expected_rows=first_total,
                rows=seen,
                duplicate_rows=snapshot.duplicate_rows,
            )
        log.error("stock never held still during a read: nothing is written from it")
        return StockSnapshot(complete=False, stopped=STOCK_CHANGED)

    async def _read_once(
        self, progress: Progress, stop: Callable[[], bool]
    ) -> tuple[StockSnapshot, list[int]]:
        """One read of every page; the `total` that each page reported."""
        aggregator = StockAggregator(self.match_field, self.keep_nodes)
        first = await self.newstore.stocked_products(self.page_size, 0)
        items = first.get("items") or []
        aggregator.add(items)
        total = _total(first)
        totals = [total]
        step = len(items)
        offsets = range(step, total, step) if step else range(0)
        progress.start("newstore", len(offsets) + 1)
        progress.advance("newstore")
        done = 0

        async def read_page(offset: int) -> None:
            nonlocal done
            totals.extend(await self._read_range(offset, min(step, total - offset), aggregator))
            done += 1
            progress.advance("newstore")

        await for_each(offsets, read_page, self.concurrency, stop)
        snapshot = aggregator.snapshot
        snapshot.complete = done == len(offsets)
        return snapshot, totals

    async def _read_range(self, offset: int, length: int, aggregator: StockAggregator) -> list[int]:
        """Rows [offset, offset + length): one request, more only if a page comes short.
        Returns the `total` each page reported."""
        totals: list[int] = []
        while length > 0:
            page = await self.newstore.stocked_products(length, offset)
            items = page.get("items") or []
            totals.append(_total(page))
            if not items:  # the stock shrank while paging: nothing left in this range
                break
            aggregator.add(items)
            offset += len(items)
            length -= len(items)
        return totals


def _total(page: dict[str, Any]) -> int:
    return int((page.get("pagination_info") or {}).get("total") or 0)
