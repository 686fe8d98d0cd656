"""NewStore's stock through the Availabilities Export API: everything, or what changed.

1. `POST /v0/d/availabilities/bulk` with `{}` (a full export) or `{last_updated_at}` (a
   delta: the products whose ATP changed after that cursor, each with all of its nodes);
2. poll `GET /v0/d/availabilities/bulk/{id}` until it is `finished`, waiting longer between
   polls (bounded), and give up at a deadline;
3. stream the file behind `link` to a temporary file, then read it back one row at a time:
   a JSON array, zipped or not, is never held in memory whole (`job.jsonarray`);
4. sum ATP per SKU with the same aggregator as the full read (`job.sources`).

The snapshot says whether it is a delta, and carries the export's `last_updated_at`: the
sync stores it as its cursor only once the changes are applied (`job.cursor`).
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import time
import zipfile
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import msgspec
import structlog

from connector.http import UpstreamError
from connector.newstore import SERVICE, NewStoreClient, NewStoreError
from job.bounded import NoProgress, Progress, never
from job.jsonarray import iter_array_batches
from job.sources import MatchField, StockSnapshot
from job.stocktable import StockTable

log = structlog.get_logger("job")

FINISHED = "finished"
# The export job's states: `processing`, `finished`, and `failed` as the one failure. What
# docs.newstore.net (api/integration/order-management/availability_export_api) shows of the
# job is these; any other state is taken as still running, logged once, and the wait is
# bounded by INVENTORY_EXPORT_TIMEOUT_S whatever NewStore answers (never by a guessed name).
FAILED_STATES = frozenset({"failed"})
KNOWN_STATES = frozenset({"processing", FINISHED, *FAILED_STATES})
UNAVAILABLE_STATUSES = frozenset({403, 404})
EXPORT_TIMEOUT = "export_timeout"


class ExportUnavailable(UpstreamError):
    """Starting an export answered 404 or 403: the API is not enabled for this tenant, or
    not allowed to this client (the client already retried with a fresh token)."""


class ExportFailed(UpstreamError):
    """The export ended in a failed state, or its file could not be read."""


class ExportNotFinished(Exception):
    """The wait for an export ended first; `reason` is None when the run had to stop."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PollPolicy:
    """Polls start `first_s` apart and double up to `max_s`; the wait ends after `timeout_s`."""

    timeout_s: float
    first_s: float = 0.25
    max_s: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


class ExportSource:
    """A `StockSource`: a full export without a cursor, a delta with one."""

    def __init__(
        self,
        newstore: NewStoreClient,
        match_field: MatchField,
        cursor: int | None,
        polls: PollPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        table: StockTable | None = None,
    ) -> None:
        """`table`: where a full export's rows go (`read_export`); a delta never uses it."""
        self.newstore = newstore
        self.match_field = match_field
        self.cursor = cursor
        self.polls = polls
        self.delta = cursor is not None
        self.table = None if self.delta else table
        self._sleep = sleep
        self._clock = clock

    async def read(
        self, progress: Progress | None = None, stop: Callable[[], bool] = never
    ) -> StockSnapshot:
        progress = progress or NoProgress()
        if stop():  # past the deadline already: do not make NewStore build a file for nothing
            return StockSnapshot(complete=False, delta=self.delta)
        export_id = await self._start()
        try:
            job = await self._wait(export_id, progress, stop)
        except ExportNotFinished as ended:
            return StockSnapshot(
                complete=False, stopped=ended.reason, delta=self.delta, export_id=export_id
            )
        cursor = _cursor(job.get("last_updated_at"))
        if self.delta and cursor == 0:
            # Nothing changed since the cursor: NewStore reports `last_updated_at: 0` for an
            # empty delta and may give no link (its own integrations never download one
            # then). The snapshot is empty and complete; the cursor never moves backwards
            # (`job.cursor.advanced`), so the next delta starts from the same place.
            log.info("export empty: nothing changed", export_id=export_id)
            snapshot = StockSnapshot()
        else:
            snapshot = await self._fetch(export_id, job)
        snapshot.delta, snapshot.export_id = self.delta, export_id
        snapshot.cursor = cursor
        return snapshot

    async def _start(self) -> str:
        try:
            job = await self.newstore.start_availability_export(self.cursor)
        except NewStoreError as error:
            if error.status in UNAVAILABLE_STATUSES:
                raise ExportUnavailable(
                    SERVICE,
                    f"the availabilities export API refused: {error.message}",
                    status=error.status,
                ) from error
            raise
        export_id = job.get("id") or job.get("availability_export_id")
        if not export_id:
            raise ExportFailed(SERVICE, f"an export started without an id: {str(job)[:200]}")
        return str(export_id)

    async def _wait(
        self, export_id: str, progress: Progress, stop: Callable[[], bool]
    ) -> dict[str, Any]:
        """The finished job; `ExportNotFinished` when the run must stop or time is up."""
        progress.start("export", None)
        started = self._clock()
        deadline = started + self.polls.timeout_s
        unknown: set[str] = set()
        for delay in self.polls.delays():
            if stop():
                raise ExportNotFinished(None)
            remaining = deadline - self._clock()
            if remaining <= 0:
                log.warning(
                    "export not finished before its deadline",
                    export_id=export_id,
                    waited_s=round(self._clock() - started, 1),
                )
                raise ExportNotFinished(EXPORT_TIMEOUT)
            await self._sleep(min(delay, remaining))  # the last poll falls on the deadline
            if stop():
                raise ExportNotFinished(None)
            job = await self.newstore.availability_export(export_id)
            progress.advance("export")
            state = str(job.get("state"))
            if state == FINISHED:
                return job
            if state in FAILED_STATES:
                reason = job.get("reason") or job.get("message") or state
                raise ExportFailed(SERVICE, f"export {export_id} failed: {reason}"[:300])
            if state not in KNOWN_STATES and state not in unknown:
                unknown.add(state)
                log.warning(
                    "export in an undocumented state: still waiting, up to the export timeout",
                    export_id=export_id,
                    state=state[:40],
                )
        raise AssertionError("unreachable: the delays never end")  # pragma: no cover

    async def _fetch(self, export_id: str, job: Mapping[str, Any]) -> StockSnapshot:
        link = job.get("link")
        if not isinstance(link, str) or not link:
            raise ExportFailed(SERVICE, f"export {export_id} finished without a link")
        started = time.monotonic()
        with tempfile.TemporaryFile() as file:
            size = await self.newstore.download(link, file)
            snapshot = await read_export(file, self.match_field, self.table)
        log.info(
            "export read",
            export_id=export_id,
            delta=self.delta,
            bytes=size,
            rows=snapshot.rows,
            skus=len(snapshot.atp),
            seconds=round(time.monotonic() - started, 2),
        )
        return snapshot


# --- the file -------------------------------------------------------------------------------


# gc=False: decoded rows hold no cycles, and tracking millions of them made the collector
# walk them again and again (measured: a third of the decoding time with a large heap).
class _Identifiers(msgspec.Struct, gc=False):
    sku: Any = None


class _External(msgspec.Struct, gc=False):
    identifiers: _Identifiers | None = None


class ExportRow(msgspec.Struct, gc=False):
    """What the sync reads of an export row; every other field is skipped by the decoder
    without being built. Leaves are `Any`: a value of another type is judged by the sync
    (as before), not refused by the decoder."""

    product_id: Any = None
    fulfillment_node_id: Any = None
    atp: Any = None
    external_identifiers: list[_External] | None = None


_decode_rows = msgspec.json.Decoder(list[ExportRow]).decode


def _row_of(value: Any) -> ExportRow:
    """A row the typed decoder refused (another shape): the same fields, read leniently."""
    if not isinstance(value, dict):
        return ExportRow()  # counted as a row without a key
    sku = external_sku(value)
    external = [_External(_Identifiers(sku))] if sku is not None else None
    return ExportRow(
        value.get("product_id"), value.get("fulfillment_node_id"), value.get("atp"), external
    )


async def read_export(
    file: IO[bytes], match_field: MatchField, table: StockTable | None = None
) -> StockSnapshot:
    """Aggregate ATP per SKU over every row of a downloaded export file, a batch of rows at
    a time, yielding to the event loop between batches (lease renewals and the
    commercetools reads go on meanwhile, without a thread: both fill `table`).

    With `table` (a full export in the `aggregate` mode) the snapshot reads its totals
    from it and keeps its rows for the per-node state; without, the snapshot gets plain
    dicts (`atp`, `nodes`): a delta is small, and the channel plan needs them whole."""
    for _ in _filled(file, match_field, own := table or StockTable()):
        await asyncio.sleep(0)
    return _snapshot(own, table is None)


def read_export_file(file: IO[bytes], match_field: MatchField) -> StockSnapshot:
    """`read_export` without an event loop (the same rows, the same checks)."""
    table = StockTable()
    for _ in _filled(file, match_field, table):
        pass
    return _snapshot(table, True)


def _filled(file: IO[bytes], match_field: MatchField, table: StockTable) -> Iterator[None]:
    """Read the file into the table, a batch at a time (a step per batch).

    A file normally holds each (product, node) once: its rows are summed with the repeats
    check deferred (8 bytes a row, no set of 3M hashes), and only a file that does repeat a
    row is read a second time, each repeat then skipped and counted."""
    try:
        yield from _rows_into(file, match_field, table)
        if table.repeated_rows():
            log.warning("the export file repeats rows: read again, each repeat counted once")
            table.restart_stock()
            yield from _rows_into(file, match_field, table)
        table.drop_identities()
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ExportFailed(SERVICE, f"the export file is unreadable: {error}"[:300]) from None


def _snapshot(table: StockTable, as_dicts: bool) -> StockSnapshot:
    snapshot = StockSnapshot(
        rows=table.rows,
        duplicate_rows=table.duplicate_rows,
        rows_without_key=table.rows_without_key,
    )
    if as_dicts:
        snapshot.atp = dict(table.totals_view())
        snapshot.nodes = table.node_records()
    else:
        snapshot.atp, snapshot.table = table.totals_view(), table
    return snapshot


def _rows_into(file: IO[bytes], match_field: MatchField, table: StockTable) -> Iterator[None]:
    by_sku = match_field == "sku"
    for batch in export_batches(file):
        table.add_export_rows(batch, by_sku)
        yield


def export_batches(file: IO[bytes]) -> Iterator[list[ExportRow]]:
    """The rows of an export file, in batches: a JSON array (or JSON lines), zipped (each
    JSON member in turn), or gzipped. Told apart by their first bytes, not by the link,
    whose name may say nothing."""
    file.seek(0)
    magic = file.read(2)
    file.seek(0)
    if magic == b"PK":
        with zipfile.ZipFile(file) as archive:
            members = [member for member in archive.infolist() if is_export_member(member)]
            if not members:
                raise ValueError("the zip holds no export file")
            for member in members:
                with archive.open(member) as stream:
                    yield from iter_array_batches(stream, _decode_rows, _row_of)
    elif magic == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=file) as stream:
            yield from iter_array_batches(stream, _decode_rows, _row_of)
    else:
        yield from iter_array_batches(file, _decode_rows, _row_of)


def export_rows(file: IO[bytes]) -> Iterator[ExportRow]:
    """Each row of an export file as the sync reads it (for tests and tools)."""
    for batch in export_batches(file):
        yield from batch


def is_export_member(member: zipfile.ZipInfo) -> bool:
    """A zip member that is the export's data: not a directory, nothing under `__MACOSX/`
    (the resource forks macOS's archiver adds), no dotfile (`.DS_Store`, `._name`) at any
    level. Those are not JSON, and reading them would call a good file unreadable."""
    if member.is_dir():
        return False
    parts = [part for part in member.filename.replace("\\", "/").split("/") if part]
    return bool(parts) and not any(p == "__MACOSX" or p.startswith(".") for p in parts)


def external_sku(row: Mapping[str, Any]) -> str | None:
    for external in row.get("external_identifiers") or ():
        identifiers = external.get("identifiers") if isinstance(external, dict) else None
        sku = identifiers.get("sku") if isinstance(identifiers, dict) else None
        if isinstance(sku, str) and sku:
            return sku
    return None


def _cursor(value: Any) -> int | None:
    # An integer, never a timestamp; bool is an int in Python but not a cursor.
    return value if isinstance(value, int) and not isinstance(value, bool) else None
