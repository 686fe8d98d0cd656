"""Builders shared by the HTTP-level tests."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from connector.clock import now_iso
from sandbox import catalog
from sandbox.stack import PROJECT_KEY, Stack


def order_created_message(order_id: str, cloud_events: bool = False) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    platform = {
        "notificationType": "Message",
        "projectKey": PROJECT_KEY,
        "id": message_id,
        "version": 1,
        "sequenceNumber": 1,
        "resource": {"typeId": "order", "id": order_id},
        "resourceVersion": 1,
        "type": "OrderCreated",
        "payloadNotIncluded": {"reason": "test", "payloadType": "OrderCreated"},
        "createdAt": "2026-11-29T10:00:00.000Z",
        "lastModifiedAt": "2026-11-29T10:00:00.000Z",
    }
    if not cloud_events:
        return platform
    return {
        "specversion": "1.0",
        "id": message_id,
        "type": "com.commercetools.order.message.OrderCreated",
        "source": f"/{PROJECT_KEY}/orders",
        "subject": order_id,
        "time": "2026-11-29T10:00:00.000Z",
        "sequence": "1",
        "sequencetype": "Integer",
        "dataref": f"/{PROJECT_KEY}/messages/{message_id}",
        "data": platform,
    }


def push_envelope(
    message: dict[str, Any], message_id: str | None = None, published_at: str | None = None
) -> dict[str, Any]:
    """A Pub/Sub push request; published now unless `published_at` says otherwise."""
    data = base64.b64encode(json.dumps(message).encode()).decode()
    return {
        "message": {
            "data": data,
            "attributes": {},
            "messageId": message_id or str(uuid.uuid4()),
            "publishTime": published_at or now_iso(),
        },
        "subscription": "projects/sandbox-gcp/subscriptions/newstore-connector-event",
    }


def store_order(stack: Stack, number: int, **changes: Any) -> str:
    """Put an order into the commercetools emulator without publishing a message."""
    draft = catalog.order_draft(number)
    order = {**draft.order, "id": str(uuid.uuid4()), "version": 1, **changes}
    stack.ctp.seed({"payments": [draft.payment], "orders": [order]})
    return str(order["id"])
