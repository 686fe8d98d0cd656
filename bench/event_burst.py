"""Burst benchmark: a backlog of OrderCreated messages through Pub/Sub into NewStore's 20/s.

    python -m bench.event_burst [--orders 2000 --duplicates 0.1 --latency-ms 20 --push-window 32]

The commercetools emulator, the NewStore emulator, the Pub/Sub push simulator and one event
app each run in their own process on loopback. The orders are seeded in commercetools
unpublished; then this process publishes all their `OrderCreated` messages at once, plus
`--duplicates` x orders re-publications of the same messages at random places in the
burst (commercetools delivers at least once), and watches the backlog drain:

- Pub/Sub retries as its default retry policy does (exponential, 10 s to 600 s) with a
  10 s ack deadline and no dead-letter topic (so, like Pub/Sub, it never gives up);
- it pushes at most `--push-window` messages at a time. Pub/Sub "dynamically adjusts the
  rate of push requests based on the rate at which it receives success responses"
  (cloud.google.com/pubsub/docs/push); the simulator's fixed window stands in for that;
- NewStore enforces its documented limits (`sandbox/newstore/limits.py`): 20 requests/s
  on `fulfill_order` (a token bucket one second deep), 200 calls/s for the tenant;
  both emulators add `--latency-ms` to every request;
- the event app runs as in production (`NEW_STORE_INJECT_RATE`, default 20).

Reported: the drain time against the ideal (unique orders / 20 per s), the share of
`fulfill_order` requests answered 429, upstream requests per order (every endpoint of
both emulators, from their `/_sandbox/counters`), commercetools writes per order, orders
parked, NewStore orders against unique orders, the event app's peak RSS and CPU, and
Pub/Sub's deliveries; the results go to `bench/results/event_burst.json` (`--variant NAME`
adds a run under `variants` of that file instead). Everything runs at real scale: no time
is scaled down. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    RESULTS_DIR,
    SeededOrder,
    ServerProcess,
    by_category,
    event_app_env,
    machine_busy_seconds,
    order_batch,
    percentile,
    put_controls,
    read_counters,
    seed_orders,
    server_stack,
    start_server,
    write_json,
)
from bench.event_bench import newstore_external_ids
from sandbox.stack import CTP_CLIENT, GCP_PROJECT, GCP_TOPIC, PROJECT_KEY, PUSH_SUBSCRIPTION

TARGETS = {
    "drain_vs_ideal": 1.25,
    "fulfill_order_429_share": 0.05,
    "upstream_requests_per_order": 3.2,
    "parked": 0,
}
RECORDS_CONTAINER = "newstore-connector-orders"
PUBLISH_BATCH = 500  # Pub/Sub takes up to 1,000 messages per publish request
SAMPLE_EVERY_S = 0.2
PROGRESS_EVERY_S = 10.0
LIMITED_INJECTION = "POST /v0/d/fulfill_order (rate limited)"
INJECTION = "POST /v0/d/fulfill_order"

Json = dict[str, Any]


@dataclass(frozen=True)
class Sample:
    t: float
    acked: int
    nacked: int
    pushes: int
    in_flight: int
    scheduled: int
    newstore_orders: int


# --- the burst ----------------------------------------------------------------------------


def order_created_data(seeded: SeededOrder) -> str:
    """The Pub/Sub `data` of the order's OrderCreated message (Platform format, order
    embedded as commercetools sends it; the app reads the order again all the same)."""
    message = {
        "notificationType": "Message",
        "projectKey": PROJECT_KEY,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"burst-message/{seeded.order_id}")),
        "version": 1,
        "sequenceNumber": 1,
        "resource": {"typeId": "order", "id": seeded.order_id},
        "resourceVersion": 1,
        "type": "OrderCreated",
        "order": seeded.order,
        "createdAt": "2026-11-29T10:00:00.000Z",
        "lastModifiedAt": "2026-11-29T10:00:00.000Z",
    }
    return base64.b64encode(json.dumps(message, separators=(",", ":")).encode()).decode()


def plan_burst(orders: Sequence[SeededOrder], duplicates: float, rng: random.Random) -> list[Json]:
    """Every order's message once, plus re-publications of `duplicates` x orders of them,
    all shuffled: a duplicate may come before, with or long after its first copy."""
    messages = [{"data": order_created_data(order)} for order in orders]
    again = rng.sample(range(len(messages)), round(len(messages) * duplicates))
    burst = messages + [messages[i] for i in again]
    rng.shuffle(burst)
    return burst


def subscribe(pubsub_url: str, event_url: str, args: argparse.Namespace) -> None:
    """The topic and the push subscription, with Pub/Sub's default retry policy."""
    base = f"{pubsub_url}/v1/projects/{GCP_PROJECT}"
    subscription = {
        "topic": f"projects/{GCP_PROJECT}/topics/{GCP_TOPIC}",
        "pushConfig": {"pushEndpoint": f"{event_url}/event"},
        "ackDeadlineSeconds": 10,
        "retryPolicy": {
            "minimumBackoff": f"{args.min_backoff_s:g}s",
            "maximumBackoff": f"{args.max_backoff_s:g}s",
        },
        # No deadLetterPolicy: Pub/Sub then redelivers until the message expires (7 days).
    }
    controls = {
        "max_concurrent_pushes": args.push_window,
        "default_max_attempts": 1_000_000,
        "duplicate_rate": 0.0,
        "random_seed": args.seed,
    }
    with httpx.Client(timeout=30, trust_env=False) as client:
        client.put(f"{base}/topics/{GCP_TOPIC}").raise_for_status()
        client.put(
            f"{base}/subscriptions/{PUSH_SUBSCRIPTION}", json=subscription
        ).raise_for_status()
        client.patch(f"{pubsub_url}/_sandbox/controls", json=controls).raise_for_status()


def publish(pubsub_url: str, burst: Sequence[Json]) -> None:
    url = f"{pubsub_url}/v1/projects/{GCP_PROJECT}/topics/{GCP_TOPIC}:publish"
    with httpx.Client(timeout=60, trust_env=False) as client:
        for start in range(0, len(burst), PUBLISH_BATCH):
            body = {"messages": list(burst[start : start + PUBLISH_BATCH])}
            client.post(url, json=body).raise_for_status()


def watch(
    pubsub_url: str, newstore_url: str, started: float, published: int, timeout_s: float
) -> list[Sample]:
    """Sample Pub/Sub's deliveries and NewStore's orders until every message is acked and
    nothing is in flight or waiting for a redelivery."""
    samples: list[Sample] = []
    reported = 0.0
    with httpx.Client(timeout=30, trust_env=False) as client:
        while True:
            deliveries = client.get(
                f"{pubsub_url}/_sandbox/deliveries", params={"details": "false"}
            ).json()
            orders = client.get(f"{newstore_url}/_sandbox/state").json()["orders"]
            sample = Sample(
                t=time.perf_counter() - started,
                acked=deliveries["acked"],
                nacked=deliveries["nacked"],
                pushes=deliveries["pushes"],
                in_flight=deliveries["in_flight"],
                scheduled=deliveries["scheduled"],
                newstore_orders=orders,
            )
            samples.append(sample)
            if sample.t - reported >= PROGRESS_EVERY_S:
                reported = sample.t
                print(
                    f"  {sample.t:7.1f} s: {sample.newstore_orders} in NewStore, "
                    f"{sample.acked}/{published} acked, {sample.nacked} nacked, "
                    f"{sample.scheduled} waiting for a redelivery",
                    flush=True,
                )
            if sample.acked >= published and not sample.in_flight and not sample.scheduled:
                return samples
            if sample.t > timeout_s:
                raise TimeoutError(f"not drained after {timeout_s:g} s: {sample}")
            time.sleep(SAMPLE_EVERY_S)


# --- what happened ------------------------------------------------------------------------


def drain_time(samples: Sequence[Sample], unique: int) -> float:
    """When the last message was acked (to the sampling interval)."""
    for sample in samples:
        if sample.acked >= samples[-1].acked and sample.newstore_orders >= unique:
            return sample.t
    return samples[-1].t


def longest_stall(samples: Sequence[Sample], unique: int) -> dict[str, float]:
    """The longest time during which no order reached NewStore, before the last one did."""
    longest, since, at = 0.0, 0.0, 0.0
    last = samples[0].newstore_orders
    for sample in samples:
        if sample.newstore_orders >= unique:
            break
        if sample.newstore_orders != last:
            last, since = sample.newstore_orders, sample.t
        elif sample.t - since > longest:
            longest, at = sample.t - since, since
    return {"longest_s": round(longest, 1), "from_s": round(at, 1)}


def timeline(samples: Sequence[Sample], every_s: float = 5.0) -> list[Json]:
    rows: list[Json] = []
    for sample in samples:
        if not rows or sample.t - rows[-1]["t"] >= every_s or sample is samples[-1]:
            rows.append(
                {
                    "t": round(sample.t, 1),
                    "newstore_orders": sample.newstore_orders,
                    "acked": sample.acked,
                    "nacked": sample.nacked,
                    "in_flight": sample.in_flight,
                    "waiting_for_redelivery": sample.scheduled,
                }
            )
    return rows


def app_deliveries(log_path: Path) -> Json:
    """The event app's own account: one JSON line per delivery, by outcome and reason."""
    outcomes: Counter[str] = Counter()
    durations: list[float] = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") != "delivery":
            continue
        reason = entry.get("reason")
        outcomes[f"{entry.get('outcome')}" + (f" ({reason})" if reason else "")] += 1
        if isinstance(entry.get("duration_ms"), int | float):
            durations.append(float(entry["duration_ms"]))
    return {
        "by_outcome": dict(outcomes.most_common()),
        "duration_ms": {
            "p50": round(percentile(durations, 0.5), 1),
            "p99": round(percentile(durations, 0.99), 1),
            "max": round(max(durations, default=float("nan")), 1),
        },
    }


def records_by_status(ctp_url: str) -> dict[str, int]:
    """The outcome records in commercetools, by status and reason (read after the counters)."""
    statuses: Counter[str] = Counter()
    with httpx.Client(base_url=ctp_url, timeout=60, trust_env=False) as client:
        token = client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=CTP_CLIENT
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        offset = 0
        while True:
            page = client.get(
                f"/{PROJECT_KEY}/custom-objects/{RECORDS_CONTAINER}",
                params={"limit": 500, "offset": offset},
                headers=headers,
            ).json()
            for record in page["results"]:
                value = record["value"]
                reason = value.get("reason")
                statuses[value["status"] + (f" ({reason})" if reason else "")] += 1
            offset += len(page["results"])
            if not page["results"] or offset >= page.get("total", offset):
                return dict(statuses)


def upstream(counters: dict[str, dict[str, int]], unique: int) -> Json:
    categories = {api: by_category(labels, api) for api, labels in counters.items()}
    total = sum(sum(labels.values()) for labels in counters.values())
    ctp = counters["commercetools"]
    writes = sum(
        count
        for label, count in ctp.items()
        if label.startswith(("POST ", "DELETE ")) and "/oauth/token" not in label
    )
    injections = counters["newstore"].get(INJECTION, 0)
    limited = counters["newstore"].get(LIMITED_INJECTION, 0)
    return {
        "by_endpoint": counters,
        "by_category": categories,
        "total": total,
        "per_order": round(total / unique, 4),
        "commercetools_writes": writes,
        "commercetools_writes_per_order": round(writes / unique, 4),
        "fulfill_order": {
            "requests": injections + limited,
            "answered_429": limited,
            "share_429": round(limited / max(1, injections + limited), 4),
        },
    }


# --- main -----------------------------------------------------------------------------------


def start_servers(running: ExitStack, args: argparse.Namespace) -> dict[str, ServerProcess]:
    servers: dict[str, ServerProcess] = {}
    for kind in ("ctp", "newstore", "pubsub"):
        servers[kind] = start_server(kind)
        running.callback(servers[kind].stop)
    env = event_app_env(servers["ctp"].url, servers["newstore"].url)
    env["NEW_STORE_INJECT_RATE"] = f"{args.inject_rate:g}"
    servers["event_app"] = start_server("event", env, ready_path="/health")
    running.callback(servers["event_app"].stop)
    return servers


def configure_newstore(newstore_url: str, args: argparse.Namespace) -> Json:
    changes = {
        "fulfill_order_rate_limit": args.fulfill_order_limit,
        "rate_limit_window_s": args.bucket_s,
        "rate_limit_algorithm": args.algorithm,
    }
    reply = httpx.patch(f"{newstore_url}/_sandbox/emulator-controls", json=changes, trust_env=False)
    reply.raise_for_status()
    controls = reply.json()
    keys = (
        "rate_limits",
        "tenant_rate_limit",
        "fulfill_order_rate_limit",
        "rate_limit_algorithm",
        "rate_limit_window_s",
        "rate_limit_retry_after_s",
    )
    return {key: controls[key] for key in keys}


def run(args: argparse.Namespace) -> Json:
    rng = random.Random(args.seed)
    with ExitStack() as running:
        servers = start_servers(running, args)
        ctp, newstore, pubsub, event_app = (
            servers[k] for k in ("ctp", "newstore", "pubsub", "event_app")
        )
        orders, orders_seed = order_batch(1, args.orders)
        seed_orders(ctp.url, orders_seed)
        for url in (ctp.url, newstore.url):
            put_controls(url, latency_ms=args.latency_ms)
        limits = configure_newstore(newstore.url, args)
        subscribe(pubsub.url, event_app.url, args)
        burst = plan_burst(orders, args.duplicates, rng)
        ideal_s = args.orders / args.fulfill_order_limit
        print(
            f"publishing {len(burst)} messages ({args.orders} orders) at once; ideal {ideal_s:g} s"
        )

        cpu_before = {name: server.cpu_seconds() for name, server in servers.items()}
        machine_before = machine_busy_seconds()
        started = time.perf_counter()
        publish(pubsub.url, burst)
        samples = watch(pubsub.url, newstore.url, started, len(burst), args.timeout_s)
        cpu = {name: server.cpu_seconds() - cpu_before[name] for name, server in servers.items()}
        machine = machine_busy_seconds() - machine_before

        counters = {
            "commercetools": read_counters(ctp.url),
            "newstore": read_counters(newstore.url),
        }
        deliveries = httpx.get(f"{pubsub.url}/_sandbox/deliveries", trust_env=False).json()
        newstore_state = httpx.get(f"{newstore.url}/_sandbox/state", trust_env=False).json()
        external_ids = newstore_external_ids(newstore.url)
        records = records_by_status(ctp.url)
        log_path = Path(event_app.log.name)
        peak_rss = event_app.peak_rss_mib()

    return summarise(
        args,
        limits,
        samples,
        counters,
        deliveries,
        newstore_state,
        external_ids,
        orders,
        records,
        app_deliveries(log_path),
        {"cpu": cpu, "machine": machine, "peak_rss": peak_rss},
    )


def summarise(
    args: argparse.Namespace,
    limits: Json,
    samples: Sequence[Sample],
    counters: dict[str, dict[str, int]],
    deliveries: Json,
    newstore_state: Json,
    external_ids: Sequence[str],
    orders: Sequence[SeededOrder],
    records: dict[str, int],
    app: Json,
    resources: Json,
) -> Json:
    unique = len(orders)
    drained = drain_time(samples, unique)
    ideal = unique / args.fulfill_order_limit
    figures = upstream(counters, unique)
    attempts = Counter(deliveries["attempts_by_message"].values())
    parked = sum(n for status, n in records.items() if "transient_failure_parked" in status)
    expected = {order.order_id for order in orders}
    cpu = resources["cpu"]
    wall = samples[-1].t
    result: Json = {
        "config": {
            "orders": unique,
            "messages": deliveries["published"],
            "duplicates": args.duplicates,
            "push_window": args.push_window,
            "retry_policy_s": {"minimum": args.min_backoff_s, "maximum": args.max_backoff_s},
            "ack_deadline_s": 10,
            "latency_ms": args.latency_ms,
            "new_store_inject_rate": args.inject_rate,
            "newstore_limits": limits,
            "time_scale": 1.0,
            "uvicorn": server_stack(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "drain": {
            "wall_s": round(drained, 1),
            "ideal_s": round(ideal, 1),
            "vs_ideal": round(drained / ideal, 3),
            "longest_stall": longest_stall(samples, unique),
        },
        "fulfill_order": figures["fulfill_order"],
        "upstream": {
            "requests_per_order": figures["per_order"],
            "total": figures["total"],
            "by_category": figures["by_category"],
            "by_endpoint": figures["by_endpoint"],
        },
        "commercetools_writes_per_order": figures["commercetools_writes_per_order"],
        "records": records,
        "parked": parked,
        "exactly_once": {
            "unique_orders": unique,
            "newstore_orders": len(external_ids),
            "exactly_once": len(external_ids) == unique and set(external_ids) == expected,
        },
        "newstore_rate_limited": newstore_state["rate_limited"],
        "pubsub": {
            key: deliveries[key] for key in ("published", "pushes", "acked", "nacked", "outcomes")
        }
        | {
            "dead_lettered": len(deliveries["dead_lettered"]),
            "messages_by_attempts": {str(k): attempts[k] for k in sorted(attempts)},
        },
        "event_app": {
            "peak_rss_mib": round(resources["peak_rss"], 1),
            "cpu_s": round(cpu["event_app"], 2),
            "cpu_ms_per_order": round(cpu["event_app"] * 1000 / unique, 2),
            "deliveries": app,
        },
        "cpu_s_by_process": {name: round(s, 2) for name, s in cpu.items()},
        "cpu_utilisation_of_machine": round(
            resources["machine"] / (wall * (os.cpu_count() or 1)), 3
        ),
        "timeline": timeline(samples),
    }
    result["targets"] = {
        f"drain <= {TARGETS['drain_vs_ideal']} x ideal": result["drain"]["vs_ideal"]
        <= TARGETS["drain_vs_ideal"],
        f"fulfill_order 429 share <= {TARGETS['fulfill_order_429_share']:.0%}": result[
            "fulfill_order"
        ]["share_429"]
        <= TARGETS["fulfill_order_429_share"],
        f"upstream requests per order <= {TARGETS['upstream_requests_per_order']}": result[
            "upstream"
        ]["requests_per_order"]
        <= TARGETS["upstream_requests_per_order"],
        "none parked": parked == TARGETS["parked"],
        "exactly_once": result["exactly_once"]["exactly_once"],
    }
    return result


def print_report(result: Json) -> None:
    config, drain, fulfill = result["config"], result["drain"], result["fulfill_order"]
    app = result["event_app"]
    rows = [
        ("orders (unique) / messages", f"{config['orders']} / {config['messages']}"),
        ("push window, retry policy", _policy_text(config)),
        ("NewStore limits", _limits_text(config["newstore_limits"])),
        ("drain / ideal", f"{drain['wall_s']} s / {drain['ideal_s']} s = {drain['vs_ideal']}x"),
        ("longest stall (no order injected)", f"{drain['longest_stall']['longest_s']} s"),
        (
            "fulfill_order requests / 429",
            f"{fulfill['requests']} / {fulfill['answered_429']} ({fulfill['share_429']:.1%})",
        ),
        ("upstream requests / order", f"{result['upstream']['requests_per_order']}"),
        ("commercetools writes / order", f"{result['commercetools_writes_per_order']}"),
        ("records", ", ".join(f"{k} {v}" for k, v in result["records"].items())),
        ("parked", f"{result['parked']}"),
        ("NewStore orders (unique)", _exactly_once_text(result["exactly_once"])),
        ("Pub/Sub pushes / nacked", f"{result['pubsub']['pushes']} / {result['pubsub']['nacked']}"),
        ("messages by delivery attempts", _compact(result["pubsub"]["messages_by_attempts"])),
        ("app deliveries", _compact(app["deliveries"]["by_outcome"])),
        ("event app peak RSS", f"{app['peak_rss_mib']} MiB"),
        ("event app CPU", f"{app['cpu_s']} s, {app['cpu_ms_per_order']} ms per order"),
    ]
    for name, met in result["targets"].items():
        rows.append((f"target {name}", "met" if met else "MISSED"))
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print()


def _policy_text(config: Json) -> str:
    policy = config["retry_policy_s"]
    return f"{config['push_window']}, {policy['minimum']:g} s .. {policy['maximum']:g} s"


def _limits_text(limits: Json) -> str:
    return (
        f"fulfill_order {limits['fulfill_order_rate_limit']:g}/s, tenant "
        f"{limits['tenant_rate_limit']:g}/s, {limits['rate_limit_algorithm']} "
        f"{limits['rate_limit_window_s']:g} s"
    )


def _compact(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in values.items()) or "-"


def _exactly_once_text(checks: Json) -> str:
    verdict = "exactly once" if checks["exactly_once"] else "NOT exactly once"
    return f"{checks['newstore_orders']} ({checks['unique_orders']}): {verdict}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.event_burst", description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share re-published")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added by each emulator")
    parser.add_argument(
        "--push-window", type=int, default=32, help="Pub/Sub pushes in flight at most"
    )
    parser.add_argument("--min-backoff-s", type=float, default=10.0)
    parser.add_argument("--max-backoff-s", type=float, default=600.0)
    parser.add_argument(
        "--inject-rate", type=float, default=20.0, help="the app's NEW_STORE_INJECT_RATE"
    )
    parser.add_argument(
        "--fulfill-order-limit", type=float, default=20.0, help="NewStore's, requests/s"
    )
    parser.add_argument(
        "--bucket-s", type=float, default=1.0, help="depth of NewStore's bucket (or window)"
    )
    parser.add_argument(
        "--algorithm", choices=("token_bucket", "fixed_window"), default="token_bucket"
    )
    parser.add_argument("--timeout-s", type=float, default=7200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "event_burst.json")
    parser.add_argument(
        "--variant", help="add this run under `variants` of --output instead of replacing it"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    result = run(args)
    result["config"]["load_average_before"] = round(load_before, 2)
    print_report(result)
    if args.variant:
        existing = json.loads(args.output.read_text()) if args.output.exists() else {}
        existing.setdefault("variants", {})[args.variant] = result
        write_json(args.output, existing)
    else:
        previous = json.loads(args.output.read_text()) if args.output.exists() else {}
        write_json(args.output, result | {"variants": previous.get("variants", {})})
    print(f"  results: {args.output}")


if __name__ == "__main__":
    main()
