"""The NewStore emulator after injection: the order, cancellation and fulfillment request
endpoints of the Swagger, and the sandbox control that moves an order through its life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.newstore import create_app
from tests.sandbox.test_newstore_emulator import BASE, bearer, order_payload


@pytest.fixture
def app() -> FastAPI:
    return create_app(controls={"rate_limits": False})


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        c.headers.update(await bearer(c))
        yield c


async def inject(client: httpx.AsyncClient, items: int = 2) -> dict[str, Any]:
    reply = await client.post("/v0/d/fulfill_order", json=order_payload(items_per_shipment=items))
    assert reply.status_code == 200, reply.text
    return reply.json()


async def step(client: httpx.AsyncClient, order_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/_sandbox/orders/{order_id}/lifecycle", json=body)


async def events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await client.get("/_sandbox/events")).json()["events"]


async def test_the_injected_order_is_readable_by_either_id(client: httpx.AsyncClient) -> None:
    answer = await inject(client)
    internal = await client.get(f"/v0/orders/{answer['id']}", params={"id_type": "internal"})
    external = await client.get("/v0/orders/order-1", params={"id_type": "external"})
    assert internal.status_code == external.status_code == 200
    assert internal.json() == external.json()
    body = internal.json()
    assert (body["id"], body["origin"], body["status"]) == ("order-1", "external", "open")
    mapping = {item["id"]: item["origin_id"] for item in body["items"]}
    assert mapping == {i["id"]: i["external_item_id"] for i in answer["items"]}
    no_type = await client.get(f"/v0/orders/{answer['id']}")
    assert no_type.status_code == 400
    unknown = await client.get("/v0/orders/nope", params={"id_type": "internal"})
    assert unknown.status_code == 404
    anonymous = await client.get(
        "/v0/orders/order-1", params={"id_type": "external"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 403


async def test_ship_with_tracking_shows_on_the_fulfillment_requests(
    client: httpx.AsyncClient,
) -> None:
    answer = await inject(client)
    order_id = answer["id"]
    empty = await client.get(f"/v0/fulfillment_requests/{order_id}")
    assert empty.json() == {"fulfillment_requests": []}  # not routed yet
    assert (await step(client, order_id, step="assign")).status_code == 200
    assert (await step(client, order_id, step="ready")).status_code == 200
    first = answer["items"][0]["id"]
    shipped = await step(
        client, order_id, step="ship", item_ids=[first], carrier="DHL", tracking_code="JD01"
    )
    assert shipped.status_code == 200, shipped.text
    [fr] = (await client.get(f"/v0/fulfillment_requests/{order_id}")).json()["fulfillment_requests"]
    assert fr["status"] == "partially_completed"
    by_item = {item["item_id"]: item for item in fr["items"]}
    assert (by_item[first]["status"], by_item[first]["carrier"]) == ("shipped", "DHL")
    assert by_item[first]["tracking_code"] == "JD01"
    other = answer["items"][1]["id"]
    assert (by_item[other]["status"], by_item[other]["tracking_code"]) == ("dispatched", None)

    names = [e["name"] for e in await events(client)]
    assert names == [
        "order.created",
        "fulfillment_request.assigned",
        "fulfillment_request.items_ready_for_handover",
        "fulfillment_request.items_completed",
    ]
    completed = (await events(client))[-1]["payload"]
    assert completed["order_id"] == order_id
    assert completed["id"] == fr["fulfillment_request_id"]
    assert completed["items"] == [{"id": first, "product_id": "P0000001"}]
    assert "tracking_code" not in str(completed)  # items_completed carries no tracking
    stamps = [e["payload"]["logical_timestamp"] for e in await events(client)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_cancel_needs_a_reason_and_only_works_before_shipping(
    client: httpx.AsyncClient,
) -> None:
    answer = await inject(client)
    path = f"/v0/orders/{answer['id']}/cancel"
    status = await client.get(path, params={"id_type": "internal"})
    assert status.json() == {"cancelable": True, "canceled": False, "is_safe": True}
    no_reason = await client.post(path, params={"id_type": "internal"}, json={})
    assert no_reason.status_code == 400
    done = await client.post(path, params={"id_type": "internal"}, json={"reason": "customer"})
    assert done.status_code == 200
    after = await client.get(path, params={"id_type": "internal"})
    assert after.json()["canceled"] is True
    detail = await client.get(f"/v0/orders/{answer['id']}", params={"id_type": "internal"})
    assert {item["status"] for item in detail.json()["items"]} == {"cancelled"}
    assert [e["name"] for e in await events(client)][-1] == "order.cancelled"
    assert (await client.get("/_sandbox/cancellations")).json()["count"] == 1

    shipped = await inject_shipped(client, "order-2")
    refused = await client.post(
        f"/v0/orders/{shipped}/cancel", params={"id_type": "internal"}, json={"reason": "late"}
    )
    assert refused.status_code == 400


async def inject_shipped(client: httpx.AsyncClient, external_id: str) -> str:
    reply = await client.post("/v0/d/fulfill_order", json=order_payload(external_id))
    order_id: str = reply.json()["id"]
    await step(client, order_id, step="assign")
    assert (await step(client, order_id, step="ship")).status_code == 200
    return order_id


async def test_items_cancelled_complete_and_return_emit_their_events(
    client: httpx.AsyncClient,
) -> None:
    answer = await inject(client)
    order_id = answer["id"]
    second = answer["items"][1]["id"]
    await step(client, order_id, step="assign")
    cancelled = await step(client, order_id, step="cancel_items", item_ids=[second])
    assert cancelled.status_code == 200
    await step(client, order_id, step="ship")
    await step(client, order_id, step="complete")
    returned = await step(client, order_id, step="return")
    assert returned.status_code == 200, returned.text
    log = await events(client)
    assert [e["name"] for e in log][-4:] == [
        "order.items_cancelled",
        "fulfillment_request.items_completed",
        "order.completed",
        "return.processed",
    ]
    items_cancelled, completed, _, ret = log[-4:]
    assert items_cancelled["payload"]["items"] == [{"id": second, "product_id": "P0000001"}]
    assert [i["id"] for i in completed["payload"]["items"]] == [answer["items"][0]["id"]]
    assert ret["payload"]["order_id"] == order_id
    assert [(i["id"], i["quantity"]) for i in ret["payload"]["items"]] == [
        (answer["items"][0]["id"], 1)
    ]
    assert (await step(client, order_id, step="return")).status_code == 400  # nothing left
