"""The watchdog after every job run, against the sandbox: a subscription in
ConfigurationError, one pointing elsewhere (repaired), one missing, parked orders, a stale
inventory; in the run's summary, and at ERROR when a person is needed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.order_records import DEFAULT_CONTAINER
from job import watchdog as watchdog_module
from job.app import create_app
from job.settings import InventorySettings
from job.watchdog import LAST_SUCCESS_KEY, Watchdog, WatchdogSettings
from sandbox.commercetools.faults import set_subscription_status
from sandbox.controls import Controls
from sandbox.server import serve_in_thread
from sandbox.stack import Stack, running_stack
from tests.job.conftest import no_inventory_variables

pytestmark = pytest.mark.usefixtures(no_inventory_variables.__name__)
JOBS = InventorySettings().lease_container
QUICK = RetryPolicy(max_attempts=2, budget_s=0.5, initial_backoff_s=0.01, max_backoff_s=0.02)


class Recorder:
    """Stands in for the watchdog's logger: what it logged, at which level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def error(self, message: str, **fields: Any) -> None:
        self.lines.append(("error", message, fields))

    def warning(self, message: str, **fields: Any) -> None:
        self.lines.append(("warning", message, fields))

    def alerts(self, level: str) -> list[str]:
        return [fields["alert"] for lvl, _, fields in self.lines if lvl == level]


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(watchdog_module, "log", recorder)
    return recorder


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with running_stack(with_event_app=False) as running:
        for name, value in running.env().items():
            monkeypatch.setenv(name, value)
        running.ctp.create_subscription(deploy.subscription_draft(running.env()), send_test=False)
        yield running


def subscription(stack: Stack) -> dict[str, Any]:
    found = stack.ctp.collections["subscription"].get_by_key(deploy.SUBSCRIPTION_KEY)
    assert found is not None
    return found


def run_job(stack: Stack) -> dict[str, Any]:
    app = create_app(stack.settings(), InventorySettings(concurrency=4))
    with serve_in_thread(app) as url:
        answer = httpx.post(f"{url}/job", timeout=60)
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def subscription_writes(stack: Stack) -> int:
    counters = stack.ctp.sandbox.counters
    return sum(n for label, n in counters.items() if "subscriptions" in label and "POST" in label)


def test_a_healthy_project_needs_nobody(stack: Stack, logged: Recorder) -> None:
    watchdog = run_job(stack)["watchdog"]

    assert watchdog["ok"] is True
    assert watchdog["alerts"] == [] and watchdog["repaired"] == []
    assert (watchdog["subscription"], watchdog["parked_orders"]) == ("Healthy", 0)
    assert watchdog["last_success_age_s"] == 0
    assert watchdog["event_stream"] == "not configured"
    assert logged.lines == []


def test_a_subscription_in_configuration_error_is_an_error_line(
    stack: Stack, logged: Recorder
) -> None:
    set_subscription_status(stack.ctp, deploy.SUBSCRIPTION_KEY, "ConfigurationError")

    watchdog = run_job(stack)["watchdog"]

    assert watchdog["ok"] is False
    assert watchdog["subscription"] == "ConfigurationError"
    assert [a["alert"] for a in watchdog["alerts"]] == ["subscription_unhealthy"]
    assert "topic=commercetools-orders" in watchdog["alerts"][0]["message"]
    assert logged.alerts("error") == ["subscription_unhealthy"]
    # The destination is what post-deploy would set: nothing for the watchdog to repair.
    assert watchdog["repaired"] == [] and subscription_writes(stack) == 0


def test_a_destination_post_deploy_would_set_differently_is_repaired_once(
    stack: Stack, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECT_GCP_TOPIC_NAME", "orders-v2")
    before = subscription(stack)

    first = run_job(stack)["watchdog"]
    second = run_job(stack)["watchdog"]

    after = subscription(stack)
    assert after["id"] == before["id"] and after["destination"]["topic"] == "orders-v2"
    assert len(first["repaired"]) == 1 and "topic=orders-v2" in first["repaired"][0]
    assert first["ok"] is True  # repaired: nobody is needed
    assert second["repaired"] == []
    assert subscription_writes(stack) == 1  # one update, and no second one
    assert logged.alerts("warning") == ["subscription_repaired"]


def test_a_missing_subscription_is_reported_not_recreated(stack: Stack, logged: Recorder) -> None:
    stack.ctp.delete_subscription(subscription(stack), subscription(stack)["version"])

    watchdog = run_job(stack)["watchdog"]

    assert watchdog["subscription"] == "missing"
    assert "subscription_missing" in logged.alerts("error")
    assert stack.ctp.collections["subscription"].get_by_key(deploy.SUBSCRIPTION_KEY) is None


def test_parked_orders_are_counted_and_need_a_person(stack: Stack, logged: Recorder) -> None:
    for number, status in enumerate(["failed", "failed", "retrying", "injected"]):
        value = {"order_id": f"order-{number}", "status": status}
        stack.ctp.upsert_custom_object(
            {"container": DEFAULT_CONTAINER, "key": f"order-{number}", "value": value}
        )

    watchdog = run_job(stack)["watchdog"]

    assert watchdog["parked_orders"] == 2
    assert "orders_parked" in logged.alerts("error")
    assert "replay-failed" in next(a["fix"] for a in watchdog["alerts"])


async def watch_at(stack: Stack, now: datetime, run_succeeded: bool) -> dict[str, Any]:
    settings = stack.settings()
    async with (
        CommercetoolsClient(settings.commercetools) as ctp,
        NewStoreClient(settings.newstore) as ns,
    ):
        watchdog = Watchdog(ctp, ns, JOBS, WatchdogSettings(), stack.env(), lambda: now)
        return (await watchdog.watch(run_succeeded)).summary()


async def test_an_inventory_without_a_recent_success_is_stale(
    stack: Stack, logged: Recorder
) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    await watch_at(stack, start, run_succeeded=True)

    fresh = await watch_at(stack, start + timedelta(hours=2), run_succeeded=False)
    stale = await watch_at(stack, start + timedelta(hours=4), run_succeeded=False)

    stored = stack.ctp.custom_objects.get((JOBS, LAST_SUCCESS_KEY))
    assert stored is not None
    assert (fresh["ok"], fresh["last_success_age_s"]) == (True, 7200)
    assert (stale["ok"], stale["last_success_age_s"]) == (False, 14400)
    assert [a["alert"] for a in stale["alerts"]] == ["inventory_stale"]
    assert logged.alerts("error") == ["inventory_stale"]


async def test_no_success_yet_is_stale(stack: Stack, logged: Recorder) -> None:
    watched = await watch_at(stack, datetime.now(UTC), run_succeeded=False)

    assert [a["alert"] for a in watched["alerts"]] == ["inventory_stale"]
    assert watched["last_success_at"] is None


async def test_a_commercetools_outage_is_an_alert_never_an_exception(
    stack: Stack, logged: Recorder
) -> None:
    stack.ctp.sandbox.set_controls(Controls(fault_rate=1.0))
    settings = stack.settings()
    async with (
        CommercetoolsClient(settings.commercetools, retry=QUICK) as ctp,
        NewStoreClient(settings.newstore, retry=QUICK) as ns,
    ):
        watched = await Watchdog(ctp, ns, JOBS, WatchdogSettings(), stack.env()).watch(False)

    alerts = [a.alert for a in watched.alerts]
    assert alerts == ["watchdog_failed"] * 3  # subscription, parked orders, last success
    assert "503" in watched.alerts[0].message
    assert logged.alerts("error") == alerts


async def test_the_watchdog_stops_at_its_time_budget(stack: Stack, logged: Recorder) -> None:
    stack.ctp.sandbox.set_controls(Controls(latency_ms=2000))
    settings = stack.settings()
    async with (
        CommercetoolsClient(settings.commercetools) as ctp,
        NewStoreClient(settings.newstore) as ns,
    ):
        budget = WatchdogSettings(watchdog_timeout_s=0.2)
        watched = await Watchdog(ctp, ns, JOBS, budget, stack.env()).watch(False)

    assert [a.alert for a in watched.alerts] == ["watchdog_incomplete"]
