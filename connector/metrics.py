"""The connector's Prometheus metrics, served at `GET /metrics` by each app.

Why prometheus-client rather than OpenTelemetry: both Cloud Run (Google Cloud Managed Service
for Prometheus, or its sidecar) and Kubernetes (a ServiceMonitor) scrape the Prometheus text
format without an agent or exporter in the process, and the client's counters cost about a
microsecond on the request path (a lock and an add; nothing is sent from the request). The
OpenTelemetry SDK would need an exporter and a collector to reach the same place.

Each app process exports what it does: the event app the order metrics, the job app the
inventory and watchdog metrics; both the standard `process_*` ones. The names are listed in
the README ("Metrics").
"""

from __future__ import annotations

import math
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

PREFIX = "newstore_connector"

# --- the event app ------------------------------------------------------------------------------

ORDERS = Counter(
    f"{PREFIX}_orders",
    "Order deliveries by outcome: injected, already_injected, failed (parked), retry, ignored.",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    f"{PREFIX}_delivery_seconds",
    "Time to answer one Pub/Sub delivery: read, map, inject and record.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0),
)
INJECTION_SECONDS = Histogram(
    f"{PREFIX}_injection_seconds",
    "Duration of NewStore fulfill_order calls (retries included), whatever the answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 10.0),
)
NEWSTORE_429 = Counter(
    f"{PREFIX}_newstore_rate_limited",
    "NewStore answers 429 (rate limited), by endpoint: fulfill_order or other.",
    ["endpoint"],
)

# --- the job app ---------------------------------------------------------------------------------

INVENTORY_WRITES = Counter(
    f"{PREFIX}_inventory_writes",
    "commercetools inventory entries written by the sync, by kind: created, updated, failed.",
    ["kind"],
)
INVENTORY_RUNS = Counter(f"{PREFIX}_inventory_runs", "Inventory sync runs by status.", ["status"])
SYNC_SECONDS = Histogram(
    f"{PREFIX}_inventory_sync_seconds",
    "Duration of one inventory sync run.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800),
)
INVENTORY_LAST_SUCCESS = Gauge(
    f"{PREFIX}_inventory_last_success_timestamp_seconds",
    "When the last successful inventory run finished (Unix time); 0: none seen yet.",
)
INVENTORY_STALENESS = Gauge(
    f"{PREFIX}_inventory_staleness_seconds",
    "Seconds since the last successful inventory run finished; NaN: none seen yet.",
)
PARKED_ORDERS = Gauge(
    f"{PREFIX}_parked_orders",
    "Orders parked as failed (the event app's records), as the last watchdog counted them "
    "(at most 500).",
)
SUBSCRIPTION_HEALTHY = Gauge(
    f"{PREFIX}_subscription_healthy",
    "1 when the OrderCreated subscription was Healthy at the last watchdog look, else 0.",
)


_last_success = {"at": 0.0}


def record_last_success(timestamp: float) -> None:
    """The last successful inventory run finished at `timestamp` (Unix time)."""
    _last_success["at"] = timestamp
    INVENTORY_LAST_SUCCESS.set(timestamp)


def _staleness() -> float:
    last = _last_success["at"]
    return time.time() - last if last > 0 else math.nan


INVENTORY_STALENESS.set_function(_staleness)


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
