"""Upstream requests per order, and the event app's CPU time per order, in steady state.

    python -m bench.event_requests [--orders 200 --warmup 20]

Runs the whole order loop in this process, with no added latency: commercetools (emulator)
publishes `OrderCreated`, the Pub/Sub simulator pushes it to the event app, which reads the
order, injects it into NewStore (emulator) and records the outcome. After a warm-up (tokens
fetched, the `newstore` channel's id looked up, connections open), the emulators' counters
are reset and `--orders` more orders go through; the answer should be one commercetools
read, one NewStore write and one commercetools write (NewStore's order id into the order's
syncInfo) per order, with token calls amortised to about zero.

The CPU time is that of the event app's own server thread (each server of the in-process
stack runs on its own thread and event loop), so the emulators' work is not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from bench.common import OWN_SETTINGS, by_category, read_counters, reset_counters
from connector import deploy
from sandbox.stack import Stack, running_stack

EXPECTED = {
    "order_read": 1.0,
    "injection": 1.0,
    "sync_write": 1.0,  # the success, written onto the order (updateSyncInfo)
    "record_write": 0.0,  # no Custom Object for a success (ORDER_RECORD_SUCCESSES=false)
    "token": 0.0,
    "channel_read": 0.0,  # once per process, in the warm-up
}


def subscribe(stack: Stack) -> None:
    """The subscription that post-deploy creates, stored without its test message."""
    draft = deploy.subscription_draft(stack.env())
    with httpx.Client(base_url=stack.ctp_url, timeout=10, trust_env=False) as client:
        client.post("/_sandbox/seed", json={"subscriptions": [draft]}).raise_for_status()


def server_thread(url: str) -> threading.Thread:
    """The thread that `sandbox.server.serve_in_thread` runs the server of `url` on."""
    name = f"uvicorn-{urlsplit(url).port}"
    for thread in threading.enumerate():
        if thread.name == name:
            return thread
    raise RuntimeError(f"no server thread {name}")


def thread_cpu_seconds(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def run_orders(stack: Stack, first: int, count: int) -> None:
    for number in range(first, first + count):
        stack.create_order(number)
    stack.wait_idle(timeout_s=120)


def measure(orders: int, warmup: int) -> dict[str, object]:
    with running_stack() as stack:
        assert stack.event_url is not None
        subscribe(stack)
        run_orders(stack, 1, warmup)  # tokens and connections: the cold start
        cold = {
            "commercetools": read_counters(stack.ctp_url),
            "newstore": read_counters(stack.newstore_url),
        }
        for url in (stack.ctp_url, stack.newstore_url):
            reset_counters(url)
        event_thread = server_thread(stack.event_url)
        pushes_before = _pushes(stack)
        cpu_before = thread_cpu_seconds(event_thread)
        run_orders(stack, 1 + warmup, orders)
        cpu = thread_cpu_seconds(event_thread) - cpu_before
        counters = {
            "commercetools": read_counters(stack.ctp_url),
            "newstore": read_counters(stack.newstore_url),
        }
        injected = len(stack.newstore.orders)
        pushes = _pushes(stack) - pushes_before
    return {
        "orders": orders,
        "warmup_counters": cold,
        "counters": counters,
        "cpu_ms_per_order": cpu * 1000 / orders,
        "newstore_orders": injected,
        "expected_newstore_orders": orders + warmup,
        "pushes": pushes,
    }


def _pushes(stack: Stack) -> int:
    return int(stack.pubsub.deliveries(details=False)["pushes"])


def print_report(result: dict[str, object]) -> None:
    orders = int(result["orders"])  # type: ignore[call-overload]
    counters: dict[str, dict[str, int]] = result["counters"]  # type: ignore[assignment]
    warmup: dict[str, dict[str, int]] = result["warmup_counters"]  # type: ignore[assignment]
    print(f"\nsteady state, {orders} orders (after warm-up), no added latency\n")
    print(f"  {'API':<14} {'endpoint':<44} {'requests':>8} {'per order':>10}")
    total = 0
    for api, labels in counters.items():
        for label, count in sorted(labels.items()):
            total += count
            print(f"  {api:<14} {label:<44} {count:>8} {count / orders:>10.3f}")
    print(f"  {'all':<14} {'':<44} {total:>8} {total / orders:>10.3f}\n")
    categories: dict[str, int] = {}
    for api, labels in counters.items():
        for name, count in by_category(labels, api).items():
            categories[name] = categories.get(name, 0) + count
    for name, expected in EXPECTED.items():
        per_order = categories.get(name, 0) / orders
        print(f"  {name:<14} {per_order:.3f} per order (expected {expected:g})")
    warm_tokens = sum(by_category(labels).get("token", 0) for labels in warmup.values())
    print(f"  token calls during the warm-up: {warm_tokens} (one per API)")
    expected_orders = result["expected_newstore_orders"]
    print(f"  NewStore orders: {result['newstore_orders']} (expected {expected_orders})")
    print(f"  Pub/Sub pushes: {result['pushes']} (one per order)")
    print(f"  event app CPU: {result['cpu_ms_per_order']:.2f} ms per order (its server thread)\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.event_requests", description=__doc__)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    # Neither a developer's connector variables nor a `.env` file may change the figures
    # (the in-process apps read optional settings, such as `AUTH_*`, from both).
    for name in [name for name in os.environ if name.startswith(OWN_SETTINGS)]:
        del os.environ[name]
    # The event app logs one JSON line per delivery to stdout: still written (its cost
    # counts), but not mixed into this report.
    with (
        tempfile.TemporaryDirectory() as workdir,
        contextlib.chdir(workdir),
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        result = measure(args.orders, args.warmup)
    print_report(result)


if __name__ == "__main__":
    main()
