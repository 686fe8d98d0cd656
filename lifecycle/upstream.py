"""The API calls of the lifecycle app, over the shared clients (`connector/`): reads and
reads of commercetools orders by order number (by id, and the updates, are the shared
client's own `get_order` / `update_order`), NewStore's order and fulfillment requests, and the event
stream configuration API. Every call goes through `UpstreamClient.send`: timeouts, bounded
retries, `Retry-After`.
"""

from __future__ import annotations

from typing import Any

from connector.commercetools import CommercetoolsClient, segment
from connector.newstore import EVENT_STREAM_PATH as INTEGRATIONS_PATH
from connector.newstore import NewStoreClient, NewStoreError

Json = dict[str, Any]


# --- commercetools ----------------------------------------------------------------------


async def get_ct_order(ctp: CommercetoolsClient, external_id: str, by: str) -> Json:
    """The order NewStore's external_id names: by id, or by order number."""
    if by != "orderNumber":
        return await ctp.get_order(external_id)
    response = await ctp.send(
        "GET", f"{ctp.project_url}/orders/order-number={segment(external_id)}"
    )
    return dict(response.json())


# --- NewStore ---------------------------------------------------------------------------


async def get_ns_order(newstore: NewStoreClient, order_uuid: str) -> Json:
    """GET /v0/orders/{id}?id_type=internal (the Swagger's showSalesOrderByIdAndIdType)."""
    url = f"{newstore.base_url}/v0/orders/{segment(order_uuid)}"
    response = await newstore.send("GET", url, params={"id_type": "internal"})
    return dict(response.json())


async def get_fulfillment_requests(newstore: NewStoreClient, order_uuid: str) -> Json:
    """GET /v0/fulfillment_requests/{order_uuid}: carrier and tracking code per item."""
    url = f"{newstore.base_url}/v0/fulfillment_requests/{segment(order_uuid)}"
    response = await newstore.send("GET", url)
    return dict(response.json())


async def register_integration(newstore: NewStoreClient, body: Json) -> Json:
    response = await newstore.send("POST", f"{newstore.base_url}{INTEGRATIONS_PATH}", json=body)
    return dict(response.json())


async def delete_integration(newstore: NewStoreClient, integration_id: str) -> bool:
    """False when there was none."""
    url = f"{newstore.base_url}{INTEGRATIONS_PATH}/{segment(integration_id)}"
    try:
        await newstore.send("DELETE", url)
    except NewStoreError as error:
        if error.status == 404:
            return False
        raise
    return True


async def set_integration_running(
    newstore: NewStoreClient, integration_id: str, running: bool
) -> None:
    verb = "_start" if running else "_stop"
    url = f"{newstore.base_url}{INTEGRATIONS_PATH}/{segment(integration_id)}/{verb}"
    await newstore.send("POST", url)
