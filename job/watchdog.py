"""The watchdog: after every job run, a look at both pipes, in the run's summary.

- the `OrderCreated` subscription: present, `Healthy`, and pointing where post-deploy would
  point it; a destination or message filter that differs from what post-deploy would set is
  ours to repair, and is repaired (in place, as post-deploy does); a subscription that is
  missing or unhealthy with the right destination needs a person (permissions on the topic);
- the parked-order backlog: the event app's `failed` records, each waiting for
  `orders replay` or a dismissal;
- the age of the last successful inventory run (a run with status `ok`), recorded here;
- the NewStore event stream integration, once one is configured.

Whatever needs a person is logged at ERROR with an `alert` name (README, "Watchdog") and
listed in the summary. The watchdog never fails the run: an upstream that does not answer
is itself an alert, and the whole look is bounded in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings

from connector import checks, deploy, metrics
from connector.commercetools import CommercetoolsClient
from connector.http import UpstreamError
from connector.newstore import NewStoreClient
from connector.order_records import DEFAULT_CONTAINER, PARKED_STATUS, count_with_status
from connector.settings import load_settings_group, settings_config
from lifecycle.upkeep import event_stream_integration

log = structlog.get_logger("watchdog")

LAST_SUCCESS_KEY = "inventory-last-success"


class WatchdogSettings(BaseSettings):
    """`WATCHDOG_*` (all optional), and the event app's ORDER_RECORDS_CONTAINER."""

    model_config = settings_config("")

    # An inventory that has not synced successfully for this long is stale: alert.
    watchdog_stale_after_s: float = Field(3 * 3600, gt=0)
    # Repair a subscription whose destination or messages differ from post-deploy's.
    watchdog_repair: bool = True
    # The whole look, every request included, stops after this long.
    watchdog_timeout_s: float = Field(20.0, gt=0)
    order_records_container: str = Field(DEFAULT_CONTAINER, pattern=r"^[-_~.a-zA-Z0-9]+$")


def load_watchdog_settings() -> WatchdogSettings:
    return load_settings_group(WatchdogSettings, "")


@dataclass
class Alert:
    alert: str  # the stable name an operator's log alert matches on
    message: str
    fix: str = ""


@dataclass
class WatchReport:
    alerts: list[Alert] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    subscription: str | None = None  # its status, or "missing"
    parked_orders: int | None = None
    last_success_at: str | None = None
    last_success_age_s: float | None = None
    event_stream: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "ok": not self.alerts,
            "alerts": [{"alert": a.alert, "message": a.message, "fix": a.fix} for a in self.alerts],
            "repaired": self.repaired,
            "subscription": self.subscription,
            "parked_orders": self.parked_orders,
            "last_success_at": self.last_success_at,
            "last_success_age_s": self.last_success_age_s,
            "event_stream": self.event_stream,
        }


class Watchdog:
    def __init__(
        self,
        ctp: CommercetoolsClient,
        newstore: NewStoreClient,
        jobs_container: str,
        settings: WatchdogSettings,
        env: Mapping[str, str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ctp = ctp
        self.newstore = newstore
        self.jobs_container = jobs_container
        self.settings = settings
        self.env = env
        self.clock = clock

    async def watch(self, run_succeeded: bool) -> WatchReport:
        report = WatchReport()
        try:
            async with asyncio.timeout(self.settings.watchdog_timeout_s):
                await self._subscription(report)
                await self._parked(report)
                await self._last_success(report, run_succeeded)
                await self._event_stream(report)
        except TimeoutError:
            report.alerts.append(
                Alert(
                    "watchdog_incomplete",
                    f"the watchdog stopped after {self.settings.watchdog_timeout_s:g} s",
                    "see the job's other errors: an upstream is slow or down",
                )
            )
        for alert in report.alerts:
            log.error(alert.message, alert=alert.alert, fix=alert.fix)
        for repair in report.repaired:
            log.warning(repair, alert="subscription_repaired")
        return report

    # --- the subscription ---------------------------------------------------------------------

    def _draft(self) -> dict[str, Any] | None:
        try:
            return deploy.subscription_draft(self.env)
        except deploy.DeployConfigError:
            return None  # no CONNECT_*: the destination is not ours to judge

    async def _subscription(self, report: WatchReport) -> None:
        try:
            existing = await self.ctp.get_subscription(deploy.SUBSCRIPTION_KEY)
            draft = self._draft()
            if existing is not None and draft is not None and self.settings.watchdog_repair:
                existing = await self._repair(existing, draft, report)
        except UpstreamError as error:
            report.alerts.append(Alert("watchdog_failed", f"subscription: {error}"))
            return
        if existing is None:
            report.subscription = "missing"
            report.alerts.append(
                Alert(
                    "subscription_missing",
                    f"there is no subscription {deploy.SUBSCRIPTION_KEY}: no order reaches "
                    "the event app",
                    "run `newstore-connector post-deploy`",
                )
            )
            return
        report.subscription = str(existing.get("status"))
        metrics.SUBSCRIPTION_HEALTHY.set(1 if report.subscription == checks.HEALTHY else 0)
        if report.subscription != checks.HEALTHY:
            destination = checks.describe_destination(existing.get("destination"))
            report.alerts.append(
                Alert(
                    "subscription_unhealthy",
                    f"subscription {deploy.SUBSCRIPTION_KEY} is {report.subscription}: "
                    f"commercetools cannot deliver to {destination}; on a production project "
                    "its messages are dropped after 24 h",
                    "let commercetools publish to the topic (Google Cloud: the Pub/Sub "
                    "Publisher role for subscriptions@commercetools-platform.iam."
                    "gserviceaccount.com), then run `newstore-connector doctor`",
                )
            )

    async def _repair(
        self, existing: dict[str, Any], draft: dict[str, Any], report: WatchReport
    ) -> dict[str, Any]:
        actions = deploy.update_actions(existing, draft)
        if not actions:
            return existing
        updated = await self.ctp.update_subscription(
            deploy.SUBSCRIPTION_KEY, existing["version"], actions
        )
        before = checks.describe_destination(existing.get("destination"))
        after = checks.describe_destination(updated.get("destination"))
        report.repaired.append(
            f"subscription {deploy.SUBSCRIPTION_KEY} repaired "
            f"({', '.join(a['action'] for a in actions)}): {before} -> {after}"
        )
        return updated

    # --- parked orders, last success, event stream ---------------------------------------------

    async def _parked(self, report: WatchReport) -> None:
        container = self.settings.order_records_container
        try:
            report.parked_orders = await count_with_status(self.ctp, container, PARKED_STATUS)
        except UpstreamError as error:
            report.alerts.append(Alert("watchdog_failed", f"parked orders: {error}"))
            return
        metrics.PARKED_ORDERS.set(report.parked_orders)
        if report.parked_orders:
            report.alerts.append(
                Alert(
                    "orders_parked",
                    f"{report.parked_orders} order(s) are parked as failed and not in NewStore",
                    "`newstore-connector orders failed` lists them with the reason; fix the "
                    "cause, then `orders replay-failed`",
                )
            )

    async def _last_success(self, report: WatchReport, run_succeeded: bool) -> None:
        try:
            if run_succeeded:
                finished_at = self.clock().isoformat(timespec="milliseconds")
                value = {"finished_at": finished_at.replace("+00:00", "Z")}
                await self.ctp.put_custom_object(self.jobs_container, LAST_SUCCESS_KEY, value)
            else:
                stored = await self.ctp.get_custom_object(self.jobs_container, LAST_SUCCESS_KEY)
                value = stored["value"] if stored else {}
        except UpstreamError as error:
            report.alerts.append(Alert("watchdog_failed", f"last successful run: {error}"))
            return
        stale_after = self.settings.watchdog_stale_after_s
        finished = value.get("finished_at") if isinstance(value, dict) else None
        if not finished:
            report.alerts.append(
                Alert(
                    "inventory_stale",
                    "no inventory run has succeeded yet",
                    "see this run's error; `newstore-connector inventory sync` shows it",
                )
            )
            return
        at = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
        report.last_success_at = str(finished)
        report.last_success_age_s = round(max(0.0, (self.clock() - at).total_seconds()), 1)
        metrics.record_last_success(at.timestamp())
        if report.last_success_age_s > stale_after:
            report.alerts.append(
                Alert(
                    "inventory_stale",
                    f"the last successful inventory run finished {report.last_success_age_s:g} s "
                    f"ago (WATCHDOG_STALE_AFTER_S {stale_after:g}): commercetools' stock is stale",
                    "see this run's error; check the scheduler still calls POST /job",
                )
            )

    async def _event_stream(self, report: WatchReport) -> None:
        check = await checks.check_event_stream(self.newstore, event_stream_integration(self.env))
        report.event_stream = (
            check.outcome.value if check.outcome is not checks.Outcome.SKIP else ("not configured")
        )
        if check.outcome is checks.Outcome.FAIL:
            report.alerts.append(Alert("event_stream_not_running", check.reason, check.fix))
