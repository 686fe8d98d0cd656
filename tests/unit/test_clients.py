"""Both upstream clients at the HTTP level (respx): tokens, refreshes, retries, typed errors."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
from pydantic import SecretStr

from connector.commercetools import CommercetoolsClient, CommercetoolsError, CommercetoolsNotFound
from connector.http import RetryPolicy, UpstreamError
from connector.newstore import NewStoreClient, NewStoreError
from connector.settings import NewStoreSettings
from tests.conftest import CTP_API, CTP_AUTH, CTP_SECRET, NS_BASE, NS_PASSWORD

FAST_RETRY = RetryPolicy(max_attempts=3, budget_s=2.0, initial_backoff_s=0.01, max_backoff_s=0.02)
ORDER_URL = f"{CTP_API}/shop/orders/o-1"
INJECT_URL = f"{NS_BASE}/v0/d/fulfill_order"


def ctp_token_route(mock: respx.MockRouter, tokens: list[str] | None = None) -> respx.Route:
    values = iter(tokens or [f"ctp-token-{i}" for i in range(100)])
    return mock.post(f"{CTP_AUTH}/oauth/token").mock(
        side_effect=lambda _: httpx.Response(
            200, json={"access_token": next(values), "expires_in": 172800, "token_type": "Bearer"}
        )
    )


def ns_token_route(mock: respx.MockRouter, url: str = f"{NS_BASE}/v0/token") -> respx.Route:
    values = iter(f"ns-token-{i}" for i in range(100))
    return mock.post(url).mock(
        side_effect=lambda _: httpx.Response(
            200, json={"access_token": next(values), "expires_in": 72000}
        )
    )


def plain_http() -> httpx.AsyncClient:
    """httpx's own transport, which respx intercepts (production uses aiohttp's pool)."""
    return httpx.AsyncClient(timeout=5)


@pytest.fixture
def ctp(ctp_settings) -> CommercetoolsClient:
    return CommercetoolsClient(ctp_settings, http=plain_http(), retry=FAST_RETRY)


@pytest.fixture
def newstore(ns_settings) -> NewStoreClient:
    return NewStoreClient(ns_settings, http=plain_http(), retry=FAST_RETRY)


# --- commercetools --------------------------------------------------------------------------


@respx.mock
async def test_ctp_token_is_fetched_once_and_reused(ctp: CommercetoolsClient) -> None:
    token = ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(return_value=httpx.Response(200, json={"id": "o-1"}))

    await asyncio.gather(*(ctp.get_order("o-1") for _ in range(20)))

    assert token.call_count == 1
    assert orders.call_count == 20
    request = token.calls[0].request
    assert request.headers["Authorization"].startswith("Basic ")
    assert b"grant_type=client_credentials" in request.content
    assert orders.calls[0].request.headers["Authorization"] == "Bearer ctp-token-0"


@respx.mock
async def test_ctp_401_refreshes_the_token_once(ctp: CommercetoolsClient) -> None:
    token = ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(
        side_effect=[httpx.Response(401, json={"statusCode": 401}), httpx.Response(200, json={})]
    )

    await ctp.get_order("o-1")

    assert token.call_count == 2
    assert orders.calls[1].request.headers["Authorization"] == "Bearer ctp-token-1"


@respx.mock
async def test_ctp_expansions_are_sent(ctp: CommercetoolsClient) -> None:
    ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(return_value=httpx.Response(200, json={}))

    await ctp.get_order("o-1", ["paymentInfo.payments[*]", "shippingInfo.shippingMethod"])

    assert orders.calls[0].request.url.params.get_list("expand") == [
        "paymentInfo.payments[*]",
        "shippingInfo.shippingMethod",
    ]


@respx.mock
@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_ctp_retries_temporary_statuses(ctp: CommercetoolsClient, status: int) -> None:
    ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(
        side_effect=[httpx.Response(status, json={}), httpx.Response(200, json={"id": "o-1"})]
    )

    assert (await ctp.get_order("o-1"))["id"] == "o-1"
    assert orders.call_count == 2


@respx.mock
async def test_ctp_retries_are_bounded_and_raise_a_transient_error(
    ctp: CommercetoolsClient,
) -> None:
    ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(return_value=httpx.Response(503, json={"message": "down"}))

    with pytest.raises(CommercetoolsError) as raised:
        await ctp.get_order("o-1")

    assert orders.call_count == FAST_RETRY.max_attempts
    assert raised.value.transient and raised.value.status == 503


@respx.mock
async def test_ctp_connection_errors_are_retried(ctp: CommercetoolsClient) -> None:
    ctp_token_route(respx.mock)
    orders = respx.get(ORDER_URL).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"id": "o-1"})]
    )

    await ctp.get_order("o-1")

    assert orders.call_count == 2


@respx.mock
async def test_ctp_404_is_a_permanent_not_found(ctp: CommercetoolsClient) -> None:
    ctp_token_route(respx.mock)
    body = {
        "statusCode": 404,
        "message": "The Resource with ID 'o-1' was not found.",
        "errors": [{"code": "ResourceNotFound", "message": "..."}],
    }
    orders = respx.get(ORDER_URL).mock(return_value=httpx.Response(404, json=body))

    with pytest.raises(CommercetoolsNotFound) as raised:
        await ctp.get_order("o-1")

    assert orders.call_count == 1
    assert not raised.value.transient
    assert raised.value.codes == ["ResourceNotFound"]


@respx.mock
async def test_ctp_concurrent_modification_exposes_the_current_version(
    ctp: CommercetoolsClient,
) -> None:
    ctp_token_route(respx.mock)
    body = {
        "statusCode": 409,
        "message": "version mismatch",
        "errors": [{"code": "ConcurrentModification", "message": "...", "currentVersion": 7}],
    }
    respx.post(f"{CTP_API}/shop/custom-objects").mock(return_value=httpx.Response(409, json=body))

    with pytest.raises(CommercetoolsError) as raised:
        await ctp.put_custom_object("c", "k", {}, version=3)

    assert raised.value.current_version == 7
    assert not raised.value.retry_now


@respx.mock
async def test_ctp_bad_credentials_never_leak_the_secret(ctp: CommercetoolsClient) -> None:
    respx.post(f"{CTP_AUTH}/oauth/token").mock(
        return_value=httpx.Response(401, json={"error": "invalid_client"})
    )

    with pytest.raises(UpstreamError) as raised:
        await ctp.get_order("o-1")

    assert raised.value.transient  # an operator can fix credentials: never drop the order
    assert CTP_SECRET not in str(raised.value)
    assert CTP_SECRET not in repr(ctp.settings)


# --- NewStore --------------------------------------------------------------------------------


@respx.mock
async def test_ns_password_grant_token_is_reused(newstore: NewStoreClient) -> None:
    token = ns_token_route(respx.mock)
    inject = respx.post(INJECT_URL).mock(return_value=httpx.Response(200, json={"id": "ns-1"}))

    await asyncio.gather(*(newstore.fulfill_order(b"{}") for _ in range(10)))

    assert token.call_count == 1 and inject.call_count == 10
    form = token.calls[0].request.content.decode()
    assert "grant_type=password" in form and "username=ns-user" in form


@respx.mock
async def test_ns_client_credentials_flow(ns_settings: NewStoreSettings) -> None:
    token_url = "https://id.test.newstore.invalid/auth/realms/tenant/protocol/openid-connect/token"
    settings = ns_settings.model_copy(
        update={"client_id": "app", "client_secret": SecretStr("cc-secret"), "token_url": token_url}
    )
    client = NewStoreClient(settings, http=plain_http(), retry=FAST_RETRY)
    token = ns_token_route(respx.mock, token_url)
    respx.post(INJECT_URL).mock(return_value=httpx.Response(200, json={"id": "ns-1"}))

    await client.fulfill_order(b"{}")

    form = token.calls[0].request.content.decode()
    assert "grant_type=client_credentials" in form and "client_id=app" in form


@respx.mock
async def test_ns_403_refreshes_the_token_once(newstore: NewStoreClient) -> None:
    token = ns_token_route(respx.mock)
    expired = {"error_code": "forbidden", "message": "token expired", "request_id": "r1"}
    inject = respx.post(INJECT_URL).mock(
        side_effect=[httpx.Response(403, json=expired), httpx.Response(200, json={"id": "ns-1"})]
    )

    assert (await newstore.fulfill_order(b"{}"))["id"] == "ns-1"
    assert token.call_count == 2
    assert inject.calls[1].request.headers["Authorization"] == "Bearer ns-token-1"


@respx.mock
async def test_ns_retry_after_is_honoured(newstore: NewStoreClient) -> None:
    ns_token_route(respx.mock)
    busy = httpx.Response(429, headers={"Retry-After": "0.3"}, json={"error_code": "throttled"})
    inject = respx.post(INJECT_URL).mock(side_effect=[busy, httpx.Response(200, json={"id": "x"})])

    started = time.monotonic()
    await newstore.fulfill_order(b"{}")

    assert inject.call_count == 2
    assert time.monotonic() - started >= 0.3


@respx.mock
async def test_ns_retry_after_beyond_the_budget_gives_up_at_once(ns_settings) -> None:
    client = NewStoreClient(
        ns_settings, http=plain_http(), retry=RetryPolicy(max_attempts=5, budget_s=1.0)
    )
    ns_token_route(respx.mock)
    busy = httpx.Response(429, headers={"Retry-After": "120"}, json={"error_code": "throttled"})
    inject = respx.post(INJECT_URL).mock(return_value=busy)

    started = time.monotonic()
    with pytest.raises(NewStoreError) as raised:
        await client.fulfill_order(b"{}")

    assert inject.call_count == 1
    assert time.monotonic() - started < 1.0
    assert raised.value.transient and raised.value.retry_after_s == 120


@respx.mock
async def test_ns_5xx_retries_are_bounded(newstore: NewStoreClient) -> None:
    ns_token_route(respx.mock)
    inject = respx.post(INJECT_URL).mock(return_value=httpx.Response(500, json={}))

    with pytest.raises(NewStoreError):
        await newstore.fulfill_order(b"{}")

    assert inject.call_count == FAST_RETRY.max_attempts


@respx.mock
async def test_ns_errors_are_typed(newstore: NewStoreClient) -> None:
    ns_token_route(respx.mock)
    body = {"error_code": "invalid_payload", "message": "shop is required", "request_id": "req-9"}
    inject = respx.post(INJECT_URL).mock(return_value=httpx.Response(400, json=body))

    with pytest.raises(NewStoreError) as raised:
        await newstore.fulfill_order(b"{}")

    error = raised.value
    assert inject.call_count == 1  # a validation error is not retried
    assert (error.error_code, error.detail, error.request_id) == (
        "invalid_payload",
        "shop is required",
        "req-9",
    )
    assert not error.transient


@respx.mock
async def test_ns_timeout_is_transient(newstore: NewStoreClient) -> None:
    ns_token_route(respx.mock)
    respx.post(INJECT_URL).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(UpstreamError) as raised:
        await newstore.fulfill_order(b"{}")

    assert raised.value.transient
    assert NS_PASSWORD not in str(raised.value)
