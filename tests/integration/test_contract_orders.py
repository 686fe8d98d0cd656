"""The hard orders of the mapping table, through the whole loop.

Each case is a real-shaped commercetools order from tests/fixtures/orders/ (stacked discounts,
high-precision prices, unpaid payments, JPY and KWD with discounts), or one derived from it
(over-long optional fields). It is stored in the commercetools emulator with the resources its
references point to kept apart, as the real API keeps them, so the app's own expansions must
bring them back; commercetools publishes OrderCreated, Pub/Sub pushes it, the app maps it and
injects it into the NewStore emulator, which refuses whatever NewStore's published contract
refuses (sandbox/newstore/validation.py).

Asserted: NewStore received exactly the payload computed by hand in the fixture, once; the
record lists what was left out; and NewStore was called once per order.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector import deploy
from connector.commercetools import CommercetoolsClient
from sandbox.commercetools import SEED_KEYS
from sandbox.stack import Stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "orders"
HARD_CASES = [
    "18_two_cart_discounts_on_a_line",
    "19_two_total_price_discounts_tie",
    "20_high_precision_price",
    "21_pending_and_failed_payments",
    "22_jpy_discounts",
    "23_kwd_discounts",
]
SEED_KEY_BY_TYPE = {type_id: key for key, type_id in SEED_KEYS.items()}
INJECTION = "POST /v0/d/fulfill_order"
LONG_EMAIL = "a" * 60 + "@example.com"  # 72 characters: customer_email allows 64


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def split_references(order: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The order as commercetools stores it (references without `obj`), and the referenced
    resources as seeds, by seed key."""
    stored = copy.deepcopy(order)
    seeds: dict[str, dict[str, Any]] = defaultdict(dict)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = node.pop("obj", None) if "typeId" in node else None
            if target is not None:
                seeds[SEED_KEY_BY_TYPE[node["typeId"]]][target["id"]] = target
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(stored)
    return stored, {key: list(by_id.values()) for key, by_id in seeds.items()}


def skus(order: dict[str, Any]) -> list[str]:
    return [line["variant"]["sku"] for line in order["lineItems"]]


def inject_through_the_loop(stack: Stack, order: dict[str, Any]) -> None:
    async def subscribe() -> None:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            await deploy.post_deploy(ctp, stack.env())

    asyncio.run(subscribe())
    stored, seeds = split_references(order)
    with httpx.Client(timeout=10) as client:
        products = [{"product_id": sku, "sku": sku} for sku in skus(order)]
        # With a catalog seeded, the emulator refuses product ids NewStore does not know.
        client.post(
            f"{stack.newstore_url}/_sandbox/seed", json={"products": products}
        ).raise_for_status()
        client.post(f"{stack.ctp_url}/_sandbox/seed", json=seeds).raise_for_status()
        client.post(f"{stack.ctp_url}/_sandbox/orders", json=stored).raise_for_status()
    stack.wait_idle()


def record(stack: Stack, order_id: str) -> dict[str, Any] | None:
    container = stack.ctp.collections.get("key-value-document")
    assert container is not None
    by_key = {
        obj["key"]: obj["value"]
        for obj in container.items.values()
        if obj["container"] == "newstore-connector-orders"
    }
    return by_key.get(order_id)


def injections_received(stack: Stack) -> int:
    """fulfill_order requests the NewStore emulator received, refused ones included."""
    by_endpoint = httpx.get(f"{stack.newstore_url}/_sandbox/counters").json()["by_endpoint"]
    return int(by_endpoint.get(INJECTION, 0))


@pytest.mark.parametrize("name", HARD_CASES)
def test_a_hard_order_reaches_newstore_exactly_as_computed_by_hand(stack: Stack, name: str) -> None:
    fixture = load(name)
    order = fixture["order"]

    inject_through_the_loop(stack, order)

    injected = [o for o in stack.newstore.orders.values() if o.external_id == order["id"]]
    assert len(injected) == 1, "NewStore accepted the order once"
    expected = {**fixture["expected"], "shop": injected[0].payload["shop"]}
    assert injected[0].payload == expected
    omitted = fixture.get("expected_omitted", [])
    # The order carries NewStore's id; a record is written only to list what was left out.
    stored = stack.ctp.collections["order"].items[order["id"]]
    assert [s["externalId"] for s in stored.get("syncInfo", [])] == [injected[0].id]
    assert (record(stack, order["id"]) or {}).get("omitted", []) == omitted
    assert injections_received(stack) == 1, "accepted on the first request, never refused"


def with_long_optional_fields(order: dict[str, Any]) -> dict[str, Any]:
    long = copy.deepcopy(order)
    long["id"] = "0d3c50a4-54a6-5b43-9b3b-6c0f0e0a2f11"
    long["orderNumber"] = "CT-LONG-FIELDS"
    long["customerEmail"] = LONG_EMAIL
    long["shippingAddress"]["state"] = "S" * 40  # state allows 32
    long["billingAddress"]["postalCode"] = "9" * 40  # zip_code allows 32
    return long


def test_over_long_optional_fields_are_left_out_and_listed_not_cut(stack: Stack) -> None:
    order = with_long_optional_fields(load("18_two_cart_discounts_on_a_line")["order"])

    inject_through_the_loop(stack, order)

    (injected,) = [o for o in stack.newstore.orders.values() if o.external_id == order["id"]]
    payload = injected.payload
    assert "customer_email" not in payload
    assert "state" not in payload["shipping_address"]
    assert "zip_code" not in payload["billing_address"]
    assert LONG_EMAIL not in json.dumps(payload) and "S" * 33 not in json.dumps(payload)
    omitted = (record(stack, order["id"]) or {})["omitted"]
    assert any("customer_email" in line for line in omitted)
    assert any("shipping_address.state" in line for line in omitted)
    assert any("billing_address.zip_code" in line for line in omitted)
    assert injections_received(stack) == 1
