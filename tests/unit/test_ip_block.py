"""NewStore's IP-level block answers 403 for 5 minutes, like a bad token: a 403 that survives a
fresh token pauses NewStore calls instead of fetching tokens in a loop."""

from __future__ import annotations

import httpx
import pytest
import respx

from connector.commercetools import CommercetoolsClient
from connector.http import UpstreamError
from connector.newstore import NewStoreClient
from tests.conftest import CTP_API, NS_BASE
from tests.unit.test_clients import FAST_RETRY, ctp_token_route, ns_token_route, plain_http

INJECT_URL = f"{NS_BASE}/v0/d/fulfill_order"
BLOCKED = httpx.Response(403, json={"error_code": "forbidden", "message": "Forbidden"})


@respx.mock
async def test_a_403_after_a_fresh_token_pauses_newstore_for_five_minutes(ns_settings) -> None:
    tokens = ns_token_route(respx.mock)
    inject = respx.post(INJECT_URL).mock(return_value=BLOCKED)
    clock = [1000.0]
    async with NewStoreClient(ns_settings, http=plain_http(), retry=FAST_RETRY) as client:
        client.clock = lambda: clock[0]
        with pytest.raises(UpstreamError) as first:
            await client.fulfill_order(b"{}")
        assert (inject.call_count, tokens.call_count) == (2, 2)  # sent, refreshed, resent

        clock[0] += 299
        with pytest.raises(UpstreamError) as paused:
            await client.fulfill_order(b"{}")

        assert first.value.transient and paused.value.transient
        assert "may be blocking this IP" in str(paused.value)
        assert (inject.call_count, tokens.call_count) == (2, 2)  # nothing sent while paused
        assert client.blocks == 1

        clock[0] += 2  # the 5 minutes are over: NewStore is asked again
        inject.mock(return_value=httpx.Response(200, json={"id": "ns-1"}))
        assert (await client.fulfill_order(b"{}"))["id"] == "ns-1"


@respx.mock
async def test_a_token_request_refused_with_403_pauses_too(ns_settings) -> None:
    tokens = respx.post(f"{NS_BASE}/v0/token").mock(return_value=BLOCKED)
    inject = respx.post(INJECT_URL).mock(return_value=httpx.Response(200, json={"id": "x"}))
    async with NewStoreClient(ns_settings, http=plain_http(), retry=FAST_RETRY) as client:
        for _ in range(3):
            with pytest.raises(UpstreamError):
                await client.fulfill_order(b"{}")

    assert (tokens.call_count, inject.call_count) == (1, 0)


@respx.mock
async def test_an_expired_token_answered_403_is_not_a_block(ns_settings) -> None:
    ns_token_route(respx.mock)
    ok = httpx.Response(200, json={"id": "ns-1"})
    inject = respx.post(INJECT_URL).mock(side_effect=[BLOCKED, ok, ok])
    async with NewStoreClient(ns_settings, http=plain_http(), retry=FAST_RETRY) as client:
        await client.fulfill_order(b"{}")  # refreshed and resent: fine
        await client.fulfill_order(b"{}")

    assert (inject.call_count, client.blocks) == (3, 0)


@respx.mock
async def test_commercetools_403_never_pauses(ctp_settings) -> None:
    ctp_token_route(respx.mock)
    order = respx.get(f"{CTP_API}/shop/orders/o-1").mock(
        return_value=httpx.Response(403, json={"statusCode": 403, "errors": []})
    )
    async with CommercetoolsClient(ctp_settings, http=plain_http(), retry=FAST_RETRY) as ctp:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await ctp.get_order("o-1")

    assert (order.call_count, ctp.blocks) == (2, 0)
