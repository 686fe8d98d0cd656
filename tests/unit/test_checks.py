"""The doctor's pure parts and the event stream check (respx): what each says, and when."""

from __future__ import annotations

import httpx
import pytest
import respx

from connector.checks import (
    Outcome,
    check_event_stream,
    check_rate_budget,
    describe_destination,
    missing_scopes,
    product_id_of,
    unexpanded,
)
from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from tests.conftest import NS_BASE

STREAM_URL = f"{NS_BASE}/api/v1/org/integrations/eventstream/orders-stream"


def test_manage_project_covers_every_app() -> None:
    assert missing_scopes(["manage_project:p"], "p") == {}


def test_scopes_of_another_project_count_for_nothing() -> None:
    missing = missing_scopes(["manage_project:other"], "p")

    assert set(missing) == {"event app", "job app", "post-deploy"}


def test_a_manage_scope_covers_its_view_scope_only() -> None:
    granted = [
        "manage_orders:p",
        "view_payments:p",
        "view_shipping_methods:p",
        "view_cart_discounts:p",
        "view_discount_codes:p",
        "manage_channels:p",  # covers view_channels as well
        "manage_key_value_documents:p",
    ]

    missing = missing_scopes(granted, "p")

    assert "event app" not in missing
    assert missing["job app"] == ["view_products", "manage_products", "manage_subscriptions"]


def test_the_product_scopes_of_an_older_client_still_cover_its_channels() -> None:
    granted = ["view_products:p", "manage_subscriptions:p"]

    missing = missing_scopes(granted, "p")

    assert "view_channels" not in missing["event app"]
    assert missing["post-deploy"] == ["manage_channels"]


def test_unexpanded_names_each_missing_expansion_and_its_scope() -> None:
    order = {
        "paymentInfo": {"payments": [{"typeId": "payment", "id": "p1"}]},
        "shippingInfo": {"shippingMethod": {"typeId": "shipping-method", "id": "s1"}},
        "discountCodes": [{"discountCode": {"typeId": "discount-code", "id": "d1"}}],
    }

    assert unexpanded(order) == [
        "paymentInfo.payments (view_payments)",
        "shippingInfo.shippingMethod (view_shipping_methods)",
        "discountCodes (view_discount_codes)",
    ]
    order["paymentInfo"]["payments"][0]["obj"] = {"id": "p1"}
    order["shippingInfo"]["shippingMethod"]["obj"] = {"id": "s1"}
    order["discountCodes"][0]["discountCode"]["obj"] = {"id": "d1"}
    assert unexpanded(order) == []


@pytest.mark.parametrize(
    ("inject", "job", "instances", "outcome"),
    [
        (20, 80, 1, Outcome.PASS),
        (20, 81, 1, Outcome.FAIL),
        (10, 25, 2, Outcome.PASS),
        (10, 25, 3, Outcome.FAIL),
    ],
)
def test_rate_budget(inject: float, job: float, instances: int, outcome: Outcome) -> None:
    assert check_rate_budget(inject, job, instances).outcome is outcome


def test_product_ids_from_the_sku_or_an_attribute() -> None:
    variant = {
        "sku": "SKU-1",
        "attributes": [
            {"name": "ns_id", "value": "NS-1"},
            {"name": "ns_enum", "value": {"key": "NS-2", "label": "x"}},
            {"name": "flag", "value": True},
        ],
    }

    assert product_id_of(variant, "sku") == "SKU-1"
    assert product_id_of(variant, "attribute:ns_id") == "NS-1"
    assert product_id_of(variant, "attribute:ns_enum") == "NS-2"
    assert product_id_of(variant, "attribute:flag") is None
    assert product_id_of(variant, "attribute:absent") is None


def test_a_destination_is_described_without_its_credentials() -> None:
    sqs = {
        "type": "SQS",
        "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q",
        "region": "eu-west-1",
        "accessKey": "AKIAEXAMPLE",
        "accessSecret": "very-secret-value",
        "authenticationMode": "Credentials",
    }

    text = describe_destination(sqs)

    assert "queueUrl=https://sqs" in text
    assert "very-secret-value" not in text and "AKIAEXAMPLE" not in text


@pytest.fixture
def newstore(ns_settings) -> NewStoreClient:
    return NewStoreClient(
        ns_settings, http=httpx.AsyncClient(timeout=5), retry=RetryPolicy(max_attempts=1)
    )


async def test_an_event_stream_not_configured_is_skipped(newstore: NewStoreClient) -> None:
    check = await check_event_stream(newstore, None)

    assert (check.outcome, check.reason.startswith("not configured")) == (Outcome.SKIP, True)


@respx.mock
@pytest.mark.parametrize(
    ("status", "outcome"), [("running", Outcome.PASS), ("stopped", Outcome.FAIL)]
)
async def test_an_event_stream_must_be_running(
    newstore: NewStoreClient, status: str, outcome: Outcome
) -> None:
    respx.post(f"{NS_BASE}/v0/token").mock(
        return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
    )
    route = respx.get(STREAM_URL).mock(return_value=httpx.Response(200, json={"status": status}))

    check = await check_event_stream(newstore, "orders-stream")

    assert check.outcome is outcome
    assert route.call_count == 1


@respx.mock
async def test_an_event_stream_integration_newstore_does_not_have_fails_with_the_fix(
    newstore: NewStoreClient,
) -> None:
    respx.post(f"{NS_BASE}/v0/token").mock(
        return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
    )
    respx.get(STREAM_URL).mock(
        return_value=httpx.Response(404, json={"error_code": "not_found", "message": "no"})
    )

    check = await check_event_stream(newstore, "orders-stream")

    assert check.outcome is Outcome.FAIL
    assert "no integration orders-stream" in check.reason
    assert "post-deploy" in (check.fix or "")
