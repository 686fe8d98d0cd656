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
import io
import tempfile
import time
import zipfile
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import structlog

from connector.http import UpstreamError
from connector.newstore import SERVICE, NewStoreClient, NewStoreError
from job.bounded import NoProgress, Progress, never
from job.jsonarray import iter_json_values
from job.sources import MatchField, StockAggregator, StockSnapshot

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
    ) -> None:
        self.newstore = newstore
        self.match_field = match_field
        self.cursor = cursor
        self.polls = polls
        self.delta = cursor is not None
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
            # Parsing hundreds of thousands of rows takes about a second of CPU: off the
            # event loop, so that lease renewals and the commercetools read go on meanwhile.
            snapshot = await asyncio.to_thread(read_export_file, file, self.match_field)
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


def read_export_file(file: IO[bytes], match_field: MatchField) -> StockSnapshot:
    """Aggregate ATP per SKU over every row of a downloaded export file.

    A file normally holds each (product, node) once: its rows are summed with the repeats
    check deferred (`StockAggregator`, no set of 3M hashes), and only a file that does
    repeat a row is read a second time, each repeat then skipped and counted."""
    try:
        snapshot, repeated = _aggregate(file, match_field, defer_duplicates=True)
        if repeated:
            del snapshot  # before the second read: never two of them in memory
            log.warning("the export file repeats rows: read again, each repeat counted once")
            snapshot, _ = _aggregate(file, match_field, defer_duplicates=False)
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ExportFailed(SERVICE, f"the export file is unreadable: {error}"[:300]) from None
    return snapshot


def _aggregate(
    file: IO[bytes], match_field: MatchField, defer_duplicates: bool
) -> tuple[StockSnapshot, bool]:
    aggregator = StockAggregator(match_field, keep_nodes=True, defer_duplicates=defer_duplicates)
    aggregator.add(stock_rows(export_rows(file), match_field))  # keep_nodes: for job.nodes
    return aggregator.snapshot, aggregator.repeated_rows()


def export_rows(file: IO[bytes]) -> Iterator[Any]:
    """The rows of an export file: a JSON array, zipped (each JSON member in turn), or
    gzipped. Told apart by their first bytes, not by the link, whose name may say nothing."""
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
                    yield from _json_values(stream)
    elif magic == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=file) as stream:
            yield from _json_values(stream)
    else:
        yield from _json_values(file)


def is_export_member(member: zipfile.ZipInfo) -> bool:
    """A zip member that is the export's data: not a directory, nothing under `__MACOSX/`
    (the resource forks macOS's archiver adds), no dotfile (`.DS_Store`, `._name`) at any
    level. Those are not JSON, and reading them would call a good file unreadable."""
    if member.is_dir():
        return False
    parts = [part for part in member.filename.replace("\\", "/").split("/") if part]
    return bool(parts) and not any(p == "__MACOSX" or p.startswith(".") for p in parts)


def _json_values(binary: IO[bytes] | gzip.GzipFile) -> Iterator[Any]:
    # utf-8-sig: a byte order mark, should a tool write one, is not JSON.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig")
    try:
        yield from iter_json_values(text)
    finally:
        text.detach()  # closing the wrapper would close the file its owner still holds


def stock_rows(rows: Iterable[Any], match_field: MatchField) -> Iterator[Mapping[str, Any]]:
    """Export rows as the aggregator reads them: with the SKU under `sku`.

    The SKU is in `external_identifiers: [{identifiers: {sku}}]` (one entry per catalog and
    locale: the first that names a SKU counts). With `INVENTORY_MATCH_FIELD=product_id` the
    row's own `product_id` is the key and the identifiers are not looked at."""
    for row in rows:
        if not isinstance(row, dict):
            yield {}  # counted as a row without a key
            continue
        if match_field == "sku":
            row["sku"] = external_sku(row)  # a freshly parsed row: ours to change
        yield row


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
