"""The NewStore reads of the lifecycle app against NewStore's Swagger: the order
(`GET /v0/orders/{id}`, with its required query parameters) and its fulfillment requests
(`GET /v0/fulfillment_requests/{order_uuid}`), each a published GET, the id one encoded
segment."""

from __future__ import annotations

import asyncio

import httpx

from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.settings import NewStoreSettings
from lifecycle import upstream
from tests.contract.specs import swagger


def captured(ns_settings: NewStoreSettings) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v0/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 72000})
        seen.append(request)
        return httpx.Response(200, json={})

    async def drive() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with NewStoreClient(ns_settings, http=http, retry=RetryPolicy(max_attempts=1)) as ns:
            await upstream.get_ns_order(ns, "a b/c")
            await upstream.get_fulfillment_requests(ns, "a b/c")

    asyncio.run(drive())
    return seen


def test_the_lifecycle_reads_are_published_gets_with_their_required_parameters(
    ns_settings: NewStoreSettings,
) -> None:
    paths = swagger()["paths"]
    order, requests = captured(ns_settings)
    for request, template, raw in (
        (order, "/v0/orders/{id}", b"/v0/orders/a%20b%2Fc"),
        (requests, "/v0/fulfillment_requests/{order_uuid}", b"/v0/fulfillment_requests/a%20b%2Fc"),
    ):
        operation = paths[template]["get"]
        assert request.method == "GET"
        assert request.url.raw_path.split(b"?")[0] == raw
        required = {
            p["name"]
            for p in operation.get("parameters", []) + paths[template].get("parameters", [])
            if p["in"] == "query" and p.get("required")
        }
        assert required <= set(request.url.params), template
        known = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert set(request.url.params) <= known, template
