"""GET /metrics on both apps: what an operator's Prometheus scrapes, counted from the work
the apps really did (the registry is per process, so each test reads a before and after)."""

from __future__ import annotations

import math

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from connector import deploy
from connector.newstore import FULFILL_ORDER_PATH, parse_error
from job.app import create_app as create_job_app
from job.settings import InventorySettings
from sandbox.server import serve_in_thread
from sandbox.stack import Stack


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_event_app_counts_orders_by_outcome_and_times_injections(stack: Stack) -> None:
    assert stack.event_url
    stack.ctp.create_subscription(deploy.subscription_draft(stack.env()), send_test=False)
    before = scrape(stack.event_url)
    for number in range(3):
        stack.create_order(number)
    stack.wait_idle()

    after = scrape(stack.event_url)

    injected = "newstore_connector_orders_total"
    assert (
        value(after, injected, outcome="injected") - value(before, injected, outcome="injected")
        == 3
    )
    calls = "newstore_connector_injection_seconds_count"
    assert value(after, calls) - value(before, calls) == 3
    deliveries = "newstore_connector_delivery_seconds_count"
    assert value(after, deliveries) - value(before, deliveries) >= 3
    assert value(after, "process_cpu_seconds_total") > 0


def test_every_newstore_429_is_counted_by_endpoint() -> None:
    name = "newstore_connector_newstore_rate_limited_total"

    def count(endpoint: str) -> float:
        return REGISTRY.get_sample_value(name, {"endpoint": endpoint}) or 0.0

    before = (count("fulfill_order"), count("other"))
    inject = httpx.Request("POST", f"https://t.p.newstore.net{FULFILL_ORDER_PATH}")
    stock = httpx.Request("GET", "https://t.p.newstore.net/_/v0/hq/stocked_products")
    parse_error(httpx.Response(429, request=inject, headers={"Retry-After": "1"}))
    parse_error(httpx.Response(429, request=stock))
    parse_error(httpx.Response(500, request=stock))

    assert (count("fulfill_order") - before[0], count("other") - before[1]) == (1, 1)


def test_the_job_app_exports_writes_duration_staleness_and_the_watchdog(stack: Stack) -> None:
    stack.ctp.create_subscription(deploy.subscription_draft(stack.env()), send_test=False)
    app = create_job_app(stack.settings(), InventorySettings(concurrency=4))
    with serve_in_thread(app) as url:
        before = scrape(url)
        run = httpx.post(f"{url}/job", timeout=60).json()
        after = scrape(url)

    writes = "newstore_connector_inventory_writes_total"
    created = value(after, writes, kind="created") - value(before, writes, kind="created")
    assert created == run["created"] > 0
    runs = "newstore_connector_inventory_runs_total"
    assert value(after, runs, status="ok") - value(before, runs, status="ok") == 1
    duration = "newstore_connector_inventory_sync_seconds_count"
    assert value(after, duration) - value(before, duration) == 1
    staleness = value(after, "newstore_connector_inventory_staleness_seconds")
    assert not math.isnan(staleness) and staleness >= 0  # NaN until a run succeeded
    assert value(after, "newstore_connector_parked_orders") == 0
    assert value(after, "newstore_connector_subscription_healthy") == 1
