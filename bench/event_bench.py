"""Event benchmark: OrderCreated push deliveries through the event app, against both emulators.

    python -m bench.event_bench --rate 15 [--orders 1500 --duplicates 0.1 --latency-ms 20]
    python -m bench.event_bench [--orders 2000 --concurrency 64 --duplicates 0.1 --latency-ms 20]

The commercetools emulator, the NewStore emulator and the event app each run in their own
uvicorn process on loopback; this process seeds the orders (unpublished), adds latency to
both emulators, warms the app up, then is the load generator: it POSTs Pub/Sub push
envelopes straight to `/event`, with a share of duplicates (the same message id again, half
of them while the first delivery is still in flight, half later). NewStore enforces its
documented limits (20 requests/s on `fulfill_order`, `sandbox/newstore/limits.py`) and the
app keeps to them (`NEW_STORE_INJECT_RATE`, 20), so what matters is how the app holds that
pace, at what latency and CPU, not its raw orders per second:

- `--rate R` (the steady state): an open loop offering R unique orders per second (below
  the limit), each delivery sent at its scheduled time whatever the earlier ones do;
  latency is measured from that time. `--arrivals poisson` spaces them at random.
- otherwise (saturation): `--concurrency` deliveries in flight at once, each taking the
  next as soon as it is answered; the app's pace, not the load, sets the throughput, and
  the latency is mostly the wait for a `fulfill_order` slot.

It reports throughput, latency, upstream requests per order by endpoint (from the
emulators' `/_sandbox/counters`), whether NewStore ends with exactly one order per unique
order, and the event app's peak RSS and CPU time per message; the results also go to
`bench/results/event.json`. Timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.common import (
    RESULTS_DIR,
    HttpConnection,
    SeededOrder,
    ServerProcess,
    by_category,
    event_app_env,
    machine_busy_seconds,
    order_batch,
    order_created_push,
    own_cpu_seconds,
    percentile,
    put_controls,
    read_counters,
    reset_counters,
    seed_orders,
    server_stack,
    start_server,
    write_json,
)

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
# Like Pub/Sub, a delivery that is not acknowledged is pushed again (never needed without
# injected faults, but it keeps the exactly-once check meaningful if one happens).
MAX_PUSHES = 5
REDELIVERY_DELAY_S = 0.1
# Later duplicates arrive this many deliveries (in units of the concurrency, or of the
# offered rate: seconds) after the first.
LATER_DUPLICATE_SPREAD = (2, 8)
LIMITED_INJECTION = "POST /v0/d/fulfill_order (rate limited)"
# The open loop reuses a connection only this long after its last answer: uvicorn closes
# idle keep-alive connections after 5 s.
IDLE_CONNECTION_S = 4.0

TARGETS = {"p99_ms": 300.0, "upstream_requests_per_order": 3.0}
# Saturated, the app should hold this share of NewStore's 20/s; at an offered rate, this
# share of that rate.
HOLDS_THE_PACE = 0.95
NEWSTORE_INJECT_LIMIT = 20.0


@dataclass(frozen=True)
class Delivery:
    order: SeededOrder
    message_id: str
    body: bytes
    kind: str  # first | duplicate_concurrent | duplicate_later


@dataclass
class Outcome:
    latency_s: float
    status: int
    outcome: str
    pushes: int
    kind: str = "first"
    finished_s: float = 0.0  # after the load started


@dataclass
class LoadResult:
    wall_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def orders_span_s(self) -> float:
        """From the start until the last order's first delivery was answered: what the
        unique orders took, without the later duplicates that trail them."""
        firsts = [o.finished_s for o in self.outcomes if o.kind == "first"]
        return max(firsts, default=self.wall_s)


# --- the plan -----------------------------------------------------------------------------


def plan_deliveries(
    orders: Sequence[SeededOrder], duplicates: float, concurrency: int, rng: random.Random
) -> list[Delivery]:
    """One delivery per order, plus `duplicates` x orders re-sends of the same message.

    Half of the duplicates follow their first delivery at once (so both are in flight
    together), half come later (once the first is most likely done)."""
    return [delivery for _, delivery in plan_schedule(orders, duplicates, concurrency, rng)]


def plan_schedule(
    orders: Sequence[SeededOrder], duplicates: float, spread_unit: float, rng: random.Random
) -> list[tuple[float, Delivery]]:
    """`plan_deliveries` with each delivery's position, counted in orders: a later duplicate
    comes LATER_DUPLICATE_SPREAD x `spread_unit` orders after its first delivery."""
    keyed: list[tuple[float, Delivery]] = []
    for position, order in enumerate(orders):
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-message/{order.order_id}"))
        first = Delivery(order, message_id, order_created_push(order, message_id), "first")
        keyed.append((position, first))
    chosen = rng.sample(range(len(orders)), round(len(orders) * duplicates))
    for n, position in enumerate(chosen):
        first = keyed[position][1]
        if n % 2 == 0:
            keyed.append((position + 0.5, _again(first, "duplicate_concurrent")))
        else:
            low, high = LATER_DUPLICATE_SPREAD
            spread = rng.randint(round(low * spread_unit), round(high * spread_unit))
            keyed.append((position + spread + 0.25, _again(first, "duplicate_later")))
    keyed.sort(key=lambda pair: pair[0])
    return keyed


def _again(first: Delivery, kind: str) -> Delivery:
    return Delivery(first.order, first.message_id, first.body, kind)


# --- the load -----------------------------------------------------------------------------


async def push_all(event_url: str, deliveries: Sequence[Delivery], concurrency: int) -> LoadResult:
    """Push every delivery with `concurrency` keep-alive connections; each takes the next."""
    parts = urlsplit(event_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pending = iter(deliveries)
    result = LoadResult(wall_s=0.0)

    async def worker() -> None:
        connection = HttpConnection(host, port)
        try:
            for delivery in pending:  # one shared iterator: each delivery goes to one worker
                outcome = await _push(connection, delivery, result)
                if outcome is not None:
                    result.outcomes.append(outcome)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    for outcome in result.outcomes:
        outcome.finished_s -= started
    return result


async def push_paced(
    event_url: str, schedule: Sequence[tuple[float, Delivery]], rate: float, poisson: bool
) -> LoadResult:
    """The open loop: delivery k leaves at its position / `rate` (or, with `poisson`, at
    exponentially spaced times of the same mean), on a free keep-alive connection or a new
    one, however long the earlier deliveries take."""
    parts = urlsplit(event_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: list[tuple[float, HttpConnection]] = []  # (last used, connection), newest last
    result = LoadResult(wall_s=0.0)
    times = _send_times(schedule, rate, poisson)

    async def connection() -> HttpConnection:
        while idle:
            used, reusable = idle.pop()
            if time.perf_counter() - used < IDLE_CONNECTION_S:
                return reusable
            await reusable.close()  # the server may have closed it already
        return HttpConnection(host, port)

    async def send(at: float, delivery: Delivery) -> None:
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
        chosen = await connection()
        try:
            outcome = await _push(chosen, delivery, result, since=started + at)
        finally:
            idle.append((time.perf_counter(), chosen))
        if outcome is not None:
            result.outcomes.append(outcome)

    started = time.perf_counter()
    await asyncio.gather(*(send(at, d) for at, (_, d) in zip(times, schedule, strict=True)))
    result.wall_s = time.perf_counter() - started
    for outcome in result.outcomes:
        outcome.finished_s -= started
    for _, unused in idle:
        await unused.close()
    return result


def _send_times(
    schedule: Sequence[tuple[float, Delivery]], rate: float, poisson: bool
) -> list[float]:
    """Seconds after the start: a duplicate keeps its offset from the order before it."""
    if not poisson:
        return [position / rate for position, _ in schedule]
    rng = random.Random(len(schedule))
    arrivals: dict[int, float] = {}  # order index -> when its first delivery leaves
    clock = 0.0
    for position, delivery in schedule:
        index = int(position)
        if delivery.kind == "first":
            clock += rng.expovariate(rate)
            arrivals[index] = clock
    times = []
    for position, _ in schedule:
        index = int(position)
        base = arrivals.get(index, position / rate)
        times.append(base + (position - index) / rate)
    return times


async def _push(
    connection: HttpConnection,
    delivery: Delivery,
    result: LoadResult,
    since: float | None = None,
) -> Outcome | None:
    started = time.perf_counter() if since is None else since
    for push in range(1, MAX_PUSHES + 1):
        try:
            status, body = await connection.post("/event", delivery.body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            result.errors[type(error).__name__] += 1
            status, body = 0, b""
        if status in ACK_STATUSES:
            outcome = str(json.loads(body).get("outcome", "?"))
            finished = time.perf_counter()
            return Outcome(finished - started, status, outcome, push, delivery.kind, finished)
        result.errors[f"HTTP {status}"] += 1
        await asyncio.sleep(REDELIVERY_DELAY_S)
    return None


# --- measuring ----------------------------------------------------------------------------


def cpu_snapshot(servers: dict[str, ServerProcess]) -> dict[str, float]:
    snapshot = {name: server.cpu_seconds() for name, server in servers.items()}
    snapshot["load_generator"] = own_cpu_seconds()
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


def newstore_limits(newstore_url: str) -> dict[str, Any]:
    """The NewStore emulator's rate limits in this run (its own controls)."""
    reply = httpx.get(f"{newstore_url}/_sandbox/emulator-controls", trust_env=False)
    reply.raise_for_status()
    controls = reply.json()
    names = (
        "rate_limits",
        "tenant_rate_limit",
        "fulfill_order_rate_limit",
        "rate_limit_algorithm",
        "rate_limit_window_s",
    )
    return {name: controls[name] for name in names}


def read_all_counters(ctp: ServerProcess, newstore: ServerProcess) -> dict[str, dict[str, int]]:
    return {"commercetools": read_counters(ctp.url), "newstore": read_counters(newstore.url)}


def exactly_once(
    ctp: ServerProcess, newstore: ServerProcess, orders: Sequence[SeededOrder]
) -> dict[str, Any]:
    """Whether NewStore holds exactly the orders sent, each once, and each is recorded."""
    expected = {order.order_id for order in orders}
    external_ids = newstore_external_ids(newstore.url)
    return {
        "unique_orders": len(expected),
        "newstore_orders": len(external_ids),
        "records": record_count(ctp.url),
        "exactly_once": len(external_ids) == len(expected) and set(external_ids) == expected,
    }


def newstore_external_ids(newstore_url: str) -> list[str]:
    reply = httpx.get(
        f"{newstore_url}/_sandbox/orders",
        params={"include_payload": "false"},
        timeout=30,
        trust_env=False,
    )
    reply.raise_for_status()
    return [order["external_id"] for order in reply.json()["orders"]]


def record_count(ctp_url: str) -> int:
    reply = httpx.get(f"{ctp_url}/_sandbox/state/summary", timeout=30, trust_env=False)
    reply.raise_for_status()
    return int(reply.json()["counts"]["custom-objects"])


def per_order(counts: dict[str, int], orders: int) -> dict[str, float]:
    return {name: round(count / orders, 4) for name, count in counts.items()}


def latency_figures(load: LoadResult) -> dict[str, float]:
    latencies_ms = [o.latency_s * 1000 for o in load.outcomes]
    return {
        "p50": round(percentile(latencies_ms, 0.50), 1),
        "p90": round(percentile(latencies_ms, 0.90), 1),
        "p99": round(percentile(latencies_ms, 0.99), 1),
        "max": round(max(latencies_ms, default=float("nan")), 1),
    }


def upstream_figures(
    counters: dict[str, dict[str, int]], orders: int, messages: int
) -> dict[str, Any]:
    """Upstream requests by endpoint category, per unique order and per delivery.

    A duplicate that arrives while its first delivery is in flight shares that injection
    and costs nothing; one that arrives later is processed again in full (read, inject,
    record). Every processed delivery reads its order exactly once, so the order reads
    count them, and `total_per_processed_delivery` is the steady-state cost of one."""
    upstream = {api: by_category(labels, api) for api, labels in counters.items()}
    total = sum(sum(categories.values()) for categories in upstream.values())
    processed = upstream.get("commercetools", {}).get("order_read", 0)
    return {
        "by_endpoint": counters,
        "by_category": upstream,
        "per_order": {api: per_order(c, orders) for api, c in upstream.items()},
        "processed_deliveries": processed,
        "total_per_order": round(total / orders, 4),
        "total_per_message": round(total / messages, 4),
        "total_per_processed_delivery": round(total / max(processed, 1), 4),
    }


def cpu_figures(cpu: dict[str, float], wall_s: float) -> dict[str, Any]:
    """CPU seconds by process, and what else kept the machine busy meanwhile."""
    machine = cpu.pop("machine")
    ours = sum(cpu.values())
    # Other processes and the kernel's own work: the figures are only clean near zero.
    by_process = {**cpu, "other": max(0.0, machine - ours)}
    capacity = wall_s * (os.cpu_count() or 1)
    return {
        "cpu_s_by_process": {name: round(seconds, 3) for name, seconds in by_process.items()},
        "cpu_utilisation_of_machine": round(machine / capacity, 3),
        "cpu_utilisation_by_benchmark": round(ours / capacity, 3),
    }


def summarise(
    args: argparse.Namespace,
    load: LoadResult,
    deliveries: Sequence[Delivery],
    counters: dict[str, dict[str, int]],
    cpu: dict[str, float],
    checks: dict[str, Any],
    event_app: ServerProcess,
    limits: dict[str, Any],
) -> dict[str, Any]:
    unique = len({d.order.order_id for d in deliveries})
    messages = len(deliveries)
    app_cpu_s = cpu["event_app"]
    result: dict[str, Any] = {
        "config": {
            "orders": unique,
            "messages": messages,
            "deliveries_by_kind": dict(Counter(d.kind for d in deliveries)),
            "mode": "rate" if args.rate else "concurrency",
            "offered_orders_per_s": args.rate,
            "arrivals": args.arrivals if args.rate else None,
            "concurrency": None if args.rate else args.concurrency,
            "newstore_limits": limits,
            "duplicates": args.duplicates,
            "latency_ms": args.latency_ms,
            "warmup_orders": args.warmup,
            "uvicorn": server_stack(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "throughput": {
            "wall_s": round(load.wall_s, 3),
            "orders_span_s": round(load.orders_span_s(), 3),
            "orders_per_s": round(unique / load.orders_span_s(), 1),
            "messages_per_s": round(messages / load.wall_s, 1),
        },
        "latency_ms": latency_figures(load),
        "answers": {
            "outcomes": dict(Counter(o.outcome for o in load.outcomes)),
            "redelivered": sum(o.pushes - 1 for o in load.outcomes),
            "errors": dict(load.errors),
        },
        "upstream": upstream_figures(counters, unique, messages),
        "exactly_once": checks,
        "event_app": {
            "peak_rss_mib": round(event_app.peak_rss_mib(), 1),
            "cpu_s": round(app_cpu_s, 3),
            "cpu_ms_per_message": round(app_cpu_s * 1000 / messages, 3),
            "cpu_ms_per_order": round(app_cpu_s * 1000 / unique, 3),
        },
        **cpu_figures(cpu, load.wall_s),
    }
    result["fulfill_order_429"] = counters["newstore"].get(LIMITED_INJECTION, 0)
    result["targets"] = targets_met(result)
    return result


def targets_met(result: dict[str, Any]) -> dict[str, bool]:
    """At an offered rate: keep it, within 300 ms at p99. Saturated: hold NewStore's 20/s
    (the latency there is the queue for a fulfill_order slot, by design)."""
    config, throughput = result["config"], result["throughput"]
    upstream = result["upstream"]["total_per_processed_delivery"]
    targets: dict[str, bool] = {}
    if config["mode"] == "rate":
        offered = config["offered_orders_per_s"]
        name = f"orders/s >= {HOLDS_THE_PACE:g} x the offered {offered:g}"
        targets[name] = throughput["orders_per_s"] >= HOLDS_THE_PACE * offered
        targets["p99_ms <= 300"] = result["latency_ms"]["p99"] <= TARGETS["p99_ms"]
    else:
        name = f"orders/s >= {HOLDS_THE_PACE:g} x NewStore's {NEWSTORE_INJECT_LIMIT:g}"
        targets[name] = throughput["orders_per_s"] >= HOLDS_THE_PACE * NEWSTORE_INJECT_LIMIT
    targets["upstream requests per processed delivery <= 3"] = (
        upstream <= TARGETS["upstream_requests_per_order"]
    )
    targets["no fulfill_order answered 429"] = result["fulfill_order_429"] == 0
    targets["exactly_once"] = result["exactly_once"]["exactly_once"]
    return targets


# --- report -------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    config, throughput, latency = result["config"], result["throughput"], result["latency_ms"]
    app = result["event_app"]
    rows: list[tuple[str, str]] = [
        ("orders (unique) / messages", f"{config['orders']} / {config['messages']}"),
        ("load, upstream latency", f"{_load_text(config)}, {config['latency_ms']} ms"),
        ("uvicorn loop / http", f"{config['uvicorn']['loop']} / {config['uvicorn']['http']}"),
        ("wall time", f"{throughput['wall_s']} s"),
        ("orders/s", f"{throughput['orders_per_s']}"),
        ("messages/s", f"{throughput['messages_per_s']}"),
        ("latency p50 / p90 / p99 / max", "{p50} / {p90} / {p99} / {max} ms".format(**latency)),
        ("outcomes", _compact(result["answers"]["outcomes"])),
        ("redelivered / errors", _answers_text(result["answers"])),
        ("fulfill_order answered 429", f"{result['fulfill_order_429']}"),
    ]
    for api, categories in result["upstream"]["per_order"].items():
        rows.append((f"{api} requests / order", _compact(categories)))
    rows += [
        ("upstream requests / order", f"{result['upstream']['total_per_order']}"),
        ("upstream requests / message", f"{result['upstream']['total_per_message']}"),
        ("upstream requests / processed delivery", _processed_text(result["upstream"])),
        ("token calls in the warm-up", _warmup_tokens_text(result["upstream"])),
        ("NewStore orders (expected)", _exactly_once_text(result["exactly_once"])),
        ("event app peak RSS", f"{app['peak_rss_mib']} MiB"),
        ("event app CPU / message", f"{app['cpu_ms_per_message']} ms"),
        ("event app CPU / order", f"{app['cpu_ms_per_order']} ms"),
        ("CPU s by process", _compact(result["cpu_s_by_process"])),
        ("machine CPU busy (this run)", _utilisation_text(result)),
    ]
    for name, met in result["targets"].items():
        rows.append((f"target {name}", "met" if met else "MISSED"))
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print()


def _load_text(config: dict[str, Any]) -> str:
    if config["mode"] == "rate":
        return f"{config['offered_orders_per_s']:g} orders/s offered ({config['arrivals']})"
    return f"concurrency {config['concurrency']}"


def _compact(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in values.items()) or "-"


def _warmup_tokens_text(upstream: dict[str, Any]) -> str:
    warmup = upstream["warmup_by_endpoint"]
    tokens = {api: by_category(labels, api)["token"] for api, labels in warmup.items()}
    return _compact(tokens)


def _processed_text(upstream: dict[str, Any]) -> str:
    processed = upstream["processed_deliveries"]
    return f"{upstream['total_per_processed_delivery']} ({processed} processed deliveries)"


def _answers_text(answers: dict[str, Any]) -> str:
    return f"{answers['redelivered']} / {_compact(answers['errors']) if answers['errors'] else 0}"


def _utilisation_text(result: dict[str, Any]) -> str:
    machine, ours = result["cpu_utilisation_of_machine"], result["cpu_utilisation_by_benchmark"]
    return f"{machine:.0%} ({ours:.0%} by the benchmark's own processes)"


def _exactly_once_text(checks: dict[str, Any]) -> str:
    verdict = "exactly once" if checks["exactly_once"] else "NOT exactly once"
    return f"{checks['newstore_orders']} ({checks['unique_orders']}): {verdict}"


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.event_bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument(
        "--rate", type=float, help="offer this many orders/s (open loop) instead of --concurrency"
    )
    parser.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share re-sent")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added by each emulator")
    parser.add_argument("--warmup", type=int, default=100, help="orders before measuring")
    parser.add_argument("--seed", type=int, default=1, help="which orders are duplicated")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "event.json")
    return parser.parse_args(argv)


def start_servers(running: ExitStack) -> dict[str, ServerProcess]:
    ctp = start_server("ctp")
    running.callback(ctp.stop)
    newstore = start_server("newstore")
    running.callback(newstore.stop)
    event_app = start_server("event", event_app_env(ctp.url, newstore.url), ready_path="/health")
    running.callback(event_app.stop)
    return {"ctp": ctp, "newstore": newstore, "event_app": event_app}


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with ExitStack() as running:
        servers = start_servers(running)
        ctp, newstore, event_app = servers["ctp"], servers["newstore"], servers["event_app"]
        warmup, warmup_seed = order_batch(1, args.warmup)
        measured, measured_seed = order_batch(1 + args.warmup, args.orders)
        seed_orders(ctp.url, warmup_seed)
        seed_orders(ctp.url, measured_seed)
        for url in (ctp.url, newstore.url):
            put_controls(url, latency_ms=args.latency_ms)
        limits = newstore_limits(newstore.url)
        # Later duplicates come 2 to 8 x the concurrency deliveries later, or 2 to 8 s later.
        spread_unit = args.rate or args.concurrency
        schedule = plan_schedule(measured, args.duplicates, spread_unit, rng)
        deliveries = [delivery for _, delivery in schedule]
        print(f"warming up with {args.warmup} orders, then {len(deliveries)} deliveries")

        warm = plan_deliveries(warmup, 0.0, args.concurrency, rng)
        asyncio.run(push_all(event_app.url, warm, args.concurrency))
        warmup_counters = read_all_counters(ctp, newstore)  # the tokens are fetched here
        for url in (ctp.url, newstore.url):
            reset_counters(url)
        time.sleep(1.0)  # NewStore's bucket full again, as after any quiet second

        before = cpu_snapshot(servers)
        if args.rate:
            poisson = args.arrivals == "poisson"
            load = asyncio.run(push_paced(event_app.url, schedule, args.rate, poisson))
        else:
            load = asyncio.run(push_all(event_app.url, deliveries, args.concurrency))
        after = cpu_snapshot(servers)

        counters = read_all_counters(ctp, newstore)
        checks = exactly_once(ctp, newstore, [*warmup, *measured])
        cpu = {name: after[name] - before[name] for name in before}
        result = summarise(args, load, deliveries, counters, cpu, checks, event_app, limits)
        result["upstream"]["warmup_by_endpoint"] = warmup_counters
        return result


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # Other work on the machine skews every figure here; the load average flags it.
    load_before = os.getloadavg()[0]
    result = run(args)
    result["config"]["load_average_before"] = round(load_before, 2)
    print_report(result)
    write_json(args.output, result)
    print(f"  results: {args.output}")


if __name__ == "__main__":
    main()
