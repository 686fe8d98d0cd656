"""Benchmark of the lifecycle app (NewStore's Event Stream -> commercetools), on the sandbox.

    python -m bench.lifecycle_bench [--orders 100] [--rate 50] [--latency-ms 20] [--outage-s 60]

Three figures:
1. commercetools requests per event in the steady state (shipments, completions: one read,
   one update), counted by the commercetools emulator;
2. the receiver's answer time at `--rate` events/s (open loop: a request every 1/rate s,
   whatever the answers do) with `--latency-ms` added by both emulators to every answer;
   p50/p95/p99 of the time to the full answer;
3. events lost while commercetools is down for `--outage-s` seconds during the stream:
   the receiver cannot apply nor keep them, answers 503, NewStore stops the stream and keeps
   them; once commercetools is back, the job restarts the integration and drains the inbox.
   Lost = orders whose commercetools state does not match what NewStore did.

Everything runs in this one process (the stack's servers are threads), so the answer times
include the emulators' and the load generator's CPU on the same interpreter: pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    NEWSTORE_CONTROLS_VARIABLE,
    event_app_env,
    order_batch,
    order_created_push,
    percentile,
    put_controls,
    read_counters,
    reset_counters,
    seed_orders,
    start_server,
)
from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from lifecycle.registration import ensure_integration
from sandbox.stack import LIFECYCLE_API_KEY, Stack, running_stack

RESULTS = Path(__file__).resolve().parent / "results"
TOKENS = {"POST /oauth/token", "POST /v0/token"}


def register(stack: Stack) -> None:
    async def go() -> None:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            await deploy.post_deploy(ctp, stack.env())
        async with NewStoreClient(stack.settings().newstore) as newstore:
            await ensure_integration(newstore, stack.lifecycle_settings())

    asyncio.run(go())


def orders(stack: Stack, first: int, count: int) -> list[tuple[str, str]]:
    """(commercetools id, NewStore id) of `count` injected orders."""
    ids = [stack.create_order(n) for n in range(first, first + count)]
    stack.wait_idle(timeout_s=120)
    found = httpx.get(f"{stack.newstore_url}/_sandbox/orders", params={"include_payload": False})
    by_external = {o["external_id"]: o["id"] for o in found.json()["orders"]}
    return [(i, by_external[i]) for i in ids]


def step(client: httpx.Client, ns_id: str, name: str) -> None:
    client.post(f"/_sandbox/orders/{ns_id}/lifecycle", json={"step": name}).raise_for_status()


def counters(url: str) -> dict[str, int]:
    by_endpoint = httpx.get(f"{url}/_sandbox/counters").json()["by_endpoint"]
    return {k: v for k, v in by_endpoint.items() if k not in TOKENS}


def reset(stack: Stack) -> None:
    for url in (stack.ctp_url, stack.newstore_url):
        httpx.post(f"{url}/_sandbox/counters/reset").raise_for_status()


def requests_per_event(stack: Stack, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    with httpx.Client(base_url=stack.newstore_url, timeout=30) as ns:
        for _, ns_id in pairs:
            step(ns, ns_id, "assign")
        ns.post("/_sandbox/stream/deliver").raise_for_status()
        reset(stack)
        for _, ns_id in pairs:
            step(ns, ns_id, "ship")
            step(ns, ns_id, "complete")
        delivered = ns.post("/_sandbox/stream/deliver", timeout=300).json()["delivered"]
    ct = counters(stack.ctp_url)
    newstore = counters(stack.newstore_url)
    ns_api = sum(v for k, v in newstore.items() if "/_sandbox" not in k)
    return {
        "events": delivered,
        "commercetools_requests": sum(ct.values()),
        "commercetools_requests_per_event": round(sum(ct.values()) / delivered, 2),
        "newstore_requests_per_event": round(ns_api / delivered, 2),
        "by_endpoint": ct,
    }


async def open_loop(url: str, bodies: list[dict[str, Any]], rate: float) -> list[float]:
    headers = {"Authorization": f"Bearer {LIFECYCLE_API_KEY}"}
    times: list[float] = []
    statuses: list[int] = []
    transport_retries: list[int] = []
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:

        async def one(body: dict[str, Any]) -> None:
            started = time.perf_counter()
            for attempt in range(2):
                try:
                    response = await client.post(url, json=body, headers=headers)
                    break
                except httpx.TransportError:
                    # an idle keep-alive connection the server closed just then: the time
                    # of the failed attempt stays in the measurement
                    if attempt:
                        raise
                    transport_retries.append(1)
            times.append(time.perf_counter() - started)
            statuses.append(response.status_code)
            outcomes[str(response.json().get("outcome"))] += 1

        tasks = []
        start = time.perf_counter()
        for n, body in enumerate(bodies):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    assert all(s == 200 for s in statuses), set(statuses)
    print("outcomes", dict(outcomes))
    if transport_retries:
        print(f"{len(transport_retries)} requests sent again after a closed connection")
    return times


def answer_times(count: int, rate: float, ms: float) -> Json:
    """Each server in its own process (bench.common): the answer times are the app's."""
    ns_controls = json.dumps({"rate_limits": False})
    ct = start_server("ctp")
    ns = start_server("newstore", env={NEWSTORE_CONTROLS_VARIABLE: ns_controls})
    servers = [ct, ns]
    try:
        env = event_app_env(ct.url, ns.url)
        servers.append(event := start_server("event", env=env, ready_path="/health"))
        lifecycle_env = {**env, "LIFECYCLE_API_KEY": LIFECYCLE_API_KEY}
        servers.append(app := start_server("lifecycle", env=lifecycle_env, ready_path="/health"))
        seeded, seed = order_batch(30_001, count)
        seed_orders(ct.url, seed)
        with httpx.Client(timeout=30) as client:
            for n, order in enumerate(seeded):
                push = order_created_push(order, f"bench-{n}")
                headers = {"Content-Type": "application/json"}
                client.post(f"{event.url}/event", content=push, headers=headers).raise_for_status()
            listed = client.get(f"{ns.url}/_sandbox/orders", params={"include_payload": False})
            ns_ids = [o["id"] for o in listed.json()["orders"]]
        with httpx.Client(base_url=ns.url, timeout=30) as steps:
            for ns_id in ns_ids:
                for name in ("assign", "ready", "ship", "complete"):
                    step(steps, ns_id, name)
            log = steps.get("/_sandbox/events").json()["events"]
        skipped = ("order.created", "fulfillment_request.assigned")
        events = [e for e in log if e["name"] not in skipped]
        # Every event twice, as at-least-once delivery may, shuffled (seeded): in a real
        # stream one order's events are minutes apart, not back to back.
        bodies = events + events
        random.Random(13).shuffle(bodies)
        for url in (ct.url, ns.url):
            put_controls(url, latency_ms=ms)
        reset_counters(ct.url)
        cpu_before = {s.kind: s.cpu_seconds() for s in servers}
        wall = time.perf_counter()
        times = asyncio.run(open_loop(f"{app.url}/lifecycle", bodies, rate))
        wall = time.perf_counter() - wall
        cpu_share = {
            s.kind: round((s.cpu_seconds() - cpu_before[s.kind]) / wall, 2) for s in servers
        }
        ct_requests = sum(v for k, v in read_counters(ct.url).items() if k not in TOKENS)
        cpu_s = app.cpu_seconds()
    finally:
        for server in servers:
            server.stop()
    return {
        "events": len(bodies),
        "rate_per_s": rate,
        "upstream_latency_ms": ms,
        "p50_ms": round(percentile(times, 0.50) * 1000, 1),
        "p95_ms": round(percentile(times, 0.95) * 1000, 1),
        "p99_ms": round(percentile(times, 0.99) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "mean_ms": round(statistics.mean(times) * 1000, 1),
        "commercetools_requests_per_event": round(ct_requests / len(bodies), 2),
        "lifecycle_app_cpu_s": round(cpu_s, 1),
        "cpu_share_during_load": cpu_share,
    }


Json = dict[str, Any]


def outage(stack: Stack, pairs: list[tuple[str, str]], outage_s: float, rate: float) -> Json:
    """Cancel orders in NewStore at `rate`/s while commercetools is down for `outage_s`."""
    controls = {"auto_deliver": True, "interval_s": 0.05}
    httpx.patch(f"{stack.newstore_url}/_sandbox/stream", json=controls).raise_for_status()
    fault = {"fault_rate": 1.0}
    started = time.perf_counter()
    with httpx.Client(base_url=stack.newstore_url, timeout=30) as ns:
        httpx.put(f"{stack.ctp_url}/_sandbox/controls", json=fault).raise_for_status()
        for n, (_, ns_id) in enumerate(pairs):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            step(ns, ns_id, "cancel")
        remaining = started + outage_s - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        httpx.put(f"{stack.ctp_url}/_sandbox/controls", json={"fault_rate": 0.0}).raise_for_status()
    down_s = time.perf_counter() - started
    integration = stack.newstore.stream.integrations["commercetools-connector"]
    status_after_outage = integration.status
    job = httpx.post(f"{stack.job_url}/job", timeout=120).json()["lifecycle"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and stack.newstore.stream.pending(integration):
        time.sleep(0.2)
    job_again = httpx.post(f"{stack.job_url}/job", timeout=120).json()["lifecycle"]
    lost = [
        ct_id
        for ct_id, _ in pairs
        if stack.ctp.get("order", ct_id).get("orderState") != "Cancelled"
    ]
    failed = [d for d in stack.newstore.stream.deliveries if d.status != 200]
    return {
        "events": len(pairs),
        "outage_s": round(down_s, 1),
        "status_after_outage": status_after_outage,
        "non_2xx_answers": len(failed),
        "job_integration": job.get("integration"),
        "job_inbox": job_again.get("inbox"),
        "lost": len(lost),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args()
    result: Json = {"args": vars(args)}
    with running_stack(
        with_lifecycle_app=True, with_job_app=True, newstore_controls={"rate_limits": False}
    ) as stack:
        register(stack)
        first = orders(stack, 1, args.orders)
        result["requests_per_event"] = requests_per_event(stack, first)
        print(json.dumps(result["requests_per_event"]), flush=True)
        third = orders(stack, 20_001, args.orders)
        result["outage"] = outage(stack, third, args.outage_s, args.rate)
        print(json.dumps(result["outage"]), flush=True)
    result["answer_times"] = answer_times(args.orders, args.rate, args.latency_ms)
    print(json.dumps(result["answer_times"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lifecycle_bench.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
