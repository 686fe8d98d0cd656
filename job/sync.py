"""One inventory sync: lease -> read both sides -> plan -> apply -> release.

Both reads run at the same time (NewStore's rate-limited pages dominate; commercetools'
cursor pages are sequential and hide behind them). Products are looked up only for SKUs
without an entry, in bulk. The plan is pure (`job.plan`); the big read structures are
dropped once it is made, so only the writes stay in memory while they are applied.

The run stops starting new work at its deadline or when it can no longer trust its lease,
and reports what is left; the next run picks it up (each run recomputes everything).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import structlog

from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy, UpstreamError
from connector.lease import Lease
from connector.newstore import NewStoreClient
from connector.ratelimit import RateGate
from connector.settings import Settings
from job.apply import apply_writes, make_writer
from job.bounded import NoProgress, Progress, together
from job.ctp import fetch_channel_less, product_skus, read_channel_less_entries
from job.plan import Plan, plan_sync, sample_changes, skus_without_entry
from job.settings import InventorySettings
from job.sources import StockedProductsSource, StockSource

log = structlog.get_logger("job")

LEASE_KEY = "inventory-sync"
# A job may wait out long Retry-After answers: one missing stock page means no sync at all.
JOB_RETRY = RetryPolicy(max_attempts=6, budget_s=60.0, initial_backoff_s=0.2, max_backoff_s=10.0)
# A batch of aliased mutations runs serially on commercetools' side: allow it time.
JOB_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
FAILED_LISTED = 1000  # the reply lists at most this many failed SKUs (all are counted)
DRY_RUN_SAMPLE = 10


class Status(StrEnum):
    OK = "ok"  # every planned write was attempted (some may have failed: see `failed`)
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
            "newstore": self.newstore.api.requests + self.newstore.api.tokens.fetches,
            "commercetools": self.ctp.api.requests + self.ctp.api.tokens.fetches,
        }

    async def aclose(self) -> None:
        await together(self.ctp.aclose(), self.newstore.aclose())


def build_clients(settings: Settings, inventory: InventorySettings) -> JobClients:
    pool = httpx.Limits(max_connections=inventory.concurrency + 4)
    gate = RateGate(inventory.newstore_rate_limit)
    newstore_http = httpx.AsyncClient(
        timeout=JOB_TIMEOUT, limits=pool, event_hooks=gate.event_hooks()
    )
    ctp_http = httpx.AsyncClient(timeout=JOB_TIMEOUT, limits=pool)
    return JobClients(
        CommercetoolsClient(settings.commercetools, http=ctp_http, retry=JOB_RETRY),
        NewStoreClient(settings.newstore, http=newstore_http, retry=JOB_RETRY),
    )


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
            "planned": self.planned,
            "stopped": self.stopped,
            "error": self.error,
            "holder": self.holder,
            "sample": self.sample,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        return body


class InventorySync:
    def __init__(
        self,
        clients: JobClients,
        settings: InventorySettings,
        source: StockSource | None = None,
    ) -> None:
        self.clients = clients
        self.settings = settings
        self.source = source or StockedProductsSource(
            clients.newstore,
            settings.match_field,
            settings.newstore_page_size,
            settings.concurrency,
        )

    async def run(self, dry_run: bool = False, progress: Progress | None = None) -> SyncReport:
        started = time.monotonic()
        before = self.clients.request_counts()
        try:
            report = await (
                self._dry_run(started, progress) if dry_run else self._leased(started, progress)
            )
        except UpstreamError as error:
            report = SyncReport(Status.ERROR, error=str(error))
        report.duration_s = time.monotonic() - started
        after = self.clients.request_counts()
        report.requests = {name: after[name] - before[name] for name in after}
        _log(report)
        return report

    async def _dry_run(self, started: float, progress: Progress | None) -> SyncReport:
        stopper = Stopper(started + self.settings.deadline_s, None)
        plan, report = await self._plan(stopper, progress or NoProgress(), sample=True)
        if plan is not None:
            report.status = Status.DRY_RUN
        return report

    async def _leased(self, started: float, progress: Progress | None) -> SyncReport:
        ctp = self.clients.ctp
        lease = Lease(ctp, self.settings.lease_container, LEASE_KEY, self.settings.lease_s)
        if not await lease.acquire():
            return SyncReport(Status.SKIPPED, holder=lease.other)
        try:
            async with lease.kept_alive():
                report = await self._sync(
                    Stopper(started + self.settings.deadline_s, lease), progress
                )
        except BaseException:
            await lease.release({"status": Status.ERROR.value})
            raise
        await lease.release(_short(report.summary()))
        return report

    async def _sync(self, stopper: Stopper, progress: Progress | None) -> SyncReport:
        progress = progress or NoProgress()
        plan, report = await self._plan(stopper, progress, sample=False)
        if plan is None:
            return report
        writer = make_writer(
            self.clients.ctp,
            self.settings.write_mode,
            self.settings.concurrency,
            self.settings.graphql_batch,
        )

        refetch = functools.partial(fetch_channel_less, self.clients.ctp)
        with timed(report.phases_s, "write"):
            applied = await apply_writes(
                plan.writes, writer, refetch, self.settings.conflict_retries, stopper.stop, progress
            )
        report.created, report.updated = applied.created, applied.updated
        report.unchanged += applied.unchanged
        report.failed, report.remaining = applied.failed, applied.remaining
        report.status, report.stopped = (
            (Status.PARTIAL, stopper.reason()) if applied.remaining else (Status.OK, None)
        )
        return report

    async def _plan(
        self, stopper: Stopper, progress: Progress, sample: bool
    ) -> tuple[Plan | None, SyncReport]:
        """Read both sides and plan; (None, report) when the reads could not finish."""
        ctp = self.clients.ctp
        phases: dict[str, float] = {}
        with timed(phases, "read"):
            snapshot, entries = await together(
                self.source.read(progress, stopper.stop), read_channel_less_entries(ctp, progress)
            )
        if not snapshot.complete:
            report = SyncReport(Status.PARTIAL, stopped=stopper.reason(), stock_rows=snapshot.rows)
            report.phases_s = phases
            return None, report
        with timed(phases, "products"):
            missing = skus_without_entry(snapshot.atp, entries)
            products = await product_skus(ctp, missing, self.settings.concurrency, progress)
        with timed(phases, "plan"):
            plan = plan_sync(snapshot.atp, entries, products)
        report = SyncReport(
            Status.OK,
            unchanged=plan.unchanged,
            skipped_no_product=plan.skipped_no_product,
            negative_clamped=plan.negative_clamped,
            not_in_newstore=plan.not_in_newstore,
            stock_rows=snapshot.rows,
            planned={"updates": len(plan.updates), "creates": len(plan.creates)},
            phases_s=phases,
        )
        if sample:
            report.sample = sample_changes(plan, entries, DRY_RUN_SAMPLE)
        return plan, report


@dataclass
class Stopper:
    """When the run must stop starting new work: its deadline, or a lease it lost."""

    deadline: float  # time.monotonic()
    lease: Lease | None

    def reason(self) -> str | None:
        if time.monotonic() >= self.deadline:
            return "deadline"
        if self.lease is not None and not self.lease.held():
            return "lease_lost"
        return None

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
    return {**short, "failed": summary["failed"][:5]}


def _log(report: SyncReport) -> None:
    fields = _short(report.summary())
    level = (
        "warning" if report.status in (Status.ERROR, Status.PARTIAL) or report.failed else "info"
    )
    getattr(log, level)("inventory sync", **fields)
