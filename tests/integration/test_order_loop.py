"""The whole order loop over loopback HTTP: commercetools publishes, Pub/Sub pushes, the
event app injects into NewStore, with duplicates, faults and token expiry on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from connector import deploy
from connector.commercetools import CommercetoolsClient
from sandbox.stack import PubSubPolicy, Stack, running_stack


def post_deploy(stack: Stack, **env: str) -> None:
    async def run() -> None:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            await deploy.post_deploy(ctp, {**stack.env(), **env})

    asyncio.run(run())


def deliveries(stack: Stack) -> dict:
    return httpx.get(f"{stack.pubsub_url}/_sandbox/deliveries").json()


def set_controls(url: str, **controls: object) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls).raise_for_status()


def records(stack: Stack) -> dict[str, dict]:
    container = stack.ctp.collections.get("key-value-document")
    assert container is not None
    return {
        obj["key"]: obj["value"]
        for obj in container.items.values()
        if obj["container"] == "newstore-connector-orders"
    }


def synced(stack: Stack, order_id: str) -> list[str]:
    """NewStore's order ids in the order's syncInfo: where a success is written."""
    order = stack.ctp.collections["order"].get(order_id)
    return [entry["externalId"] for entry in order.get("syncInfo") or []]


@pytest.mark.parametrize("message_format", ["Platform", "CloudEvents"])
def test_orders_flow_from_commercetools_to_newstore(stack: Stack, message_format: str) -> None:
    post_deploy(stack, SUBSCRIPTION_FORMAT=message_format)
    order_ids = [stack.create_order(n) for n in range(5)]

    stack.wait_idle()

    injected = {o.external_id: o for o in stack.newstore.orders.values()}
    assert set(injected) == set(order_ids)
    assert all(synced(stack, o) == [injected[o].id] for o in order_ids)
    assert records(stack) == {}  # a success needs no Custom Object
    summary = deliveries(stack)
    assert summary["acked"] == 6  # five orders and the subscription's test message
    assert summary["dead_lettered"] == []


def test_payload_not_included_is_fetched_all_the_same(stack: Stack) -> None:
    post_deploy(stack)
    httpx.put(
        f"{stack.ctp_url}/_sandbox/messages", json={"payload_not_included": True}
    ).raise_for_status()

    order_id = stack.create_order(1)
    stack.wait_idle()

    assert order_id in {o.external_id for o in stack.newstore.orders.values()}


def remove_first_sku(order: dict) -> None:
    del order["lineItems"][0]["variant"]["sku"]


@pytest.fixture
def chaotic_stack() -> Iterator[Stack]:
    policy = PubSubPolicy(min_backoff_s=0.05, max_backoff_s=0.5, duplicate_rate=0.3)
    with running_stack(policy) as stack:
        yield stack


def test_duplicates_and_faults_still_give_exactly_one_order_each(chaotic_stack: Stack) -> None:
    stack = chaotic_stack
    post_deploy(stack)
    set_controls(stack.newstore_url, fault_rate=0.15, lost_response_rate=0.15, random_seed=1)
    set_controls(stack.ctp_url, fault_rate=0.05, random_seed=2)
    good = [stack.create_order(n) for n in range(30)]
    # Unmappable (no SKU): must be recorded, neither looped nor dropped.
    poison = [stack.create_order(n, edit=remove_first_sku) for n in range(100, 102)]

    stack.wait_idle(timeout_s=60)

    external_ids = [o.external_id for o in stack.newstore.orders.values()]
    assert sorted(external_ids) == sorted(good)  # exactly once each, poison never injected
    assert deliveries(stack)["dead_lettered"] == []
    stored = records(stack)
    assert {stored[o]["reason"] for o in poison} == {"missing_sku"}
    assert all(len(synced(stack, o)) == 1 for o in good)
    # no good order is left recorded as failed (a retrying record whose delete met a fault
    # is superseded by the order's syncInfo when read)
    assert not [o for o in good if stored.get(o, {}).get("status") == "failed"]
    assert deliveries(stack)["duplicates"] > 0


def test_tokens_expiring_mid_run_are_refreshed(stack: Stack) -> None:
    post_deploy(stack)
    first = [stack.create_order(n) for n in range(3)]
    stack.wait_idle()
    httpx.post(f"{stack.ctp_url}/_sandbox/expire-tokens").raise_for_status()
    httpx.post(f"{stack.newstore_url}/_sandbox/expire-tokens").raise_for_status()

    second = [stack.create_order(n) for n in range(3, 6)]
    stack.wait_idle()

    assert {o.external_id for o in stack.newstore.orders.values()} == set(first + second)
    assert deliveries(stack)["nacked"] == 0  # the refresh happened inside each delivery
    injector = stack.apps["event"].state.worker
    assert injector.newstore.token_fetches == 2
    assert injector.ctp.token_fetches == 2
