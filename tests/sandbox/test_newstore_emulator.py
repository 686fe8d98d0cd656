"""The NewStore emulator behaves like NewStore where the connector depends on it."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.newstore import NewStoreEmulator, create_app

BASE = "http://newstore.sandbox"
NODES = ["DC01", "STORE01", "STORE02"]


def order_payload(
    external_id: str = "order-1",
    *,
    currency: str = "USD",
    price: Any = 19.99,
    items_per_shipment: int = 1,
    shipments: int = 1,
    service_level: bool = True,
) -> dict[str, Any]:
    def item(n: int) -> dict[str, Any]:
        return {
            "external_item_id": f"line-{n}",
            "product_id": "P0000001",
            "price": {
                "item_price": price,
                "item_list_price": price,
                "item_tax_lines": [
                    {"amount": 0, "rate": 0.19, "name": "VAT", "country_code": "DE"}
                ],
                "item_discount_info": [],
                "item_order_discount_info": [],
            },
        }

    def shipment() -> dict[str, Any]:
        # the Swagger requires a shipping option: a service level, or a shipping offer token
        option: dict[str, Any] = (
            {"service_level_identifier": "GROUND", "price": 0, "tax": 0}
            if service_level
            else {"shipping_offer_token": "offer-token-1", "price": 0, "tax": 0}
        )
        return {"items": [item(n) for n in range(items_per_shipment)], "shipping_option": option}

    shipment_list = [shipment() for _ in range(shipments)]
    return {
        "external_id": external_id,
        "shop": "storefront",
        "channel_type": "web",
        "channel_name": "commercetools",
        "shop_locale": "en-US",
        "currency": currency,
        "placed_at": "2024-05-01T10:00:00Z",
        "price_method": "tax_included",
        "customer_email": "jane@example.com",
        "shipping_address": {
            "country": "US",
            "address_line_1": "1 Main St",
            "address_line_2": "Apt 2",
            "city": "Springfield",
            "zip_code": "12345",
        },
        "shipments": shipment_list,
        "payments": [
            {
                "type": "authorized",
                "amount": 19.99,
                "method": "credit_card",
                "processor": "adyen",
                "correlation_ref": "psp-1",
                "processed_at": "2024-05-01T10:00:01Z",
            }
        ],
    }


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    reply = await client.post(
        "/v0/token",
        data={"grant_type": "password", "username": "sandbox-user", "password": "sandbox-password"},
    )
    assert reply.status_code == 200
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


@pytest.fixture
def app() -> FastAPI:
    return create_app()


@pytest.fixture
def emulator(app: FastAPI) -> NewStoreEmulator:
    return app.state.emulator


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        c.headers.update(await bearer(c))
        yield c


def assert_newstore_error(reply: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    body = reply.json()
    assert reply.status_code == status, body
    assert set(body) == {"error_code", "message", "request_id"}
    assert body["error_code"] == error_code, body
    return body


# --- tokens -----------------------------------------------------------------------------


async def test_password_token_works_until_expired_then_403(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        headers = await bearer(c)
        ok = await c.get("/_/v0/hq/stocked_products", headers=headers)
        assert ok.status_code == 200
        assert (await c.post("/_sandbox/expire-tokens")).json()["expired"] == 1
        denied = await c.get("/_/v0/hq/stocked_products", headers=headers)
        assert_newstore_error(denied, 403, "token_expired")
        fresh = await bearer(c)
        assert (await c.get("/_/v0/hq/stocked_products", headers=fresh)).status_code == 200


async def test_token_past_its_ttl_is_refused_with_403() -> None:
    app = create_app(token_ttl_s=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        reply = await c.post("/v0/d/fulfill_order", json=order_payload(), headers=await bearer(c))
        assert_newstore_error(reply, 403, "token_expired")


async def test_missing_or_unknown_token_is_403(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        assert_newstore_error(await c.get("/_/v0/hq/stocked_products"), 403, "missing_token")
        unknown = {"Authorization": "Bearer nope"}
        reply = await c.get("/_/v0/hq/stocked_products", headers=unknown)
        assert_newstore_error(reply, 403, "invalid_token")


async def test_wrong_password_is_refused(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        reply = await c.post(
            "/v0/token",
            data={"grant_type": "password", "username": "sandbox-user", "password": "x"},
        )
        assert reply.status_code == 401
        assert reply.json()["error"] == "invalid_grant"


async def test_client_credentials_flow_keycloak_shapes() -> None:
    app = create_app(tenant="acme", client_token_ttl_s=300)
    path = "/auth/realms/acme/protocol/openid-connect/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        reply = await c.post(path, data=form)
        assert reply.status_code == 200
        body = reply.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 300
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await c.get("/_/v0/hq/stocked_products", headers=headers)).status_code == 200

        bad = await c.post(path, data=form | {"client_secret": "wrong"})
        assert bad.status_code == 401
        assert bad.json()["error"] == "invalid_client"
        assert "error_description" in bad.json()
        basic = await c.post(
            path,
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
        )
        assert basic.status_code == 200
        wrong_realm = "/auth/realms/other/protocol/openid-connect/token"
        assert (await c.post(wrong_realm, data=form)).status_code == 404


# --- order injection: validation --------------------------------------------------------


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """A valid payload with the value at a dotted path replaced (`...` deletes it)."""
    payload = order_payload()
    *parents, last = path.split(".")
    target: Any = payload
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "error_code", "field"),
    [
        ("external_id", ..., "missing_required_field", "external_id"),
        ("external_id", "x" * 65, "invalid_field_value", "external_id"),
        ("shop", ..., "missing_required_field", "shop"),
        ("channel_type", "pos", "invalid_field_value", "channel_type"),
        ("channel_name", 5, "invalid_field_type", "channel_name"),
        ("shop_locale", ..., "missing_required_field", "shop_locale"),
        ("currency", "XYZ", "invalid_currency", "currency"),
        ("placed_at", "2024-05-01", "invalid_field_value", "placed_at"),
        ("price_method", "gross", "invalid_field_value", "price_method"),
        ("shipping_address.country", "USA", "invalid_field_value", "shipping_address.country"),
        (
            "shipping_address.address_line_1",
            "y" * 129,
            "invalid_field_value",
            "shipping_address.address_line_1",
        ),
        ("shipments", [], "invalid_field_value", "shipments"),
        (
            "shipments.0.items.0.product_id",
            ...,
            "missing_required_field",
            "shipments[0].items[0].product_id",
        ),
        (
            "shipments.0.items.0.price.item_price",
            "19.99",
            "invalid_field_type",
            "shipments[0].items[0].price.item_price",
        ),
        (
            "shipments.0.items.0.price.item_tax_lines.0.rate",
            1.5,
            "invalid_field_value",
            "shipments[0].items[0].price.item_tax_lines[0].rate",
        ),
        ("payments.0.type", "refund", "invalid_field_value", "payments[0].type"),
        ("payments.0.amount", 0.0, "invalid_field_value", "payments[0].amount"),
        ("payments.0.processor", ..., "missing_required_field", "payments[0].processor"),
    ],
)
async def test_validation_errors_name_the_field(
    client: httpx.AsyncClient, path: str, value: Any, error_code: str, field: str
) -> None:
    reply = await client.post("/v0/d/fulfill_order", json=_mutate(path, value))
    body = assert_newstore_error(reply, 400, error_code)
    assert body["message"].startswith(field) or f" {field}" in body["message"], body


def _discount(kind: str = "fixed", **changes: Any) -> dict[str, Any]:
    entry = {
        "type": kind,
        "original_value": 10,
        "price_adjustment": 1.5,
        "discount_ref": "spring-10",
        "coupon_code": "SPRING10",
        "description": "Spring sale",
    }
    return {**entry, **changes}


PRICE = "shipments.0.items.0.price"
OPTION = "shipments.0.shipping_option"
PRICE_AT = "shipments[0].items[0].price"  # the same paths as messages write them
OPTION_AT = "shipments[0].shipping_option"


# What the published Swagger forbids and the emulator accepted before it enforced the
# Swagger's definitions (see sandbox/newstore/validation.py).
@pytest.mark.parametrize(
    ("path", "value", "error_code", "field"),
    [
        ("customer_email", "j" * 53 + "@example.com", "invalid_field_value", "customer_email"),
        ("customer_name", "n" * 129, "invalid_field_value", "customer_name"),
        ("customer_language", "eng", "invalid_field_value", "customer_language"),
        ("shop", "s" * 129, "invalid_field_value", "shop"),
        ("shipping_address.state", "s" * 33, "invalid_field_value", "shipping_address.state"),
        ("shipping_address.zip_code", "1" * 33, "invalid_field_value", "shipping_address.zip_code"),
        ("shipping_address.city", "c" * 65, "invalid_field_value", "shipping_address.city"),
        (
            "shipping_address.salutation",
            "s" * 33,
            "invalid_field_value",
            "shipping_address.salutation",
        ),
        (
            "shipping_address.first_name",
            "f" * 65,
            "invalid_field_value",
            "shipping_address.first_name",
        ),
        (
            f"{PRICE}.item_discount_info",
            [_discount()] * 2,
            "invalid_field_value",
            f"{PRICE_AT}.item_discount_info",
        ),
        (
            f"{PRICE}.item_order_discount_info",
            [_discount()] * 2,
            "invalid_field_value",
            f"{PRICE_AT}.item_order_discount_info",
        ),
        (
            f"{OPTION}.discount_info",
            [_discount()] * 2,
            "invalid_field_value",
            f"{OPTION_AT}.discount_info",
        ),
        (
            f"{PRICE}.item_discount_info",
            [_discount(coupon_code="C" * 65)],
            "invalid_field_value",
            f"{PRICE_AT}.item_discount_info[0].coupon_code",
        ),
        (
            f"{PRICE}.item_discount_info",
            [_discount(type="bogus")],
            "invalid_field_value",
            f"{PRICE_AT}.item_discount_info[0].type",
        ),
        (
            f"{PRICE}.item_discount_info",
            [_discount("percentage", original_value=150)],
            "invalid_field_value",
            f"{PRICE_AT}.item_discount_info[0].original_value",
        ),
        (
            f"{PRICE}.item_discount_info",
            [{"type": "fixed", "price_adjustment": 1}],
            "missing_required_field",
            f"{PRICE_AT}.item_discount_info[0].discount_ref",
        ),
        (
            f"{PRICE}.item_tax_lines.0.name",
            ...,
            "missing_required_field",
            f"{PRICE_AT}.item_tax_lines[0].name",
        ),
        (
            f"{OPTION}.service_level_identifier",
            "L" * 65,
            "invalid_field_value",
            f"{OPTION_AT}.service_level_identifier",
        ),
        (f"{OPTION}.price", ..., "missing_required_field", f"{OPTION_AT}.price"),
        ("shipments.0.shipping_option", ..., "missing_required_field", OPTION_AT),
        ("payments.0.processor", "p" * 33, "invalid_field_value", "payments[0].processor"),
        ("payments.0.method", "m" * 65, "invalid_field_value", "payments[0].method"),
        ("payments.0.processed_at", ..., "missing_required_field", "payments[0].processed_at"),
        ("payments.0.amount", 1e-9, "invalid_money_precision", "payments[0].amount"),
        ("currency", "SLE", "invalid_currency", "currency"),  # not in the Swagger's enum
        ("is_fulfilled", "yes", "invalid_field_type", "is_fulfilled"),
        (
            "extended_attributes",
            [{"name": "a", "value": "b", "c": "d"}],
            "invalid_field_value",
            "extended_attributes[0]",
        ),
        ("payments", [{}] * 41, "invalid_field_value", "payments"),
    ],
)
async def test_what_the_swagger_forbids_is_refused(
    client: httpx.AsyncClient, path: str, value: Any, error_code: str, field: str
) -> None:
    reply = await client.post("/v0/d/fulfill_order", json=_mutate(path, value))
    body = assert_newstore_error(reply, 400, error_code)
    assert body["message"].startswith(field) or f" {field}" in body["message"], body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # both kinds of discount entry, as the mapping writes them
        (f"{PRICE}.item_discount_info", [_discount("fixed", original_value=3)]),
        (f"{PRICE}.item_order_discount_info", [_discount("percentage", coupon_code="")]),
        (f"{OPTION}.discount_info", [_discount("percentage", original_value=100)]),
        ("shop_locale", "x" * 128),  # the emulator used to stop at 35
        ("customer_name", "n" * 128),
        ("currency", "XAU"),  # in the Swagger's enum; no ISO minor unit: 2 decimals
        (f"{PRICE}.item_tax_lines.0.name", ""),
        (f"{OPTION}.routing_strategy", {"strategy": "prerouted", "fulfillment_node_id": "DC01"}),
        ("extended_attributes", [{"name": "gift", "value": "yes"}]),
    ],
)
async def test_what_the_swagger_allows_is_accepted(
    client: httpx.AsyncClient, path: str, value: Any
) -> None:
    reply = await client.post("/v0/d/fulfill_order", json=_mutate(path, value))
    assert reply.status_code == 200, reply.json()


async def test_addon_rules_use_the_documented_error_codes(client: httpx.AsyncClient) -> None:
    payload = order_payload("o-addon", items_per_shipment=2)
    items = payload["shipments"][0]["items"]
    items[1]["addon_parent_external_item_id"] = "line-0"
    assert (await client.post("/v0/d/fulfill_order", json=payload)).status_code == 200

    orphan = copy.deepcopy(payload)
    orphan["external_id"] = "o-addon-orphan"
    orphan["shipments"][0]["items"][1]["addon_parent_external_item_id"] = "line-9"
    reply = await client.post("/v0/d/fulfill_order", json=orphan)
    assert_newstore_error(reply, 400, "addon_invalid_parent_item")

    itself = copy.deepcopy(payload)
    itself["external_id"] = "o-addon-self"
    itself["shipments"][0]["items"][1]["addon_parent_external_item_id"] = "line-1"
    reply = await client.post("/v0/d/fulfill_order", json=itself)
    assert_newstore_error(reply, 400, "addon_invalid_parent_item")

    duplicate = copy.deepcopy(payload)
    duplicate["external_id"] = "o-addon-dup"
    duplicate["shipments"][0]["items"].append(copy.deepcopy(items[0]))
    reply = await client.post("/v0/d/fulfill_order", json=duplicate)
    assert_newstore_error(reply, 400, "addon_duplicate_external_item_id")


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v0/d/fulfill_order", content=b"{not json")
    assert_newstore_error(reply, 400, "invalid_request_body")


@pytest.mark.parametrize(
    ("currency", "price", "accepted"),
    [
        ("JPY", 1200, True),
        ("JPY", 1200.0, True),
        ("JPY", 1200.5, False),
        ("USD", 19.99, True),
        ("USD", 0.5666666666666667, False),
        ("USD", 19.999, False),
        ("USD", 0.1 + 0.2, False),
        ("EUR", 7, True),
        ("KWD", 1.234, True),
        ("KWD", 1.2345, False),
    ],
)
async def test_money_decimals_follow_the_currency(
    client: httpx.AsyncClient, currency: str, price: float, accepted: bool
) -> None:
    payload = order_payload(currency=currency, price=price)
    payload["payments"][0]["amount"] = 10
    reply = await client.post("/v0/d/fulfill_order", json=payload)
    if accepted:
        assert reply.status_code == 200, reply.json()
    else:
        body = assert_newstore_error(reply, 400, "invalid_money_precision")
        # item_list_price and item_price carry the price; the first in the Swagger's order
        assert "shipments[0].items[0].price.item_list_price" in body["message"]
        assert currency in body["message"]


async def test_tax_amount_precision_is_checked_too(client: httpx.AsyncClient) -> None:
    payload = _mutate("shipments.0.items.0.price.item_tax_lines.0.amount", 3.191)
    body = assert_newstore_error(
        await client.post("/v0/d/fulfill_order", json=payload), 400, "invalid_money_precision"
    )
    assert "item_tax_lines[0].amount" in body["message"]


async def test_item_and_shipment_limits(client: httpx.AsyncClient) -> None:
    post = client.post
    ok = await post("/v0/d/fulfill_order", json=order_payload("o-100", items_per_shipment=100))
    assert ok.status_code == 200
    assert len(ok.json()["items"]) == 100

    too_many = order_payload("o-101", items_per_shipment=101)
    reply = await post("/v0/d/fulfill_order", json=too_many)
    assert "shipments[0].items" in assert_newstore_error(reply, 400, "too_many_items")["message"]

    five = order_payload("o-5s", shipments=5, service_level=False)
    assert (await post("/v0/d/fulfill_order", json=five)).status_code == 200
    six = order_payload("o-6s", shipments=6, service_level=False)
    assert_newstore_error(await post("/v0/d/fulfill_order", json=six), 400, "too_many_shipments")

    two_with_level = order_payload("o-2sl", shipments=2, service_level=True)
    reply = await post("/v0/d/fulfill_order", json=two_with_level)
    assert_newstore_error(reply, 400, "single_shipment_required")

    # a service level and a shipping offer token in one order: also refused
    mixed = order_payload("o-mixed", shipments=2, service_level=False)
    mixed["shipments"][0]["shipping_option"] = {
        "service_level_identifier": "GROUND",
        "price": 0,
        "tax": 0,
    }
    reply = await post("/v0/d/fulfill_order", json=mixed)
    assert_newstore_error(reply, 400, "single_shipment_required")


async def test_unknown_product_refused_once_a_catalog_is_seeded(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.set_stock([{"product_id": "P9", "fulfillment_node_id": "DC01", "atp": 1}])
    reply = await client.post("/v0/d/fulfill_order", json=order_payload())
    body = assert_newstore_error(reply, 400, "product_not_found")
    assert "shipments[0].items[0].product_id" in body["message"]

    await client.patch("/_sandbox/emulator-controls", json={"validate_products": False})
    assert (await client.post("/v0/d/fulfill_order", json=order_payload())).status_code == 200


# --- order injection: idempotency -------------------------------------------------------


async def test_same_payload_twice_returns_the_same_answer(client: httpx.AsyncClient) -> None:
    first = await client.post("/v0/d/fulfill_order", json=order_payload(items_per_shipment=3))
    second = await client.post("/v0/d/fulfill_order", json=order_payload(items_per_shipment=3))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    body = first.json()
    assert body["external_id"] == "order-1"
    assert [i["external_item_id"] for i in body["items"]] == ["line-0", "line-1", "line-2"]
    assert len({i["id"] for i in body["items"]}) == 3
    listing = (await client.get("/_sandbox/orders")).json()
    assert listing["count"] == 1
    assert listing["orders"][0]["id"] == body["id"]
    single = (await client.get("/_sandbox/orders/order-1")).json()
    assert single["payload"] == order_payload(items_per_shipment=3)


async def test_different_payload_for_known_external_id_is_refused(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/v0/d/fulfill_order", json=order_payload())).status_code == 200
    changed = order_payload()
    changed["customer_email"] = "other@example.com"
    reply = await client.post("/v0/d/fulfill_order", json=changed)
    assert_newstore_error(reply, 400, "same_order_injection_with_different_data")
    assert (await client.get("/_sandbox/orders")).json()["count"] == 1


async def test_concurrent_identical_injections_make_one_order(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.sandbox.controls.latency_ms = 5  # let the requests overlap
    # About idempotency, not the rate limit: 25 at once is beyond fulfill_order's 20/s.
    emulator.controls.rate_limits = False
    replies = await asyncio.gather(
        *(client.post("/v0/d/fulfill_order", json=order_payload()) for _ in range(25))
    )
    assert {r.status_code for r in replies} == {200}
    assert len({json.dumps(r.json(), sort_keys=True) for r in replies}) == 1
    assert len(emulator.orders) == 1


async def test_lost_response_then_retry_returns_the_stored_order(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    await client.put("/_sandbox/controls", json={"lost_response_rate": 1.0})
    lost = await client.post("/v0/d/fulfill_order", json=order_payload())
    assert lost.status_code == 503
    assert set(lost.json()) == {"error_code", "message", "request_id"}
    await client.put("/_sandbox/controls", json={})
    retried = await client.post("/v0/d/fulfill_order", json=order_payload())
    assert retried.status_code == 200
    assert retried.json()["id"] == emulator.orders["order-1"].id


# --- stocked products -------------------------------------------------------------------


async def test_stocked_products_pages_through_more_than_200_rows(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.bulk_seed_stock(84, NODES)  # 252 rows
    seen: list[tuple[str, str]] = []
    offset = 0
    requests = 0
    while True:
        reply = await client.get(f"/_/v0/hq/stocked_products?limit=100&offset={offset}")
        requests += 1
        page = reply.json()
        assert page["pagination_info"]["total"] == 252
        assert page["pagination_info"]["offset"] == offset
        if not page["items"]:
            break
        seen += [(i["product_id"], i["fulfillment_node_id"]) for i in page["items"]]
        offset += page["pagination_info"]["count"]
    assert requests == 4
    assert len(seen) == len(set(seen)) == 252
    row = (await client.get("/_/v0/hq/stocked_products?limit=1")).json()["items"][0]
    assert row["sku"] == "SKU-0000001" and row["product_id"] == "P0000001"
    assert {"sku", "product_id", "fulfillment_node_id", "atp"} <= set(row)


async def test_stocked_products_clamps_limit_and_rejects_bad_paging(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.bulk_seed_stock(50, NODES)
    page = (await client.get("/_/v0/hq/stocked_products?limit=500")).json()
    assert page["pagination_info"]["count"] == 100
    reply = await client.get("/_/v0/hq/stocked_products?offset=-1")
    assert_newstore_error(reply, 400, "invalid_query_parameter")


def test_bulk_seed_of_300k_rows_seeds_every_row() -> None:
    # How fast it is belongs to the benchmarks (bench/inventory_bench.py), never to a test:
    # a time bound here failed under load on a shared machine.
    app = create_app()
    rows = app.state.emulator.bulk_seed_stock(100_000, NODES)
    assert rows == 300_000
    assert len(app.state.emulator.row_keys()) == 300_000


# --- availabilities export --------------------------------------------------------------


async def run_export(client: httpx.AsyncClient, cursor: int | None = None) -> dict[str, Any]:
    body = {} if cursor is None else {"last_updated_at": cursor}
    started = await client.post("/v0/d/availabilities/bulk", json=body)
    assert started.status_code == 201, started.json()
    job = started.json()
    assert job["state"] == "processing"
    for _ in range(10):
        job = (await client.get(f"/v0/d/availabilities/bulk/{job['id']}")).json()
        if job["state"] != "processing":
            break
    assert job["state"] == "finished", job
    return job


async def download(client: httpx.AsyncClient, link: str) -> list[dict[str, Any]]:
    reply = await client.get(link, headers={"Authorization": ""})  # no token needed
    assert reply.status_code == 200
    if link.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
            (name,) = archive.namelist()
            return json.loads(archive.read(name))
    return reply.json()


def seed_three_by_three(emulator: NewStoreEmulator) -> None:
    emulator.set_stock(
        {"product_id": p, "sku": f"SKU-{p}", "fulfillment_node_id": n, "atp": 10}
        for p in ("A", "B", "C")
        for n in NODES
    )


async def test_full_then_delta_export_with_every_node_of_a_changed_product(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    seed_three_by_three(emulator)
    emulator.controls.export_delta_rows = "product"  # not the default reading of the docs
    full = await run_export(client)
    rows = await download(client, full["link"])
    assert len(rows) == 9
    assert rows[0]["external_identifiers"][0]["identifiers"]["sku"] == "SKU-A"
    assert {"product_id", "fulfillment_node_id", "atp"} <= set(rows[0])
    cursor = full["last_updated_at"]

    reply = await client.post(
        "/_sandbox/stock",
        json={"stock": [{"product_id": "B", "fulfillment_node_id": "STORE01", "atp": 3}]},
    )
    assert reply.json()["changed"] == 1
    delta = await run_export(client, cursor)
    changed = await download(client, delta["link"])
    assert sorted((r["product_id"], r["fulfillment_node_id"], r["atp"]) for r in changed) == [
        ("B", "DC01", 10),
        ("B", "STORE01", 3),
        ("B", "STORE02", 10),
    ]
    assert delta["last_updated_at"] > cursor

    # the same ATP again is no change, so nothing after the new cursor
    await client.post(
        "/_sandbox/stock",
        json={"stock": [{"product_id": "B", "fulfillment_node_id": "STORE01", "atp": 3}]},
    )
    empty = await run_export(client, delta["last_updated_at"])
    assert await download(client, empty["link"]) == []
    assert empty["last_updated_at"] == delta["last_updated_at"]
    # the behaviour some NewStore integrations guard against: an empty delta reporting 0
    emulator.controls.empty_delta_cursor_zero = True
    assert (await run_export(client, delta["last_updated_at"]))["last_updated_at"] == 0


async def test_export_polls_zip_format_and_failure(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    seed_three_by_three(emulator)
    await client.patch(
        "/_sandbox/emulator-controls",
        json={"export_processing_polls": 3, "export_format": "zip"},
    )
    job = (await client.post("/v0/d/availabilities/bulk", json={})).json()
    states = [
        (await client.get(f"/v0/d/availabilities/bulk/{job['id']}")).json()["state"]
        for _ in range(4)
    ]
    assert states == ["processing"] * 3 + ["finished"]
    finished = (await client.get(f"/v0/d/availabilities/bulk/{job['id']}")).json()
    assert finished["link"].endswith(".zip")
    assert len(await download(client, finished["link"])) == 9

    await client.patch(
        "/_sandbox/emulator-controls", json={"export_processing_polls": 0, "export_fail": True}
    )
    failing = (await client.post("/v0/d/availabilities/bulk", json={})).json()
    status = (await client.get(f"/v0/d/availabilities/bulk/{failing['id']}")).json()
    assert status["state"] == "failed" and "link" not in status


async def test_export_that_never_finishes(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.controls.export_never_finish = True
    job = (await client.post("/v0/d/availabilities/bulk", json={})).json()
    for _ in range(20):
        status = (await client.get(f"/v0/d/availabilities/bulk/{job['id']}")).json()
        assert status["state"] == "processing"
        assert "link" not in status


async def test_export_api_disabled_and_bad_cursor(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    reply = await client.post("/v0/d/availabilities/bulk", json={"last_updated_at": "12"})
    assert_newstore_error(reply, 400, "invalid_field_value")
    assert_newstore_error(await client.get("/v0/d/availabilities/bulk/nope"), 404, "not_found")
    emulator.controls.export_api_enabled = False
    assert (await client.post("/v0/d/availabilities/bulk", json={})).status_code == 404
    invalid = {"export_format": "csv"}
    assert (await client.patch("/_sandbox/emulator-controls", json=invalid)).status_code == 422


async def test_seed_endpoint_and_create_app_seed() -> None:
    seed = {
        "products": [{"product_id": "X", "sku": "SKU-X"}],
        "stock": [{"product_id": "X", "fulfillment_node_id": "DC01", "atp": 4}],
        "bulk": {"n_skus": 10, "nodes": ["DC01"]},
    }
    app = create_app(seed=copy.deepcopy(seed))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        state = (await c.get("/_sandbox/state")).json()
        assert state["products"] == 11 and state["stock_rows"] == 11
        reply = await c.post("/_sandbox/seed", json={"reset": True, "stock": seed["stock"]})
        assert reply.json()["stock_rows"] == 1


async def test_export_file_rows_keys_and_escapes(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    emulator.catalog_name, emulator.catalog_locale = 'cat "ö"', "de-de"
    emulator.set_stock(
        [
            {"product_id": 'P"1\\', "sku": "SKU-Ä€😀\n", "fulfillment_node_id": "DC01", "atp": 0},
            {"product_id": 'P"1\\', "fulfillment_node_id": "STORE01", "atp": 7},
            {"product_id": "P2", "fulfillment_node_id": "DC01", "atp": 2},
        ]
    )
    job = await run_export(client)
    reply = await client.get(job["link"])
    rows = json.loads(reply.content, object_pairs_hook=list)  # keeps the key order
    identifiers = [("catalog", 'cat "ö"'), ("locale", "de-de")]
    expected = [
        ('P"1\\', "DC01", 0, "SKU-Ä€😀\n"),
        ('P"1\\', "STORE01", 7, "SKU-Ä€😀\n"),
        ("P2", "DC01", 2, "P2"),  # no SKU known: the product id
    ]
    assert rows == [
        [
            ("product_id", product_id),
            ("fulfillment_node_id", node),
            ("atp", atp),
            ("present_atp", atp),
            ("future_atp", 0),
            ("revision", job["last_updated_at"]),
            ("external_identifiers", [[*identifiers, ("identifiers", [("sku", sku)])]]),
        ]
        for product_id, node, atp, sku in expected
    ]


async def test_export_file_is_built_once_when_the_job_finishes(
    client: httpx.AsyncClient, emulator: NewStoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox.newstore.state as state_module

    builds: list[int] = []
    encode = state_module.encode_export

    def counted(*args: Any) -> tuple[bytes, int]:
        builds.append(1)
        return encode(*args)

    monkeypatch.setattr(state_module, "encode_export", counted)
    seed_three_by_three(emulator)
    job = await run_export(client)
    assert len(builds) == 1
    for _ in range(3):
        assert (await client.get(f"/v0/d/availabilities/bulk/{job['id']}")).json() == job
        assert len(await download(client, job["link"])) == 9
    assert len(await download(client, job["link"].replace(".json", ".zip"))) == 9
    # the rows are those of the revision reported: later changes are the next delta's
    emulator.set_stock([{"product_id": "A", "fulfillment_node_id": "DC01", "atp": 99}])
    assert {row["atp"] for row in await download(client, job["link"])} == {10}
    assert len(builds) == 1


async def test_delta_export_of_changed_and_removed_rows(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    seed_three_by_three(emulator)
    cursor = (await run_export(client))["last_updated_at"]
    emulator.set_stock(
        [
            {"product_id": "A", "fulfillment_node_id": "DC01", "atp": 4},
            {"product_id": "C", "fulfillment_node_id": "STORE02", "atp": 0, "remove": True},
        ]
    )
    delta = await run_export(client, cursor)
    rows = await download(client, delta["link"])
    assert [(r["product_id"], r["fulfillment_node_id"], r["atp"], r["revision"]) for r in rows] == [
        ("A", "DC01", 4, delta["last_updated_at"]),
        ("C", "STORE02", 0, delta["last_updated_at"]),
    ]


@pytest.mark.parametrize("per_chunk", [1, 2, 4, 100])
def test_export_file_is_one_array_across_chunks(
    monkeypatch: pytest.MonkeyPatch, per_chunk: int
) -> None:
    import sandbox.newstore.exports as exports

    monkeypatch.setattr(exports, "_ROWS_PER_CHUNK", per_chunk)
    products = [(f"P{i}", [(f"N{n}", (i + n, 7)) for n in range(i % 3)]) for i in range(7)]
    data, rows = exports.encode_export(products, {"P1": "S1"}, "c", "l")
    decoded = json.loads(data)
    assert rows == len(decoded) == 6
    assert [(r["product_id"], r["fulfillment_node_id"], r["atp"]) for r in decoded] == [
        (p, node, atp) for p, nodes in products for node, (atp, _) in nodes
    ]
    assert decoded[0]["external_identifiers"][0]["identifiers"] == {"sku": "S1"}
    assert exports.encode_export([], {}, "c", "l") == (bytearray(b"[]"), 0)
