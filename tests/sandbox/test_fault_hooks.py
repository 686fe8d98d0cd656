"""The emulators' fault hooks and the reads the doctor makes: a scope-limited API client, a
subscription's health status, NewStore products and the routing ruleset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox import commercetools as ctp_emulator
from sandbox import newstore as newstore_emulator

PK = "sandbox"
CREDENTIALS = ("sandbox-client", "sandbox-secret")
GCP = {"type": "GoogleCloudPubSub", "projectId": "gcp-project", "topic": "orders"}


@pytest.fixture
async def ct() -> AsyncIterator[httpx.AsyncClient]:
    app = ctp_emulator.create_app(project_key=PK)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ct.test") as client:
        yield client


@pytest.fixture
async def ns() -> AsyncIterator[httpx.AsyncClient]:
    app = newstore_emulator.create_app(
        seed={"products": [{"product_id": "P1", "sku": "SKU-1"}], "service_levels": ["GROUND"]}
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ns.test") as client:
        token = await client.post(
            "/v0/token",
            data={
                "grant_type": "password",
                "username": "sandbox-user",
                "password": "sandbox-password",
            },
        )
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


async def token(client: httpx.AsyncClient, scope: str | None = None) -> httpx.Response:
    data = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    return await client.post("/oauth/token", data=data, auth=CREDENTIALS)


async def test_a_scope_limited_client_gets_only_its_scopes(ct: httpx.AsyncClient) -> None:
    limited = await ct.put(
        "/_sandbox/clients/sandbox-client/scopes", json={"scopes": ["view_orders", "view_products"]}
    )
    assert limited.status_code == 200

    everything = await token(ct)
    subset = await token(ct, f"view_orders:{PK}")
    more = await token(ct, f"view_orders:{PK} manage_subscriptions:{PK}")

    assert everything.json()["scope"] == f"view_orders:{PK} view_products:{PK}"
    assert subset.json()["scope"] == f"view_orders:{PK}"
    assert (more.status_code, more.json()["error"]) == (400, "invalid_scope")


async def test_an_unlimited_client_has_manage_project(ct: httpx.AsyncClient) -> None:
    answer = await token(ct, f"manage_subscriptions:{PK}")

    assert answer.status_code == 200
    assert (await token(ct)).json()["scope"] == f"manage_project:{PK}"


async def test_a_subscription_status_can_be_set_and_a_new_destination_heals_it(
    ct: httpx.AsyncClient,
) -> None:
    bearer = {"Authorization": f"Bearer {(await token(ct)).json()['access_token']}"}
    draft = {"key": "sub", "destination": GCP, "messages": [{"resourceTypeId": "order"}]}
    created = (await ct.post(f"/{PK}/subscriptions", json=draft, headers=bearer)).json()
    assert created["status"] == "Healthy"

    broken = await ct.put(
        "/_sandbox/subscriptions/sub/status", json={"status": "ConfigurationError"}
    )
    unknown = await ct.put("/_sandbox/subscriptions/sub/status", json={"status": "Sick"})
    read = (await ct.get(f"/{PK}/subscriptions/key=sub", headers=bearer)).json()
    assert broken.status_code == 200 and unknown.status_code == 400
    assert read["status"] == "ConfigurationError"

    action = {"action": "changeDestination", "destination": {**GCP, "topic": "orders-v2"}}
    body = {"version": read["version"], "actions": [action]}
    updated = await ct.post(f"/{PK}/subscriptions/key=sub", json=body, headers=bearer)
    assert updated.json()["status"] == "Healthy"


async def test_products_are_found_by_id_with_shop_and_locale(ns: httpx.AsyncClient) -> None:
    params = {"shop": "storefront", "locale": "en-US"}

    known = await ns.get("/v0/c/products/P1", params=params)
    unknown = await ns.get("/v0/c/products/P2", params=params)
    no_shop = await ns.get("/v0/c/products/P1", params={"locale": "en-US"})
    anonymous = await ns.get("/v0/c/products/P1", params=params, headers={"Authorization": ""})

    assert known.status_code == 200 and known.json()["product_id"] == "P1"
    assert unknown.status_code == 404
    assert no_shop.status_code == 400
    assert anonymous.status_code == 403


async def test_the_routing_ruleset_lists_the_service_levels(ns: httpx.AsyncClient) -> None:
    answer = await ns.get("/v0/routing/ruleset")

    assert answer.status_code == 200
    assert answer.json()["sl_levels_priority"] == ["GROUND"]
