"""A full read's state in flat arrays: every SKU once, NewStore's rows and totals, and the
channel-less entries of commercetools.

At 1M SKUs x 3 nodes, keeping a dict of nodes per SKU, an `Entry` per commercetools entry
and two copies of every SKU string took ~650 MB (docs/inventory.md, "At 1M SKUs"). Here a
SKU is a position in one dict (`index`), given by whichever read meets it first. NewStore's
rows are three arrays (position, node, ATP), the totals one more; an entry is its version,
its quantity and its id as 16 bytes (a UUID; any other id is kept as it is). About 170 bytes
a SKU and 16 a row, against ~650.

Both reads fill the one table from the one event loop thread (the export file is parsed a
batch at a time between awaits, job/export.py), so there is nothing to lock.

Used for a full export in the default `aggregate` mode, the one that must fit a million
SKUs in the job's memory; deltas and per-location runs get the dicts (`StockSnapshot.atp`,
`.nodes`), which are small for a delta and needed whole by the channel plan.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from job.plan import Create, Entry, Plan, Update, target_quantity

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NO_ID = bytes(16)
# A row's node and ATP share 64 bits: 48 for the ATP (signed: far beyond any stock level,
# and one outside is refused, never wrapped), 15 for the node's number.
ATP_BITS = 48
ATP_MASK = (1 << ATP_BITS) - 1
ATP_LIMIT = 1 << (ATP_BITS - 1)
MAX_NODES = 1 << 15
PARTITIONS = 256  # of the deferred row identities (by their low bits)
PARTITION_MASK = PARTITIONS - 1


class _IdentifiersLike(Protocol):
    @property
    def sku(self) -> Any: ...


class _ExternalLike(Protocol):
    @property
    def identifiers(self) -> _IdentifiersLike | None: ...


class ExportRowLike(Protocol):
    """What `add_export_rows` reads of a row (job/export.py's `ExportRow`)."""

    @property
    def product_id(self) -> Any: ...
    @property
    def fulfillment_node_id(self) -> Any: ...
    @property
    def atp(self) -> Any: ...
    @property
    def external_identifiers(self) -> Sequence[_ExternalLike] | None: ...


class InventoryRowLike(Protocol):
    """What `add_entries` reads of an entry (connector/commercetools.py's `InventoryRow`)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def sku(self) -> str: ...
    @property
    def quantityOnStock(self) -> int: ...
    @property
    def supplyChannel(self) -> Any: ...


class StockTable:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}  # SKU -> position, in the order first met
        # per position
        self.totals = array("q")  # aggregate ATP
        self.exported = bytearray()  # 1: NewStore has a row for it
        self.versions = array("q")  # of its channel-less entry; 0: it has none
        self.quantities = array("q")  # the entry's quantityOnStock
        self._entry_ids = bytearray()  # 16 bytes a position: the entry's id as a UUID
        self._other_ids: dict[int, str] = {}  # ids that are not lowercase UUIDs
        # per row of the export: its SKU's position, and its node and ATP packed into one
        # 64-bit value (`unpacked`: 12 bytes a row, not 16); dropped once the
        # per-node state is saved (`drop_rows`)
        self.row_skus = array("i")
        self.row_values = array("q")
        self.node_ids: list[str] = []
        self._node_index: dict[str, int] = {}
        # the row identities, recorded to find a repeated row at the end (`repeated_rows`)
        self._identities = [array("q") for _ in range(PARTITIONS)]
        self._seen: set[int] | None = None  # the exact mode (`restart_stock`)
        self.rows = 0
        self.rows_without_key = 0
        self.duplicate_rows = 0

    def position(self, sku: str) -> int:
        found = self.index.get(sku)
        if found is not None:
            return found
        position = self.index[sku] = len(self.index)
        self.totals.append(0)
        self.exported.append(0)
        self.versions.append(0)
        self.quantities.append(0)
        self._entry_ids += _NO_ID
        return position

    def node(self, node_id: str) -> int:
        found = self._node_index.get(node_id)
        if found is None:
            if len(self.node_ids) >= MAX_NODES:
                raise ValueError(f"more than {MAX_NODES} fulfillment nodes")
            found = self._node_index[sys.intern(node_id)] = len(self.node_ids)
            self.node_ids.append(node_id)
        return found

    # --- NewStore's side --------------------------------------------------------------------

    def add_export_rows(self, batch: Iterable[ExportRowLike], by_sku: bool) -> None:
        """Each row of an export batch whose key is a non-empty string (the first SKU its
        identifiers name, or its product id); the others are counted. A (product, node)
        already seen is counted and skipped in the exact mode (`restart_stock`); otherwise
        its identity is only recorded (8 bytes), for `repeated_rows`. The hot path of a
        3M-row export: written once, everything in locals."""
        index, totals, exported = self.index, self.totals, self.exported
        row_skus, row_values = self.row_skus, self.row_values
        identities, seen, node_index = self._identities, self._seen, self._node_index
        position_of, node_of = self.position, self.node
        for row in batch:
            key = row.product_id
            if by_sku:
                key = None
                for external in row.external_identifiers or ():
                    identifiers = external.identifiers
                    sku = identifiers.sku if identifiers is not None else None
                    if isinstance(sku, str) and sku:
                        key = sku
                        break
            if not isinstance(key, str) or not key:
                self.rows_without_key += 1
                continue
            node_id = row.fulfillment_node_id
            node_id = node_id if isinstance(node_id, str) else str(node_id or "")
            atp = row.atp
            atp = atp if type(atp) is int else int(atp or 0)
            if not -ATP_LIMIT <= atp < ATP_LIMIT:
                raise ValueError(f"an ATP of {atp} is not a stock level")
            identity = hash((row.product_id or key, node_id))
            if seen is None:
                identities[identity & PARTITION_MASK].append(identity)
            elif identity in seen:
                self.duplicate_rows += 1
                continue
            else:
                seen.add(identity)
            position = index.get(key)
            if position is None:
                position = position_of(key)
            node = node_index.get(node_id)
            if node is None:
                node = node_of(node_id)
            self.rows += 1
            totals[position] += atp
            exported[position] = 1
            row_skus.append(position)
            row_values.append(node << ATP_BITS | atp & ATP_MASK)

    def repeated_rows(self) -> bool:
        """Whether a (product, node) came twice: one partition at a time, so the check never
        holds more than a small set. The totals are right only when it answers False."""
        return any(len(set(part)) != len(part) for part in self._identities)

    def restart_stock(self) -> None:
        """Forget NewStore's side (the entries stay) for a second, exact read of a file that
        repeats rows: each (product, node) then counts once, checked against a set."""
        for position in range(len(self.totals)):
            self.totals[position] = 0
            self.exported[position] = 0
        self.drop_rows()
        self.rows = self.rows_without_key = self.duplicate_rows = 0
        self._seen = set()

    def drop_identities(self) -> None:
        """Once `repeated_rows` has answered: 8 bytes a row that nothing reads any more."""
        self._identities = [array("q") for _ in range(PARTITIONS)]

    def drop_rows(self) -> None:
        self.row_skus, self.row_values = array("i"), array("q")
        self._identities = []

    def exported_count(self) -> int:
        return self.exported.count(1)

    def totals_view(self) -> Totals:
        return Totals(self)

    def skus(self) -> list[str]:
        """Position -> SKU."""
        return list(self.index)

    def node_records(self) -> dict[str, dict[str, int]]:
        """ATP per SKU per node, summed over the rows (as `StockAggregator` keeps them)."""
        skus, nodes = self.skus(), self.node_ids
        records: dict[str, dict[str, int]] = {}
        for position, value in zip(self.row_skus, self.row_values, strict=True):
            node, atp = unpacked(value)
            record = records.setdefault(skus[position], {})
            record[nodes[node]] = record.get(nodes[node], 0) + atp
        return records

    # --- commercetools' side ----------------------------------------------------------------

    def add_entries(self, rows: Iterable[InventoryRowLike]) -> None:
        """Each channel-less row of an inventory page (1M at a million SKUs: written once,
        everything in locals); a channel's row is never taken, whatever the query asked."""
        index, versions, quantities = self.index, self.versions, self.quantities
        entry_ids, other_ids, position_of = self._entry_ids, self._other_ids, self.position
        uuid, fromhex = _UUID.fullmatch, bytes.fromhex
        for row in rows:
            if row.supplyChannel is not None:
                continue
            position = index.get(row.sku)
            if position is None:
                position = position_of(row.sku)
            versions[position] = row.version
            quantities[position] = row.quantityOnStock
            entry_id = row.id
            if uuid(entry_id):
                start = position * 16
                entry_ids[start : start + 16] = fromhex(entry_id.replace("-", ""))
            else:
                other_ids[position] = entry_id

    def entry(self, position: int) -> Entry | None:
        version = self.versions[position]
        if not version:
            return None
        return Entry(self.entry_id(position), version, self.quantities[position])

    def entry_id(self, position: int) -> str:
        other = self._other_ids.get(position)
        if other is not None:
            return other
        text = self._entry_ids[position * 16 : position * 16 + 16].hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def unpacked(value: int) -> tuple[int, int]:
    """(node, ATP) of a packed row value."""
    atp = value & ATP_MASK
    return value >> ATP_BITS, atp - (1 << ATP_BITS) if atp >= ATP_LIMIT else atp


class Totals(Mapping[str, int]):
    """The aggregate ATP of the SKUs NewStore exported, read from the table."""

    def __init__(self, table: StockTable) -> None:
        self._table = table
        self._len: int | None = None

    def __getitem__(self, sku: str) -> int:
        position = self._table.index[sku]
        if not self._table.exported[position]:
            raise KeyError(sku)
        return self._table.totals[position]

    def __iter__(self) -> Iterator[str]:
        exported = self._table.exported
        return (sku for sku, position in self._table.index.items() if exported[position])

    def __len__(self) -> int:
        if self._len is None:
            self._len = self._table.exported_count()
        return self._len


def table_entries(table: StockTable, skus: Iterable[str]) -> dict[str, Entry]:
    """The channel-less entries of some SKUs (a few: a dry run's sample, tests)."""
    found: dict[str, Entry] = {}
    for sku in skus:
        position = table.index.get(sku)
        entry = table.entry(position) if position is not None else None
        if entry is not None:
            found[sku] = entry
    return found


# --- the plan over the table (pure) ----------------------------------------------------------


def skus_without_entry(table: StockTable) -> list[str]:
    """`job.plan.skus_without_entry` over the table: exported SKUs without an entry, sorted."""
    exported, versions = table.exported, table.versions
    index = table.index
    return sorted(sku for sku, at in index.items() if exported[at] and not versions[at])


def plan_table(table: StockTable, product_skus: Collection[str]) -> Plan:
    """`job.plan.plan_sync` over the table: the same plan (tests/job/test_stocktable.py
    checks that on any input), without a mapping or an `Entry` per SKU; the writes are
    sorted by SKU as there."""
    updates: list[Update] = []
    creates: list[Create] = []
    unchanged = skipped = clamped = not_in_newstore = 0
    totals, exported = table.totals, table.exported
    versions, quantities = table.versions, table.quantities
    for sku, position in table.index.items():
        version = versions[position]
        if not exported[position]:
            not_in_newstore += version != 0
            continue
        aggregate = totals[position]
        quantity = target_quantity(aggregate)
        clamped += aggregate < 0
        if not version:
            if sku in product_skus:
                creates.append(Create(sku, quantity))
            else:
                skipped += 1
        elif quantities[position] != quantity:
            updates.append(Update(sku, table.entry_id(position), version, quantity))
        else:
            unchanged += 1
    updates.sort(key=lambda update: update.sku)
    creates.sort(key=lambda create: create.sku)
    return Plan(
        updates=updates,
        creates=creates,
        unchanged=unchanged,
        skipped_no_product=skipped,
        negative_clamped=clamped,
        not_in_newstore=not_in_newstore,
    )
