"""Per-node ATP kept between incremental runs, so that a delta yields the right totals.

NewStore's docs do not say whether a global delta export carries every node of a changed
product or only the (product, node) rows that changed (the Availabilities Export page says
only a *channel* export re-exports "the whole channel ... and not just the updated ATP of
the location"; ../shared/DESIGN.md). Summing a delta's rows is right only under the first
reading: a SKU at 3 + 4 whose first node drops to 0 would be written as 0 instead of 4.

So the job keeps what every node last reported, per SKU, and a delta *merges* into it:
the rows of a delta replace those nodes' values, the others keep theirs. That is right
under both readings. `INVENTORY_DELTA_ROWS=product` (the other reading, declared) makes a
product's rows replace its whole record instead, so a node that disappeared from a product
is dropped at once; under `changed` (the default) it is dropped when NewStore sends it with
ATP 0, or at the next full export, which replaces every record.

Where it lives, and why (docs/inventory.md, "Per-node state"): Custom Objects in the
container `<INVENTORY_LEASE_CONTAINER>-nodes`, one per bucket of SKUs (4,096 buckets by a
stable hash of the SKU, key `nodes-<hex>`), value `{sku: {node: atp}}`. Not on the entries
themselves: in the default `aggregate` mode there is no per-node entry, a custom field would
need a Type (and the `manage_types` scope) and rewrite every entry once; and a record per
SKU would cost a request per changed SKU. A delta reads only the buckets of its SKUs (100
keys a query) and writes those that changed (100 to a GraphQL request); a quiet run reads
none.

The state is NewStore's truth, not commercetools': it is saved once the export is read,
before the writes, whatever they do. Merging the same rows twice is harmless, so a run whose
cursor does not move (a failed write) and the repeated delta of the next run agree.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from connector.commercetools import CommercetoolsClient, CommercetoolsError
from connector.http import UpstreamError
from job.bounded import chunks, for_each
from job.stocktable import StockTable, unpacked

DeltaRows = Literal["changed", "product"]
NodeAtp = dict[str, int]  # fulfillment node id -> ATP

BUCKETS = 4096
KEY_PREFIX = "nodes-"
# Written once a full export's records are saved: until then a delta cannot be merged into
# anything, and the run makes a full export instead.
READY_KEY = "ready"
KEYS_PER_QUERY = 100
WRITE_BATCH = 100  # buckets per GraphQL request


def bucket_key(sku: str) -> str:
    """The Custom Object key holding a SKU's record (stable across processes)."""
    return key_of(bucket_index(sku))


def bucket_index(sku: str) -> int:
    digest = hashlib.blake2b(sku.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def key_of(index: int) -> str:
    return f"{KEY_PREFIX}{index:03x}"


def container_of(lease_container: str) -> str:
    return f"{lease_container}-nodes"


@dataclass
class Bucket:
    key: str
    version: int = 0  # of the Custom Object; 0 while it does not exist
    skus: dict[str, NodeAtp] = field(default_factory=dict)
    # `canonical(skus)`, when already made (a full export compares it): not made twice
    text: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Stored:
    """What a full export needs of a stored bucket: its version, and a digest of its value
    (never the value itself: at 1M SKUs that would be a second copy of the whole state)."""

    version: int
    digest: bytes


@dataclass
class ReadBucket:
    """A stored bucket as a delta reads it: each SKU's record kept as its JSON text until
    the delta names that SKU (`record`); the others are written back as they were read. A
    1% delta at 1M SKUs reads about 250 records of a bucket for the 2 or 3 it changes."""

    key: str
    version: int = 0  # of the Custom Object; 0 while it does not exist
    records: dict[str, msgspec.Raw] = field(default_factory=dict)

    def record(self, sku: str) -> NodeAtp | None:
        """The SKU's stored ATP per node; None when it has no record (or no object)."""
        raw = self.records.get(sku)
        if raw is None:
            return None
        try:
            return _RECORD.decode(raw)
        except msgspec.ValidationError:  # not written by this job: read what can be read
            nodes = json.loads(bytes(raw))
            if not isinstance(nodes, dict):
                return None
            return {str(n): int(a) for n, a in nodes.items() if isinstance(a, int)}


@dataclass(frozen=True)
class Written:
    """A bucket a delta writes: its value already serialised."""

    key: str
    version: int
    text: str


def all_keys() -> list[str]:
    return [key_of(index) for index in range(BUCKETS)]


def canonical(skus: Mapping[str, Mapping[str, int]]) -> str:
    """A bucket's value as a full export writes it (and as a stored one is compared):
    the same text as a delta writes (`encoded`)."""
    return encoded(skus)


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


# --- pure ---------------------------------------------------------------------------------


def merge_delta(
    stored: Mapping[str, Mapping[str, int]],
    delta: Mapping[str, Mapping[str, int]],
    reading: DeltaRows,
) -> dict[str, NodeAtp]:
    """The per-node ATP of every SKU of a delta, after the delta.

    `changed`: the delta's nodes replace the stored values of those nodes only;
    `product`: the delta holds every node of each of its products, so it replaces them all.
    Nodes reported with ATP 0 are not kept (a missing node counts 0 anyway)."""
    merged: dict[str, NodeAtp] = {}
    for sku, nodes in delta.items():
        base = {} if reading == "product" else dict(stored.get(sku) or {})
        base.update(nodes)
        merged[sku] = {node: atp for node, atp in base.items() if atp != 0}
    return merged


def compact(nodes: Mapping[str, int]) -> NodeAtp:
    return {node: atp for node, atp in nodes.items() if atp != 0}


def rebucket(
    current: Mapping[str, ReadBucket], records: Mapping[str, Mapping[str, int]]
) -> list[Written]:
    """The buckets a delta writes: `records` put into the buckets read for them (the other
    SKUs of those buckets keep theirs, as read). Only buckets whose content changes are
    returned, their value serialised (sorted keys, as `canonical`).

    Compared record by record, and only a bucket that changes is copied: at 1M SKUs a 1%
    delta reads most buckets (about 250 SKUs each) but changes 2 or 3 records in each."""
    content: dict[str, dict[str, msgspec.Raw | NodeAtp]] = {}
    for sku, nodes in records.items():
        key = bucket_key(sku)
        kept = compact(nodes)
        skus = content.get(key)
        if skus is None:
            before = current.get(key) or ReadBucket(key)
            if sku in before.records:
                if kept and before.record(sku) == kept:
                    continue  # as stored
            elif not kept:
                continue  # not stored, nothing to store
            skus = content[key] = dict(before.records)  # shallow: records are replaced
        if kept:
            skus[sku] = kept
        else:
            skus.pop(sku, None)
    changed = []
    for key, skus in sorted(content.items()):
        read = current.get(key)  # a bucket is copied only for a record that differs
        changed.append(Written(key, read.version if read is not None else 0, encoded(skus)))
    return changed


def full_buckets(stored: Mapping[str, Stored], records: Mapping[str, NodeAtp]) -> list[Bucket]:
    """The buckets a full export writes: every bucket holds exactly its SKUs of `records`
    (SKUs no longer exported are dropped), and only those whose value differs from the
    stored one (by digest) are returned, their value already serialised. A record without
    a zero is shared, not copied."""
    grouped: dict[str, dict[str, NodeAtp]] = {}
    for sku, nodes in records.items():
        grouped.setdefault(bucket_key(sku), {})[sku] = nodes
    changed = []
    for key in all_keys():
        bucket = _changed(key, stored.get(key), grouped.pop(key, {}))
        if bucket is not None:
            changed.append(bucket)
    return changed


def table_buckets(stored: Mapping[str, Stored], table: StockTable) -> Iterator[Bucket]:
    """`full_buckets` over a full export's table (job/stocktable.py), a bucket at a time:
    the rows are grouped by bucket (their row numbers, 4 bytes each), and only one bucket's
    records exist at once, so the state is never held twice as dicts. The same buckets,
    texts and digests as `full_buckets` of `table.node_records()` (tests/job/test_stocktable.py)."""
    skus, node_ids = table.skus(), table.node_ids
    row_skus, row_values = table.row_skus, table.row_values
    of_position = array("H", (bucket_index(sku) for sku in skus))
    grouped = [array("i") for _ in range(BUCKETS)]
    for row, position in enumerate(row_skus):
        grouped[of_position[position]].append(row)
    del of_position
    for index, rows in enumerate(grouped):
        records: dict[str, NodeAtp] = {}
        for row in rows:
            sku = skus[row_skus[row]]
            node_number, atp = unpacked(row_values[row])
            node = node_ids[node_number]
            record = records.get(sku)
            if record is None:
                record = records[sku] = {}
            record[node] = record.get(node, 0) + atp
        grouped[index] = array("i")  # done with its rows
        bucket = _changed(key_of(index), stored.get(key_of(index)), records)
        if bucket is not None:
            yield bucket


def _changed(key: str, before: Stored | None, records: Mapping[str, NodeAtp]) -> Bucket | None:
    """A full export's bucket `key` holding exactly `records` (zeros dropped), or None when
    the stored one already holds that (by digest)."""
    skus: dict[str, NodeAtp] = {}
    for sku, nodes in records.items():
        kept = nodes if all(nodes.values()) else compact(nodes)
        if kept:
            skus[sku] = kept  # shared with the caller's records: read-only from here on
    if before is None and not skus:
        return None
    text = canonical(skus)
    if before is not None and before.digest == digest(text):
        return None
    return Bucket(key, before.version if before else 0, skus, text)


class _StoredBucket(msgspec.Struct):
    key: str
    version: int
    value: dict[str, msgspec.Raw]


class _StoredPage(msgspec.Struct):
    results: list[_StoredBucket]


_PAGE = msgspec.json.Decoder(_StoredPage)
_RECORD = msgspec.json.Decoder(dict[str, int])
# A bucket's text: sorted keys, compact, non-ASCII as UTF-8. One text for full exports and
# deltas alike, so a digest compares like with like; several times cheaper than json.dumps
# (4 s of a 1M-SKU full export's CPU went to json.dumps of the 4,096 buckets).
_VALUE = msgspec.json.Encoder(order="sorted")


def decode_page(body: bytes) -> list[ReadBucket]:
    """The buckets of a Custom Object query page, each record left undecoded; a page whose
    objects are of another shape is read leniently instead (`from_stored`)."""
    try:
        page = _PAGE.decode(body)
    except msgspec.ValidationError:
        results = json.loads(body).get("results") or []
        buckets = [from_stored(obj) for obj in results if isinstance(obj, dict)]
        return [
            ReadBucket(b.key, b.version, {sku: _raw(nodes) for sku, nodes in b.skus.items()})
            for b in buckets
        ]
    return [ReadBucket(stored.key, stored.version, stored.value) for stored in page.results]


def _raw(nodes: NodeAtp) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(nodes))


def encoded(skus: Mapping[str, msgspec.Raw | Mapping[str, int]]) -> str:
    """A bucket's value as a delta writes it (the same JSON value as `canonical`)."""
    return _VALUE.encode(skus).decode()


def from_stored(obj: Mapping[str, Any]) -> Bucket:
    value = obj.get("value") if isinstance(obj.get("value"), dict) else {}
    skus: dict[str, NodeAtp] = {}
    for sku, nodes in (value or {}).items():
        if isinstance(nodes, dict):
            skus[str(sku)] = {str(n): int(a) for n, a in nodes.items() if isinstance(a, int)}
    return Bucket(str(obj["key"]), int(obj.get("version") or 0), skus)


# --- I/O ----------------------------------------------------------------------------------


class NodeStateError(UpstreamError):
    """The per-node state could not be saved (another writer, or an upstream failure)."""


class NodeStateStore:
    def __init__(self, ctp: CommercetoolsClient, container: str, concurrency: int) -> None:
        self.ctp = ctp
        self.container = container
        self.concurrency = concurrency

    async def ready(self) -> bool:
        return await self.ctp.get_custom_object(self.container, READY_KEY) is not None

    async def mark_ready(self) -> None:
        if not await self.ready():
            try:
                await self.ctp.put_custom_object(self.container, READY_KEY, True, 0)
            except CommercetoolsError as error:
                if "ConcurrentModification" not in error.codes:  # another run was first
                    raise

    async def load(self, skus: Iterable[str]) -> dict[str, ReadBucket]:
        """The buckets holding these SKUs (absent ones as empty buckets at version 0)."""
        keys = sorted({bucket_key(sku) for sku in skus})
        found: dict[str, ReadBucket] = {key: ReadBucket(key) for key in keys}

        async def read(batch: Sequence[str]) -> None:
            where = f"key in ({', '.join(_quoted(k) for k in batch)})"
            # by id: the order does not matter here, and a sort by key costs the API more
            body = await self.ctp.query_custom_objects_body(
                self.container, [where], limit=len(batch), sort="id asc"
            )
            for bucket in decode_page(body):
                found[bucket.key] = bucket

        await for_each(list(chunks(keys, KEYS_PER_QUERY)), read, self.concurrency)
        return found

    async def load_all(self) -> dict[str, Stored]:
        """The version and digest of every stored bucket (a full export replaces them all).

        The keys are known (`all_keys`), so they are read by key, `KEYS_PER_QUERY` to a
        query and `concurrency` queries at a time, not by one sequential cursor; each page
        is reduced to digests as it arrives, so the old state is never held whole."""
        found: dict[str, Stored] = {}

        async def read(batch: Sequence[str]) -> None:
            where = f"key in ({', '.join(_quoted(k) for k in batch)})"
            for obj in await self.ctp.query_custom_objects(
                self.container, [where], limit=len(batch)
            ):
                bucket = from_stored(obj)
                found[bucket.key] = Stored(bucket.version, digest(canonical(bucket.skus)))

        await for_each(list(chunks(all_keys(), KEYS_PER_QUERY)), read, self.concurrency)
        return found

    async def merge(
        self, rows: Mapping[str, Mapping[str, int]], reading: DeltaRows, save: bool
    ) -> dict[str, NodeAtp]:
        """A delta's rows merged into the stored state (`merge_delta`), saved unless `save`
        is false; the merged records of the delta's SKUs.

        Batch by batch of `KEYS_PER_QUERY` buckets: each batch is read, merged and written
        back while the other batches are still being read, so the reads, the job's decoding
        and the writes overlap, and at most `concurrency` batches of the old state are held
        at a time (a 1% delta at 1M SKUs reads most buckets). Returns only once every batch
        is saved; `NodeStateError` then if any bucket was not."""
        by_key: dict[str, list[str]] = {}
        for sku in rows:
            by_key.setdefault(bucket_key(sku), []).append(sku)
        merged: dict[str, NodeAtp] = {}
        failures: list[str] = []
        written = 0

        async def step(keys: Sequence[str]) -> None:
            nonlocal written
            skus = [sku for key in keys for sku in by_key[key]]
            current = await self.load(skus)
            stored = {sku: current[bucket_key(sku)].record(sku) or {} for sku in skus}
            part = merge_delta(stored, {sku: rows[sku] for sku in skus}, reading)
            merged.update(part)
            if save:
                for batch in chunks(rebucket(current, part), WRITE_BATCH):
                    written += len(batch)
                    failures.extend(await self._write(batch))

        await for_each(list(chunks(sorted(by_key), KEYS_PER_QUERY)), step, self.concurrency)
        if failures:
            raise _not_saved(failures, written)
        return merged

    async def save(self, buckets: list[Bucket]) -> None:
        """Write each at the version it was read at, `WRITE_BATCH` to a GraphQL request
        (aliased `createOrUpdateCustomObject`s); `NodeStateError` if any fails."""
        failures: list[str] = []

        async def write(batch: Sequence[Bucket]) -> None:
            failures.extend(await self._write(batch))

        await for_each(list(chunks(buckets, WRITE_BATCH)), write, self.concurrency)
        if failures:
            raise _not_saved(failures, len(buckets))

    async def _write(self, batch: Sequence[Bucket | Written]) -> list[str]:
        """One request of aliased writes; what failed, one line per bucket."""
        document, variables = save_document(self.container, batch)
        try:
            body = await self.ctp.graphql(document, variables)
        except UpstreamError as error:
            return [f"{bucket.key}: {error}" for bucket in batch]
        data = body.get("data") or {}
        failures = []
        for problem in body.get("errors") or []:
            where = (problem.get("path") or ["?"])[0]
            failures.append(f"{where}: {problem.get('message')}")
        failures.extend(
            f"{bucket.key}: no result"
            for index, bucket in enumerate(batch)
            if data.get(f"n{index}") is None and not body.get("errors")
        )
        return failures


def _not_saved(failures: Sequence[str], total: int) -> NodeStateError:
    return NodeStateError(
        "commercetools",
        f"per-node state not saved ({len(failures)} of {total}): {failures[0]}"[:300],
    )


def save_document(container: str, batch: Sequence[Bucket | Written]) -> tuple[str, dict[str, Any]]:
    """One aliased mutation per bucket, its draft a variable (`value` is escaped JSON, as
    `CustomObjectDraft` says; version 0: create only if absent)."""
    declared = ", ".join(f"$d{i}: CustomObjectDraft!" for i in range(len(batch)))
    fields = "\n".join(
        f"  n{i}: createOrUpdateCustomObject(draft: $d{i}) {{ version }}" for i in range(len(batch))
    )
    variables = {
        f"d{i}": {
            "container": container,
            "key": bucket.key,
            "value": _value(bucket),
            "version": bucket.version,
        }
        for i, bucket in enumerate(batch)
    }
    return f"mutation SaveNodeState({declared}) {{\n{fields}\n}}", variables


def _value(bucket: Bucket | Written) -> str:
    if isinstance(bucket, Written) or bucket.text is not None:
        return bucket.text or ""
    return canonical(bucket.skus)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
