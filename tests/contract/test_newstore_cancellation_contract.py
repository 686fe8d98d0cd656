"""The cancellation requests the event app sends NewStore, against NewStore's Swagger:
`showCancellationStatus` and `createCancellation` (`/v0/orders/{id}/cancel`), each with its
required `id_type`, and a body valid for `SalesOrderCancellationRequest`."""

from __future__ import annotations

import asyncio
import json

import httpx
import jsonschema
import pytest

from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.settings import NewStoreSettings
from tests.contract.specs import swagger

CANCEL_PATH = "/v0/orders/{id}/cancel"


def captured_requests(ns_settings: NewStoreSettings) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v0/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 72000})
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(
                200, json={"cancelable": True, "canceled": False, "is_safe": True}
            )
        return httpx.Response(200)

    async def drive() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with NewStoreClient(ns_settings, http=http, retry=RetryPolicy(max_attempts=1)) as ns:
            assert (await ns.cancellation_status("a b/c", "internal"))["canceled"] is False
            await ns.cancel_order("a b/c", "external", "Cancelled in commercetools")

    asyncio.run(drive())
    return seen


@pytest.fixture
def requests(ns_settings: NewStoreSettings) -> list[httpx.Request]:
    return captured_requests(ns_settings)


def test_both_are_published_operations_with_their_required_parameters(requests) -> None:
    operations = swagger()["paths"][CANCEL_PATH]
    assert [r.method for r in requests] == ["GET", "POST"]
    for request in requests:
        # the id is one percent-encoded segment: it can never change the target
        assert request.url.raw_path.split(b"?")[0] == b"/v0/orders/a%20b%2Fc/cancel"
        operation = operations[request.method.lower()]
        required = {
            p["name"] for p in operation["parameters"] if p["in"] == "query" and p.get("required")
        }
        assert required == {"id_type"} and set(request.url.params) == required
        assert request.url.params["id_type"] in ("internal", "external")


def test_the_cancellation_body_is_a_sales_order_cancellation_request(requests) -> None:
    definition = swagger()["definitions"]["SalesOrderCancellationRequest"]
    body = json.loads(requests[1].content)
    jsonschema.validate(body, {**definition, "additionalProperties": False})
    assert body == {"reason": "Cancelled in commercetools"}
    assert requests[1].headers["content-type"] == "application/json"
