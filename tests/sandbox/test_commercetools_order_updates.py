"""The commercetools emulator's order updates: version checks, the lifecycle update actions
and the messages each publishes to a subscription."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.commercetools import create_app

PK = "sandbox"
API = f"/{PK}"
GCP = {"type": "GoogleCloudPubSub", "projectId": "gcp-project", "topic": "orders"}


def order() -> dict[str, Any]:
    money = {"centAmount": 1000, "currencyCode": "EUR"}
    return {
        "id": "ord-1",
        "orderNumber": "N-1",
        "totalPrice": money,
        "lineItems": [
            {"id": "li-1", "variant": {"sku": "A"}, "quantity": 2, "price": {"value": money}},
            {"id": "li-2", "variant": {"sku": "B"}, "quantity": 1, "price": {"value": money}},
        ],
        "shippingInfo": {"shippingMethodName": "Standard", "price": money},
    }


@pytest.fixture
def app() -> FastAPI:
    return create_app(project_key=PK, seed={"orders": [order()]})


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ct") as c:
        token = await c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
        )
        c.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        subscription = {
            "destination": GCP,
            "messages": [{"resourceTypeId": "order", "types": []}],
        }
        assert (await c.post(f"{API}/subscriptions", json=subscription)).status_code == 201
        await c.delete("/_sandbox/published")
        yield c


async def update(client: httpx.AsyncClient, version: int, *actions: Any) -> httpx.Response:
    return await client.post(f"{API}/orders/ord-1", json={"version": version, "actions": actions})


async def messages(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [m["data"] for m in (await client.get("/_sandbox/published")).json()["messages"]]


async def test_state_changes_publish_their_messages_with_the_old_state(
    client: httpx.AsyncClient,
) -> None:
    response = await update(
        client,
        1,
        {"action": "changeOrderState", "orderState": "Confirmed"},
        {"action": "changeShipmentState", "shipmentState": "Ready"},
        {"action": "changePaymentState", "paymentState": "Paid"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["version"], body["orderState"], body["shipmentState"]) == (2, "Confirmed", "Ready")
    assert body["paymentState"] == "Paid"
    published = await messages(client)
    assert [m["type"] for m in published] == [
        "OrderStateChanged",
        "OrderShipmentStateChanged",
        "OrderPaymentStateChanged",
    ]
    assert published[0]["orderState"] == "Confirmed"
    assert published[0]["oldOrderState"] == "Open"
    assert "oldShipmentState" not in published[1]  # there was none
    assert [m["sequenceNumber"] for m in published] == [2, 3, 4]
    assert {m["resourceVersion"] for m in published} == {2}
    assert published[0]["resource"] == {"typeId": "order", "id": "ord-1"}

    # Setting the same state again changes nothing: same version, no message.
    same = await update(client, 2, {"action": "changeOrderState", "orderState": "Confirmed"})
    assert same.json()["version"] == 2
    assert len(await messages(client)) == 3


async def test_a_stale_version_is_a_409_concurrent_modification(
    client: httpx.AsyncClient,
) -> None:
    assert (
        await update(client, 1, {"action": "changeShipmentState", "shipmentState": "Ready"})
    ).is_success
    stale = await update(client, 1, {"action": "changeShipmentState", "shipmentState": "Shipped"})
    assert stale.status_code == 409
    error = stale.json()["errors"][0]
    assert error["code"] == "ConcurrentModification"
    assert error["currentVersion"] == 2
    current = (await client.get(f"{API}/orders/ord-1")).json()
    assert current["shipmentState"] == "Ready"


async def test_invalid_states_and_unknown_actions_are_refused(client: httpx.AsyncClient) -> None:
    bad_state = await update(client, 1, {"action": "changeShipmentState", "shipmentState": "Gone"})
    assert bad_state.status_code == 400
    assert bad_state.json()["errors"][0]["code"] == "InvalidJsonInput"
    unknown = await update(client, 1, {"action": "teleport"})
    assert unknown.status_code == 400
    assert (await client.get(f"{API}/orders/ord-1")).json()["version"] == 1


async def test_add_delivery_with_tracking_and_a_key(client: httpx.AsyncClient) -> None:
    delivery = {
        "action": "addDelivery",
        "deliveryKey": "fr-1",
        "items": [{"id": "li-1", "quantity": 2}],
        "parcels": [
            {
                "key": "fr-1",
                "trackingData": {"trackingId": "1Z999", "carrier": "UPS", "provider": "UPS"},
                "items": [{"id": "li-1", "quantity": 2}],
            }
        ],
    }
    response = await update(client, 1, delivery)
    assert response.status_code == 200, response.text
    stored = response.json()["shippingInfo"]["deliveries"]
    assert len(stored) == 1
    assert stored[0]["key"] == "fr-1"
    assert stored[0]["items"] == [{"id": "li-1", "quantity": 2}]
    assert stored[0]["parcels"][0]["trackingData"]["trackingId"] == "1Z999"
    assert stored[0]["id"] and stored[0]["createdAt"] and stored[0]["parcels"][0]["id"]
    published = await messages(client)
    assert [m["type"] for m in published] == ["DeliveryAdded"]
    assert published[0]["delivery"]["key"] == "fr-1"

    again = await update(client, 2, delivery)
    assert again.status_code == 400
    assert again.json()["errors"][0]["code"] == "DuplicateField"
    unknown_item = dict(delivery, deliveryKey="fr-2", items=[{"id": "nope", "quantity": 1}])
    assert (await update(client, 2, unknown_item)).status_code == 400
    current = (await client.get(f"{API}/orders/ord-1")).json()
    assert (current["version"], len(current["shippingInfo"]["deliveries"])) == (2, 1)


async def test_add_return_info(client: httpx.AsyncClient) -> None:
    action = {
        "action": "addReturnInfo",
        "returnTrackingId": "ret-1",
        "items": [
            {"key": "ret-1-li-1", "lineItemId": "li-1", "quantity": 1, "shipmentState": "Returned"}
        ],
    }
    response = await update(client, 1, action)
    assert response.status_code == 200, response.text
    info = response.json()["returnInfo"]
    assert info[0]["returnTrackingId"] == "ret-1"
    item = info[0]["items"][0]
    assert (item["type"], item["lineItemId"], item["quantity"]) == ("LineItemReturnItem", "li-1", 1)
    assert (item["shipmentState"], item["paymentState"]) == ("Returned", "Initial")
    assert [m["type"] for m in await messages(client)] == ["ReturnInfoAdded"]
    assert (await update(client, 2, action)).json()["errors"][0]["code"] == "DuplicateField"


async def test_sync_info_needs_an_existing_channel(client: httpx.AsyncClient) -> None:
    sync = {
        "action": "updateSyncInfo",
        "channel": {"typeId": "channel", "key": "newstore"},
        "externalId": "ns-uuid-1",
    }
    missing = await update(client, 1, sync)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == "ReferencedResourceNotFound"

    channel = await client.post(f"{API}/channels", json={"key": "newstore"})
    assert channel.status_code == 201
    assert channel.json()["roles"] == ["InventorySupply"]
    duplicate = await client.post(f"{API}/channels", json={"key": "newstore"})
    assert duplicate.json()["errors"][0]["code"] == "DuplicateField"
    assert (await client.get(f"{API}/channels/key=newstore")).status_code == 200

    response = await update(client, 1, sync)
    assert response.status_code == 200, response.text
    [entry] = response.json()["syncInfo"]
    assert entry["channel"] == {"typeId": "channel", "id": channel.json()["id"]}
    assert entry["externalId"] == "ns-uuid-1"
    assert entry["syncedAt"]
    assert await messages(client) == []  # updateSyncInfo publishes no message
    by_number = await client.post(
        f"{API}/orders/order-number=N-1",
        json={"version": 2, "actions": [{"action": "changeOrderState", "orderState": "Complete"}]},
    )
    assert by_number.json()["orderState"] == "Complete"
