"""The event app against the sandbox NewStore's rate limits (on by default), over real HTTP.

Orders are published to the Pub/Sub topic all at once, so the deliveries arrive as a burst;
what is asserted is counted (orders, 429s), never timed.
"""

from __future__ import annotations

import base64
import json

import httpx

from sandbox.stack import GCP_PROJECT, GCP_TOPIC, Stack, running_stack
from tests.helpers import order_created_message, store_order

LIMITED_INJECTION = "POST /v0/d/fulfill_order (rate limited)"


def publish_at_once(stack: Stack, order_ids: list[str]) -> None:
    """OrderCreated for every order in one publish call, as a burst from commercetools."""
    messages = [
        {"data": base64.b64encode(json.dumps(order_created_message(o)).encode()).decode()}
        for o in order_ids
    ]
    url = f"{stack.pubsub_url}/v1/projects/{GCP_PROJECT}/topics/{GCP_TOPIC}:publish"
    httpx.post(url, json={"messages": messages}, timeout=10).raise_for_status()


def injected(stack: Stack) -> list[str]:
    return [order.external_id for order in stack.newstore.orders.values()]


def test_the_apps_pace_keeps_a_burst_inside_fulfill_orders_limit(stack: Stack) -> None:
    assert stack.newstore.controls.fulfill_order_rate_limit == 20  # NewStore's, by default
    orders = [store_order(stack, n) for n in range(30)]

    publish_at_once(stack, orders)
    stack.wait_idle(timeout_s=60)

    assert sorted(injected(stack)) == sorted(orders)
    assert stack.newstore.sandbox.counters[LIMITED_INJECTION] == 0
    assert stack.newstore.limits.refused == {"tenant": 0, "fulfill_order": 0}


def test_a_tenant_slower_than_the_apps_pace_costs_429s_but_no_order() -> None:
    # NewStore at 2 injections/s, a tenth of the app's pace (NEW_STORE_INJECT_RATE, 20):
    # it answers 429 with Retry-After, the app pauses and retries, Pub/Sub redelivers.
    with running_stack(newstore_controls={"fulfill_order_rate_limit": 2}) as stack:
        orders = [store_order(stack, n) for n in range(8)]

        publish_at_once(stack, orders)
        stack.wait_idle(timeout_s=60)

        assert sorted(injected(stack)) == sorted(orders)  # each exactly once
        assert stack.newstore.sandbox.counters[LIMITED_INJECTION] > 0
        assert stack.pubsub.deliveries()["dead_lettered"] == []
        for order_id in orders:  # each success on its order, no failure left recorded
            assert len(stack.ctp.collections["order"].get(order_id)["syncInfo"]) == 1
            stored = stack.ctp.custom_objects.get(("newstore-connector-orders", order_id))
            assert stored is None
