"""One inventory sync: lease -> read both sides -> plan -> apply -> release.

Modes (`INVENTORY_SYNC_MODE`, docs/inventory.md): `full` reads every stock row
(`StockedProductsSource`); `incremental` reads NewStore's Availabilities Export API
(`ExportSource`): a full export without a cursor or when a reconciliation is due, a delta
otherwise; `auto` is incremental, or full while the export API answers 404/403. Every mode
goes through the same read -> plan -> apply path (`_sync`); a delta only narrows what is
read on the commercetools side to the entries of its SKUs.

A full read reads both sides at the same time (NewStore's pages dominate; commercetools'
cursor pages are sequential and hide behind them). Products are looked up only for SKUs
without an entry, in bulk. The plan is pure (`job.plan`); the big read structures are
dropped once it is made, so only the writes stay in memory while they are applied.

The run stops starting new work at its deadline or when it can no longer trust its lease,
and reports what is left; the next run picks it up (a full run recomputes everything, an
incremental one keeps its cursor, so the next delta holds the same changes again).
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import structlog

from connector import metrics
from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy, UpstreamError, new_http_client
from connector.newstore import NewStoreClient
from connector.ratelimit import RateGate
from connector.settings import ConfigError, Settings
from job.apply import apply_writes, make_writer
from job.bounded import NoProgress, Progress, together
from job.channels import (
    ChannelSync,
    ensure_channels,
    fetch_channel_entries,
    read_channel_entries,
)
from job.cursor import CursorState, CursorStore, ExportChoice, advanced, choose_export
from job.export import ExportSource, ExportUnavailable, PollPolicy
from job.failing import MAX_FAILING, Failing, RetryingFailing, listed, still_failing
from job.inventory_reads import fetch_channel_less, product_skus, read_channel_less_entries
from job.lease import Lease, minimum_duration
from job.locations import parse_location_map, plan_channels, read_locations
from job.nodes import (
    NodeStateStore,
    container_of,
    full_buckets,
    table_buckets,
)
from job.plan import (
    ChannelSlot,
    Entry,
    Plan,
    plan_sync,
    sample_changes,
    skus_without_channel_entry,
    skus_without_entry,
)
from job.plan import (
    plan_channels as plan_channel_entries,
)
from job.settings import InventorySettings
from job.sources import StockedProductsSource, StockSnapshot, StockSource
from job.stocktable import StockTable, plan_table, table_entries
from job.stocktable import skus_without_entry as table_skus_without_entry
from job.watchdog import Watchdog, load_watchdog_settings

log = structlog.get_logger("job")

LEASE_KEY = "inventory-sync"
# A job may wait out long Retry-After answers: one missing stock page means no sync at all.
JOB_RETRY = RetryPolicy(max_attempts=6, budget_s=60.0, initial_backoff_s=0.2, max_backoff_s=10.0)
# A batch of aliased mutations runs serially on commercetools' side: allow it time.
JOB_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
# The longest one call (a write batch, a lease renewal) can take: its attempts start within
# the retry budget (a Retry-After beyond it ends the retries), and the last one may then
# take its connect and read timeouts in full. The lease is trusted only while a write that
# starts now would end before it expires (job/lease.py).
LONGEST_CALL_S = JOB_RETRY.budget_s + (JOB_TIMEOUT.connect or 0.0) + (JOB_TIMEOUT.read or 0.0)
FAILED_LISTED = 1000  # the reply lists at most this many failed SKUs (all are counted)
DRY_RUN_SAMPLE = 10
SAVED_AT_ONCE = 400  # per-node buckets serialised ahead of their writes (~6 MB at 1M SKUs)


class Status(StrEnum):
    OK = "ok"  # every planned write was made
    # every planned write was attempted, some SKUs failed (listed in `failed`; kept and
    # retried by the next runs: `failing`); logged at ERROR, answered 200 (job/app.py)
    DEGRADED = "degraded"
    PARTIAL = "partial"  # stopped early (deadline or lease lost): see `remaining`
    SKIPPED = "skipped"  # another run holds the lease
    ERROR = "error"  # could not run (an upstream down, ...): nothing was written
    DRY_RUN = "dry_run"


@dataclass
class JobClients:
    ctp: CommercetoolsClient
    newstore: NewStoreClient

    def request_counts(self) -> dict[str, int]:
        """Requests sent so far, retries and token requests included."""
        return {
            "newstore": self.newstore.requests + self.newstore.token_fetches,
            "commercetools": self.ctp.requests + self.ctp.token_fetches,
        }

    async def aclose(self) -> None:
        await together(self.ctp.aclose(), self.newstore.aclose())


def build_clients(settings: Settings, inventory: InventorySettings) -> JobClients:
    gate = RateGate(inventory.newstore_rate_limit)
    connections = inventory.concurrency + 4
    newstore_http = new_http_client(JOB_TIMEOUT, connections, event_hooks=gate.event_hooks())
    ctp_http = new_http_client(JOB_TIMEOUT, connections)
    return JobClients(
        CommercetoolsClient(settings.commercetools, http=ctp_http, retry=JOB_RETRY),
        NewStoreClient(settings.newstore, http=newstore_http, retry=JOB_RETRY),
    )


def build_sync(settings: Settings, inventory: InventorySettings) -> InventorySync:
    return InventorySync(build_clients(settings, inventory), inventory)


@dataclass
class SyncReport:
    status: Status
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_no_product: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    remaining: int = 0
    stopped: str | None = None
    negative_clamped: int = 0
    not_in_newstore: int = 0
    stock_rows: int = 0
    planned: dict[str, int] | None = None  # {"updates": n, "creates": n}
    phases_s: dict[str, float] = field(default_factory=dict)  # where the time went
    error: str | None = None
    holder: dict[str, Any] | None = None
    sample: list[dict[str, Any]] | None = None
    duration_s: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    mode: str | None = None  # the mode used: full or incremental
    mode_reason: str | None = None
    export: str | None = None  # incremental: "full" or "delta"
    export_id: str | None = None
    cursor_before: int | None = None
    exported_cursor: int | None = None  # what the export reported (0 for some empty deltas)
    cursor_after: int | None = None  # what is stored once the run is over
    # per-location: the channels synced, and the NewStore locations left out (and why)
    channels: dict[str, Any] | None = None
    watchdog: dict[str, Any] | None = None  # job/watchdog.py, after a run that did run
    failed_targets: dict[str, int] = field(default_factory=dict)  # what failed writes wanted
    retried_failing: int = 0  # kept failing SKUs a delta retried
    # incremental: the SKUs kept as failing once the run is over (None: not recorded)
    failing: list[dict[str, Any]] | None = None

    def summary(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status.value,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped_no_product": self.skipped_no_product,
            "failed": [
                {"sku": sku, "reason": reason} for sku, reason in self.failed[:FAILED_LISTED]
            ],
            "failed_total": len(self.failed),
            "remaining": self.remaining,
            "negative_clamped": self.negative_clamped,
            "not_in_newstore": self.not_in_newstore,
            "stock_rows": self.stock_rows,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "phases_s": {phase: round(seconds, 3) for phase, seconds in self.phases_s.items()},
        }
        optional = {
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "export": self.export,
            "export_id": self.export_id,
            "planned": self.planned,
            "stopped": self.stopped,
            "error": self.error,
            "holder": self.holder,
            "sample": self.sample,
            "channels": self.channels,
            "watchdog": self.watchdog,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        if self.failing is not None:
            body["failing"] = self.failing
            body["retried_failing"] = self.retried_failing
        if self.mode == "incremental":
            body["cursor"] = {
                "before": self.cursor_before,
                "exported": self.exported_cursor,
                "after": self.cursor_after,
            }
        return body


class InventorySync:
    def __init__(
        self,
        clients: JobClients,
        settings: InventorySettings,
        source: StockSource | None = None,
        polls: PollPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        watchdog: Watchdog | None = None,
        lease_factory: Callable[[], Lease] | None = None,
    ) -> None:
        """`source`: the stock read by the full mode (NewStore's stocked products by
        default); `polls`: how an export is waited for; `clock`: wall-clock time, for the
        reconciliation period and the watchdog; `watchdog`: the look at both pipes after
        each run (by default over the same clients, WATCHDOG_* from the environment);
        `lease_factory`: the run's lease (tests shorten it)."""
        self.clients = clients
        self.settings = settings
        self.full_source = source or StockedProductsSource(
            clients.newstore,
            settings.match_field,
            settings.newstore_page_size,
            settings.concurrency,
            keep_nodes=settings.channels != "aggregate",
        )
        self.polls = polls or PollPolicy(settings.export_timeout_s)
        self.clock = clock
        self.cursors = CursorStore(clients.ctp, settings.lease_container)
        self.location_map = parse_location_map(settings.location_map)
        self.aggregate = settings.channels != "per-location"  # the channel-less entry too
        self.nodes = NodeStateStore(
            clients.ctp, container_of(settings.lease_container), settings.concurrency
        )
        self.watchdog = watchdog or Watchdog(
            clients.ctp,
            clients.newstore,
            settings.lease_container,
            load_watchdog_settings(),
            os.environ,
            clock,
        )
        self.lease_factory = lease_factory or self._lease
        if lease_factory is None and settings.lease_s < minimum_duration(LONGEST_CALL_S):
            raise ConfigError(
                f"INVENTORY_LEASE_S={settings.lease_s:g} is too short: a write may take "
                f"{LONGEST_CALL_S:g} s, so the lease must last at least "
                f"{minimum_duration(LONGEST_CALL_S):g} s to stay trusted between renewals"
            )

    def _lease(self) -> Lease:
        return Lease(
            self.clients.ctp,
            self.settings.lease_container,
            LEASE_KEY,
            self.settings.lease_s,
            inflight_s=LONGEST_CALL_S,
        )

    async def ready(self) -> None:
        await self.clients.ctp.check_ready()
        await self.clients.newstore.check_ready()

    async def aclose(self) -> None:
        await self.clients.aclose()

    async def run(self, dry_run: bool = False, progress: Progress | None = None) -> SyncReport:
        started = time.monotonic()
        before = self.clients.request_counts()
        try:
            report = await (
                self._dry_run(started, progress) if dry_run else self._leased(started, progress)
            )
        except UpstreamError as error:
            report = SyncReport(Status.ERROR, error=error.one_line())
        report.duration_s = time.monotonic() - started
        after = self.clients.request_counts()
        report.requests = {name: after[name] - before[name] for name in after}
        # The lease holder watches; not after an ERROR run: an upstream it could not reach
        # would fail every check again, and the run's own error already says which.
        if not dry_run and report.status not in (Status.SKIPPED, Status.ERROR):
            watched = await self.watchdog.watch(
                run_succeeded=report.status in (Status.OK, Status.DEGRADED)
            )
            report.watchdog = watched.summary()
        _record_metrics(report)
        _log(report)
        return report

    async def _dry_run(self, started: float, progress: Progress | None) -> SyncReport:
        stopper = Stopper(started + self.settings.deadline_s, None)
        return await self._by_mode(stopper, progress or NoProgress(), dry_run=True)

    async def _leased(self, started: float, progress: Progress | None) -> SyncReport:
        lease = self.lease_factory()
        if not await lease.acquire():
            return SyncReport(Status.SKIPPED, holder=lease.other)
        try:
            async with lease.kept_alive():
                stopper = Stopper(started + self.settings.deadline_s, lease)
                report = await self._by_mode(stopper, progress or NoProgress(), dry_run=False)
        except BaseException:
            await lease.release({"status": Status.ERROR.value})
            raise
        if lease.renew_error is not None and report.error is None:
            report.error = f"lease renewal failed: {lease.renew_error}"
        await lease.release(_short(report.summary()))
        return report

    async def _by_mode(self, stopper: Stopper, progress: Progress, dry_run: bool) -> SyncReport:
        mode = self.settings.sync_mode
        if mode == "full":
            report = await self._sync(self.full_source, stopper, progress, dry_run)
            report.mode, report.mode_reason = "full", "INVENTORY_SYNC_MODE=full"
            return report
        try:
            return await self._incremental(stopper, progress, dry_run)
        except ExportUnavailable as error:
            if mode != "auto":
                raise
            # Only the export's start answers this, before anything was read or written.
            log.warning(
                "export API unavailable: falling back to a full sync",
                status=error.status,
                error=str(error),
                hint="INVENTORY_SYNC_MODE=full saves this request",
            )
            report = await self._sync(self.full_source, stopper, progress, dry_run)
            report.mode = "full"
            report.mode_reason = f"auto: the export API answered {error.status}, fell back to full"
            return report

    async def _incremental(self, stopper: Stopper, progress: Progress, dry_run: bool) -> SyncReport:
        state = await self.cursors.load()
        choice = choose_export(state, self.clock(), self.settings.full_reconcile_s)
        if choice.cursor is not None and not await self.nodes.ready():
            # A delta merges into the per-node state (job/nodes.py): none kept yet, so the
            # totals of a delta could not be known. A full export starts it.
            choice = ExportChoice(None, "full export: no per-node state yet")
        # A full export in the aggregate mode fills the compact table (job/stocktable.py):
        # the one read that must hold a whole catalog of a million SKUs.
        compact = choice.cursor is None and self.settings.channels == "aggregate"
        export = ExportSource(
            self.clients.newstore,
            self.settings.match_field,
            choice.cursor,
            self.polls,
            table=StockTable() if compact else None,
        )
        source = RetryingFailing(export, state.failing)  # kept failing SKUs: again
        report = await self._sync(source, stopper, progress, dry_run)
        report.mode, report.mode_reason = "incremental", choice.reason
        report.export = "delta" if source.delta else "full"
        report.retried_failing = source.retried
        after = state
        if not dry_run and _all_attempted(report):
            failing = still_failing(
                report.failed, report.failed_targets, state.failing, self.clock().isoformat()
            )
            after = await self._advance(state, report.exported_cursor, not source.delta, failing)
        report.cursor_before, report.cursor_after = state.last_updated_at, after.last_updated_at
        report.failing = listed(after.failing, FAILED_LISTED)
        if after.failing and report.status is Status.OK:
            report.status = Status.DEGRADED  # the list could not be updated: still failing
        return report

    async def _advance(
        self, state: CursorState, exported: int | None, full: bool, failing: Failing
    ) -> CursorState:
        """Store the cursor of an export whose writes were all attempted, with the SKUs that
        failed (one write: neither is stored without the other); answer the state in force
        afterwards. Nothing is written when nothing changes (a quiet run)."""
        if len(failing) > MAX_FAILING:
            log.error(
                "too many failing SKUs to keep: the cursor stays, the next delta repeats them",
                failing=len(failing),
                limit=MAX_FAILING,
            )
            return state
        new = replace(advanced(state, exported, full, self.clock()), failing=dict(failing))
        if new == state:
            return state
        try:
            saved = await self.cursors.save(new)
        except UpstreamError as error:
            # The writes are done; the next run repeats this export's changes, harmlessly.
            log.warning("cursor not saved", error=str(error))
            return state
        return new if saved else state

    async def _sync(
        self, source: StockSource, stopper: Stopper, progress: Progress, dry_run: bool
    ) -> SyncReport:
        """Read, plan, apply: the one path of every mode."""
        plan, report, channels = await self._plan(source, stopper, progress, sample=dry_run)
        if plan is None:
            return report
        if dry_run:
            report.status = Status.DRY_RUN
            return report
        writer = make_writer(
            self.clients.ctp,
            self.settings.write_mode,
            self.settings.concurrency,
            self.settings.graphql_batch,
        )
        refetch = functools.partial(self._refetch, channels)
        with timed(report.phases_s, "write"):
            applied = await apply_writes(
                plan.writes, writer, refetch, self.settings.conflict_retries, stopper.stop, progress
            )
        report.created, report.updated = applied.created, applied.updated
        report.unchanged += applied.unchanged
        report.failed, report.remaining = applied.failed, applied.remaining
        report.failed_targets = applied.targets
        if applied.remaining:
            report.status, report.stopped = Status.PARTIAL, stopper.reason()
        else:
            report.status = Status.DEGRADED if applied.failed else Status.OK
        return report

    async def _refetch(self, channels: ChannelSync | None, skus: Sequence[str]) -> dict[Any, Entry]:
        """The current entries of some SKUs, by `Write.slot` (after a conflict)."""
        found: dict[Any, Entry] = {}
        if self.aggregate:
            found.update(await fetch_channel_less(self.clients.ctp, skus))
        if channels is not None:
            ids = list(channels.ids.values())
            found.update(await fetch_channel_entries(self.clients.ctp, skus, ids))
        return found

    async def _channels(self, create: bool) -> tuple[ChannelSync | None, dict[str, Any] | None]:
        """Per-location: NewStore's locations, mapped onto channels that now exist."""
        if self.settings.channels == "aggregate":
            return None, None
        planned = plan_channels(await read_locations(self.clients.newstore), self.location_map)
        channels = await ensure_channels(
            self.clients.ctp, planned.specs, self.settings.channel_locale, create
        )
        skipped = {
            "disabled": planned.skipped_disabled,
            "excluded": planned.skipped_excluded,
            "invalid_key": planned.skipped_invalid,
        }
        if planned.skipped_invalid:
            log.warning(
                "locations not synced: their id is not a valid channel key",
                locations=planned.skipped_invalid,
                hint="map them to a key in INVENTORY_LOCATION_MAP",
            )
        summary = {
            "synced": {spec.key: sorted(spec.nodes) for spec in planned.specs},
            "skipped": {reason: ids for reason, ids in skipped.items() if ids},
        }
        return channels, summary

    async def _plan(
        self, source: StockSource, stopper: Stopper, progress: Progress, sample: bool
    ) -> tuple[Plan | None, SyncReport, ChannelSync | None]:
        """Read both sides and plan; (None, report) when the reads could not finish."""
        ctp = self.clients.ctp
        phases: dict[str, float] = {}
        with timed(phases, "read"):
            channels, channel_summary = await self._channels(create=not sample)
            snapshot, entries, per_store = await self._read(
                source, stopper, progress, channels, save=not sample
            )
            if channels is None:
                snapshot.nodes = None  # saved; the plan needs only the totals
        if not snapshot.complete:
            report = SyncReport(
                Status.PARTIAL,
                stopped=snapshot.stopped or stopper.reason(),
                stock_rows=snapshot.rows,
                export_id=snapshot.export_id,
            )
            report.phases_s = phases
            return None, report, channels
        node_channels = channels.node_channels() if channels is not None else {}
        nodes = snapshot.nodes or {}
        table = snapshot.table
        with timed(phases, "products"):
            if table is not None:
                missing = table_skus_without_entry(table)
            else:
                missing = skus_without_entry(snapshot.atp, entries) if self.aggregate else []
            if channels is not None:
                extra = skus_without_channel_entry(nodes, node_channels, per_store)
                missing = sorted(set(missing) | extra)
            products = await product_skus(ctp, missing, self.settings.concurrency, progress)
        with timed(phases, "plan"):
            if table is not None:
                plan = plan_table(table, products)
                entries = table_entries(table, (u.sku for u in plan.updates[:DRY_RUN_SAMPLE]))
            else:
                plan = plan_sync(snapshot.atp, entries, products) if self.aggregate else Plan()
            if channels is not None:
                plan += plan_channel_entries(nodes, node_channels, per_store, products)
        report = SyncReport(
            Status.OK,
            unchanged=plan.unchanged,
            skipped_no_product=plan.skipped_no_product,
            negative_clamped=plan.negative_clamped,
            not_in_newstore=plan.not_in_newstore,
            stock_rows=snapshot.rows,
            planned={"updates": len(plan.updates), "creates": len(plan.creates)},
            phases_s=phases,
            export_id=snapshot.export_id,
            exported_cursor=snapshot.cursor,
            channels=channel_summary,
        )
        if sample:
            keys = {i: k for k, i in channels.ids.items()} if channels is not None else {}
            everything: dict[Any, Entry] = {**entries, **per_store}
            report.sample = sample_changes(plan, everything, DRY_RUN_SAMPLE, keys)
        return plan, report, channels

    async def _read(
        self,
        source: StockSource,
        stopper: Stopper,
        progress: Progress,
        channels: ChannelSync | None,
        save: bool,
    ) -> tuple[StockSnapshot, dict[str, Entry], dict[ChannelSlot, Entry]]:
        """NewStore's stock, the channel-less entries (unless `per-location`), and the
        entries of the synced channels (per-location and both); an export's rows merged
        into the per-node state (`_node_state`) while the entries are still being read."""
        ctp = self.clients.ctp
        ids = list(channels.ids.values()) if channels is not None else []
        export = _is_export(source)
        if not source.delta:

            async def stock() -> StockSnapshot:
                snapshot = await source.read(progress, stopper.stop)
                if snapshot.complete and export:
                    await self._node_state(snapshot, save)
                return snapshot

            # Every entry is needed: read them while NewStore is read (into the export's
            # table when it has one).
            table = _export_table(source)
            snapshot, entries, per_store = await together(
                stock(),
                read_channel_less_entries(ctp, progress, self.settings.concurrency, table)
                if self.aggregate
                else _no_entries(),
                read_channel_entries(ctp, ids, progress),
            )
            return snapshot, entries, per_store
        # A delta names its SKUs: only their entries are read, after it. This is what keeps
        # a quiet run at a handful of requests however large the inventory.
        snapshot = await source.read(progress, stopper.stop)
        if not snapshot.complete:
            return snapshot, {}, {}
        skus = list(snapshot.atp)  # the same SKUs once merged: only their totals change
        concurrency = self.settings.concurrency
        entries, per_store, _ = await together(
            fetch_channel_less(ctp, skus, concurrency, progress)
            if self.aggregate
            else _no_entries(),
            fetch_channel_entries(ctp, skus, ids, concurrency),
            self._node_state(snapshot, save) if export else _nothing(),
        )
        return snapshot, entries, per_store

    async def _node_state(self, snapshot: StockSnapshot, save: bool) -> None:
        """Keep NewStore's ATP per node between runs, and give a delta its true totals.

        A delta's rows merge into the kept state (job/nodes.py: right whether a delta holds
        only the changed (product, node) rows or every node of a changed product), and the
        SKU's aggregate is the sum of the merged nodes, not of the delta's rows (a delta's
        buckets are read, merged and written back batch by batch: `NodeStateStore.merge`). A
        full export replaces the whole state. Saved before anything is written: it is NewStore's
        state, whatever the writes do; if it cannot be saved the run fails (503) and nothing
        is written, so the kept state never lags behind the cursor."""
        rows = snapshot.nodes or {}
        if snapshot.delta:
            merged = await self.nodes.merge(rows, self.settings.delta_rows, save)
            snapshot.nodes = merged
            # SKUs outside the delta's rows (kept failing ones retried, job/failing.py) keep
            # the quantity they were given.
            totals = {sku: sum(nodes.values()) for sku, nodes in merged.items()}
            snapshot.atp = {**snapshot.atp, **totals}
            return
        if snapshot.table is not None:
            if save:  # a bucket at a time: never the whole state as dicts (job/nodes.py)
                kept = await self.nodes.load_all()
                buckets = table_buckets(kept, snapshot.table)
                while batch := list(itertools.islice(buckets, SAVED_AT_ONCE)):
                    await self.nodes.save(batch)
                await self.nodes.mark_ready()
            snapshot.table.drop_rows()
            return
        changed = full_buckets(await self.nodes.load_all(), rows)
        if save:
            await self.nodes.save(changed)
            await self.nodes.mark_ready()


def _export_table(source: StockSource) -> StockTable | None:
    inner = source.inner if isinstance(source, RetryingFailing) else source
    return inner.table if isinstance(inner, ExportSource) else None


def _is_export(source: StockSource) -> bool:
    """An export (whose rows merge into the per-node state), kept failing SKUs added or not."""
    inner = source.inner if isinstance(source, RetryingFailing) else source
    return isinstance(inner, ExportSource)


async def _no_entries() -> dict[str, Entry]:
    return {}


async def _nothing() -> None:
    return None


def _all_attempted(report: SyncReport) -> bool:
    """Every write of the export was made or failed (the failures are then kept with the
    cursor): only then may the cursor move. A run stopped early keeps it, and the next delta
    holds the same changes again."""
    return report.status in (Status.OK, Status.DEGRADED) and not report.remaining


@dataclass
class Stopper:
    """When the run must stop starting new work: its deadline, or a lease it lost."""

    deadline: float  # time.monotonic()
    lease: Lease | None

    def reason(self) -> str | None:
        if time.monotonic() >= self.deadline:
            return "deadline"
        return self.lease.stop_reason() if self.lease is not None else None

    def stop(self) -> bool:
        return self.reason() is not None


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = time.monotonic() - started


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary small enough for a log line or the lease's `last_run`."""
    short = {key: value for key, value in summary.items() if key != "sample"}
    if "failing" in short:
        short["failing"] = short["failing"][:20]
    return {**short, "failed": summary["failed"][:5]}


def _record_metrics(report: SyncReport) -> None:
    metrics.INVENTORY_RUNS.labels(report.status.value).inc()
    if report.status in (Status.OK, Status.PARTIAL):
        metrics.SYNC_SECONDS.observe(report.duration_s)
    metrics.INVENTORY_WRITES.labels("created").inc(report.created)
    metrics.INVENTORY_WRITES.labels("updated").inc(report.updated)
    metrics.INVENTORY_WRITES.labels("failed").inc(len(report.failed))


def _log(report: SyncReport) -> None:
    fields = _short(report.summary())
    if report.status is Status.DEGRADED:
        level = "error"  # SKUs that stay wrong in commercetools until someone acts: alert
    elif report.status in (Status.ERROR, Status.PARTIAL) or report.failed:
        level = "warning"
    else:
        level = "info"
    getattr(log, level)("inventory sync", **fields)
