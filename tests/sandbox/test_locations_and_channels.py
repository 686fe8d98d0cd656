"""The emulators' side of per-store stock: NewStore's Location API and both kinds of delta
export; commercetools' channel creation and updates, with what the real API refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox import commercetools as ct
from sandbox import newstore as ns
from tests.sandbox.test_newstore_emulator import bearer, download, run_export

NS_BASE = "http://newstore.sandbox"


@pytest.fixture
def ns_app() -> FastAPI:
    return ns.create_app()


@pytest.fixture
async def newstore(ns_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(ns_app)
    async with httpx.AsyncClient(transport=transport, base_url=NS_BASE) as client:
        client.headers.update(await bearer(client))
        yield client


async def set_stock(client: httpx.AsyncClient, rows: list[dict[str, Any]]) -> None:
    reply = await client.post("/_sandbox/stock", json={"stock": rows})
    assert reply.status_code == 200, reply.text


async def test_every_stocked_node_is_a_location_and_the_sandbox_can_disable_one(
    newstore: httpx.AsyncClient,
) -> None:
    await set_stock(
        newstore,
        [
            {"product_id": "A", "fulfillment_node_id": "DC01", "atp": 1},
            {"product_id": "A", "fulfillment_node_id": "US01", "atp": 2},
        ],
    )
    reply = await newstore.post(
        "/_sandbox/locations", json=[{"id": "US01", "is_enabled": False, "name": "Union Sq"}]
    )
    assert reply.status_code == 200
    listed = (await newstore.get("/v0/d/locations")).json()
    assert listed == {
        "locations": [
            {"id": "DC01", "is_inventory_master": False, "is_enabled": True, "type": "dc"},
            {
                "id": "US01",
                "is_inventory_master": False,
                "is_enabled": False,
                "type": "store",
                "name": "Union Sq",
            },
        ]
    }
    refused = await newstore.get("/v0/d/locations", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # only what changed, the removed row with ATP 0 (the emulator's assumption)
        ("changed", [("A", "DC01", 0), ("A", "US01", 0)]),
        # the product as it is now: the removed node is just absent
        ("product", [("A", "DC01", 0), ("A", "US02", 5)]),
    ],
)
async def test_a_delta_holds_the_changed_rows_or_every_node_as_controlled(
    newstore: httpx.AsyncClient, ns_app: FastAPI, kind: str, expected: list[Any]
) -> None:
    await set_stock(
        newstore,
        [
            {"product_id": "A", "fulfillment_node_id": n, "atp": a}
            for n, a in (("DC01", 3), ("US01", 4), ("US02", 5))
        ]
        + [{"product_id": "B", "fulfillment_node_id": "DC01", "atp": 1}],
    )
    patched = await newstore.patch("/_sandbox/emulator-controls", json={"export_delta_rows": kind})
    assert patched.json()["export_delta_rows"] == kind
    cursor = (await run_export(newstore))["last_updated_at"]
    await set_stock(
        newstore,
        [
            {"product_id": "A", "fulfillment_node_id": "DC01", "atp": 0},
            {"product_id": "A", "fulfillment_node_id": "US01", "remove": True},
        ],
    )
    delta = await run_export(newstore, cursor)
    rows = await download(newstore, delta["link"])
    assert sorted((r["product_id"], r["fulfillment_node_id"], r["atp"]) for r in rows) == expected
    # a full export never holds the removed row
    everything = await download(newstore, (await run_export(newstore))["link"])
    assert ("A", "US01") not in {(r["product_id"], r["fulfillment_node_id"]) for r in everything}


def test_the_default_delta_is_the_reading_the_docs_suggest(ns_app: FastAPI) -> None:
    assert ns_app.state.emulator.controls.export_delta_rows == "changed"


# --- commercetools channels -------------------------------------------------------------------


@pytest.fixture
async def ctp() -> AsyncIterator[httpx.AsyncClient]:
    app = ct.create_app(project_key="pk")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ct") as c:
        token = await c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
        )
        c.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield c


async def test_a_channel_is_created_found_by_key_and_updated_at_its_version(
    ctp: httpx.AsyncClient,
) -> None:
    draft = {"key": "US01", "roles": ["InventorySupply"], "name": {"en": "Union Square"}}
    created = await ctp.post("/pk/channels", json=draft)
    assert created.status_code == 201
    channel = created.json()
    assert (channel["version"], channel["roles"], channel["name"]) == (
        1,
        ["InventorySupply"],
        {"en": "Union Square"},
    )
    duplicate = await ctp.post("/pk/channels", json=draft)
    assert duplicate.json()["errors"][0]["code"] == "DuplicateField"
    found = await ctp.get("/pk/channels", params={"where": 'key in ("US01", "nope")'})
    assert [c["id"] for c in found.json()["results"]] == [channel["id"]]

    actions = [
        {"action": "changeName", "name": {"en": "Union Sq.", "de": "Union-Platz"}},
        {"action": "addRoles", "roles": ["Primary", "InventorySupply"]},
    ]
    updated = await ctp.post(
        f"/pk/channels/{channel['id']}", json={"version": 1, "actions": actions}
    )
    assert updated.json()["version"] == 2
    assert updated.json()["roles"] == ["InventorySupply", "Primary"]
    stale = await ctp.post(f"/pk/channels/{channel['id']}", json={"version": 1, "actions": actions})
    assert (stale.status_code, stale.json()["errors"][0]["code"]) == (409, "ConcurrentModification")


@pytest.mark.parametrize(
    "draft",
    [
        {"roles": ["InventorySupply"]},  # no key
        {"key": "a b"},  # not a key
        {"key": "ok", "roles": ["Warehouse"]},
        {"key": "ok", "name": "plain"},
        {"key": "ok", "stock": 1},
    ],
)
async def test_a_wrong_channel_draft_is_refused(ctp: httpx.AsyncClient, draft: Any) -> None:
    reply = await ctp.post("/pk/channels", json=draft)
    assert reply.status_code == 400


async def test_entries_per_channel_and_the_channel_predicate(ctp: httpx.AsyncClient) -> None:
    ids = []
    for key in ("US01", "US02"):
        ids.append((await ctp.post("/pk/channels", json={"key": key})).json()["id"])
    for channel_id in ids:
        entry = {
            "sku": "A",
            "quantityOnStock": 1,
            "supplyChannel": {"typeId": "channel", "id": channel_id},
        }
        assert (await ctp.post("/pk/inventory", json=entry)).status_code == 201
    await ctp.post("/pk/inventory", json={"sku": "A", "quantityOnStock": 2})
    where = f'supplyChannel(id in ("{ids[0]}"))'
    results = (await ctp.get("/pk/inventory", params={"where": where})).json()["results"]
    assert [(r["sku"], r["supplyChannel"]["id"]) for r in results] == [("A", ids[0])]
