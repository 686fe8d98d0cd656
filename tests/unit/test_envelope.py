"""Pub/Sub push envelopes carrying commercetools messages in both formats."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from event.envelope import INVALID_RESOURCE_ID, EnvelopeError, MessageKind, parse_push, preview


def push(data: Any, raw: bytes | None = None) -> bytes:
    encoded = base64.b64encode(raw if raw is not None else json.dumps(data).encode()).decode()
    return json.dumps(
        {
            "message": {"data": encoded, "attributes": {}, "messageId": "m-1"},
            "subscription": "projects/p/subscriptions/s",
        }
    ).encode()


PLATFORM_ORDER_CREATED = {
    "notificationType": "Message",
    "projectKey": "shop",
    "id": "msg-1",
    "version": 1,
    "sequenceNumber": 1,
    "resource": {"typeId": "order", "id": "order-1"},
    "resourceVersion": 1,
    "type": "OrderCreated",
    "order": {"id": "order-1"},
    "createdAt": "2026-01-01T00:00:00.000Z",
}


def test_platform_order_created() -> None:
    delivery = parse_push(push(PLATFORM_ORDER_CREATED))
    assert delivery.kind is MessageKind.ORDER_CREATED
    assert (delivery.order_id, delivery.message_id) == ("order-1", "m-1")


def test_cloudevents_order_created() -> None:
    cloud_event = {
        "specversion": "1.0",
        "id": "msg-1",
        "type": "com.commercetools.order.message.OrderCreated",
        "source": "/shop/orders",
        "subject": "order-2",
        "time": "2026-01-01T00:00:00.000Z",
        "sequence": "1",
        "sequencetype": "Integer",
        "dataref": "/shop/messages/msg-1",
        "data": {**PLATFORM_ORDER_CREATED, "resource": {"typeId": "order", "id": "order-2"}},
    }
    delivery = parse_push(push(cloud_event))
    assert delivery.kind is MessageKind.ORDER_CREATED
    assert delivery.order_id == "order-2"


def test_payload_not_included_still_names_the_order() -> None:
    message = {k: v for k, v in PLATFORM_ORDER_CREATED.items() if k != "order"}
    message["payloadNotIncluded"] = {"reason": "too large", "payloadType": "OrderCreated"}
    assert parse_push(push(message)).order_id == "order-1"


def test_subscription_test_message() -> None:
    test_message = {
        "notificationType": "ResourceCreated",
        "projectKey": "shop",
        "resource": {"typeId": "subscription", "id": "sub-1"},
        "version": 1,
    }
    assert parse_push(push(test_message)).kind is MessageKind.SUBSCRIPTION_TEST


def test_other_messages_are_recognised_as_other() -> None:
    other = {**PLATFORM_ORDER_CREATED, "type": "OrderShipmentStateChanged"}
    delivery = parse_push(push(other))
    assert delivery.kind is MessageKind.OTHER
    assert delivery.message_type == "OrderShipmentStateChanged"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[]", "request body is not a JSON object"),
        (b'{"subscription": "s"}', "no 'message' object"),
        (b'{"message": {"messageId": "1"}}', "no 'data'"),
        (b'{"message": {"data": "***"}}', "not valid base64"),
        (push(None, raw=b"{broken"), "message.data is not valid JSON"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body: bytes, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint):
        parse_push(body)


UUID = "9e75e626-5aca-4a0c-b9d2-887778599dbe"


def order_created(order_id: Any, cloud_events: bool = False) -> bytes:
    platform = {**PLATFORM_ORDER_CREATED, "resource": {"typeId": "order", "id": order_id}}
    platform.pop("order")
    if not cloud_events:
        return push(platform)
    return push(
        {
            "specversion": "1.0",
            "id": "msg-1",
            "type": "com.commercetools.order.message.OrderCreated",
            "source": "/shop/orders",
            "subject": order_id,
            "data": platform,
        }
    )


@pytest.mark.parametrize("cloud_events", [False, True])
@pytest.mark.parametrize(
    "order_id",
    [UUID, UUID.upper(), "00000000-0000-0000-0000-000000000000", "order-1", "a_b", "x" * 256],
)
def test_ids_and_keys_are_accepted(order_id: str, cloud_events: bool) -> None:
    delivery = parse_push(order_created(order_id, cloud_events))
    assert (delivery.order_id, delivery.reason) == (order_id, None)


@pytest.mark.parametrize("cloud_events", [False, True])
@pytest.mark.parametrize(
    "order_id",
    [
        "../custom-objects/x",
        "..",
        ".",
        f"{UUID}?expand=x",
        f"{UUID}#x",
        f"{UUID}/x",
        "%2e%2e",
        "a b",
        f"{UUID}\n",
        "ordér",
        "x",
        "x" * 257,
        "",
        None,
        42,
        {"id": UUID},
    ],
)
def test_anything_else_is_an_ignored_invalid_resource_id(order_id: Any, cloud_events: bool) -> None:
    delivery = parse_push(order_created(order_id, cloud_events))
    assert delivery.kind is MessageKind.ORDER_CREATED
    assert (delivery.order_id, delivery.reason) == (None, INVALID_RESOURCE_ID)
    assert delivery.detail is not None and len(delivery.detail) < 60


def test_a_missing_order_id_is_an_invalid_resource_id_too() -> None:
    message = {**PLATFORM_ORDER_CREATED, "resource": {}, "order": None}
    delivery = parse_push(push(message))
    assert (delivery.order_id, delivery.reason) == (None, INVALID_RESOURCE_ID)


def test_the_preview_is_short_and_escaped() -> None:
    hostile = "\x1b[31m../custom-objects/\n" + "é" * 1000
    shown = preview(hostile)
    assert shown.isascii() and shown.isprintable()
    assert "\n" not in shown and "é" not in shown and "\x1b" not in shown
    assert shown.endswith("(1024 characters)")
    assert len(shown) < 100
    assert preview(None) == "not a string (NoneType)"


@pytest.mark.parametrize("cloud_events", [False, True], ids=["platform", "cloudevents"])
@pytest.mark.parametrize(
    ("message_type", "field", "kind"),
    [
        ("OrderStateChanged", "orderState", MessageKind.ORDER_STATE_CHANGED),
        ("OrderPaymentStateChanged", "paymentState", MessageKind.ORDER_PAYMENT_STATE_CHANGED),
    ],
)
def test_state_messages_carry_the_new_state(
    cloud_events: bool, message_type: str, field: str, kind: MessageKind
) -> None:
    platform = {
        **{k: v for k, v in PLATFORM_ORDER_CREATED.items() if k != "order"},
        "type": message_type,
        field: "Cancelled" if field == "orderState" else "Paid",
    }
    message: dict[str, Any] = platform
    if cloud_events:
        message = {
            "specversion": "1.0",
            "type": f"com.commercetools.order.message.{message_type}",
            "subject": "order-1",
            "data": platform,
        }
    delivery = parse_push(push(message))
    assert (delivery.kind, delivery.order_id) == (kind, "order-1")
    assert (delivery.order_state or delivery.payment_state) in ("Cancelled", "Paid")


def test_an_order_created_tells_the_states_of_the_order_it_carries() -> None:
    message = {**PLATFORM_ORDER_CREATED, "order": {"id": "order-1", "orderState": "Confirmed"}}
    message["order"]["paymentState"] = "Paid"
    delivery = parse_push(push(message))
    assert (delivery.order_state, delivery.payment_state) == ("Confirmed", "Paid")
    bare = parse_push(push({k: v for k, v in PLATFORM_ORDER_CREATED.items() if k != "order"}))
    assert (bare.order_state, bare.payment_state) == (None, None)
