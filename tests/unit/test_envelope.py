"""Pub/Sub push envelopes carrying commercetools messages in both formats."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from event.envelope import EnvelopeError, MessageKind, parse_push


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
    other = {**PLATFORM_ORDER_CREATED, "type": "OrderStateChanged"}
    delivery = parse_push(push(other))
    assert delivery.kind is MessageKind.OTHER
    assert delivery.message_type == "OrderStateChanged"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[]", "request body is not a JSON object"),
        (b'{"subscription": "s"}', "no 'message' object"),
        (b'{"message": {"messageId": "1"}}', "no 'data'"),
        (b'{"message": {"data": "***"}}', "not valid base64"),
        (push(None, raw=b"{broken"), "message.data is not valid JSON"),
        (push({**PLATFORM_ORDER_CREATED, "resource": {}, "order": None}), "without an order id"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body: bytes, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint):
        parse_push(body)
