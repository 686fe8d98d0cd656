"""Parse a Pub/Sub push request carrying a commercetools message (Platform or CloudEvents).

Three order messages are worked on: `OrderCreated`, `OrderStateChanged` (`orderState`,
`oldOrderState`) and `OrderPaymentStateChanged` (`paymentState`, `oldPaymentState`), their
fields as in ../shared/specs/commercetools/openapi.yaml (`OrderStateChangedMessage`,
`OrderPaymentStateChangedMessage`; docs.commercetools.com/api/projects/messages/order-messages).
What to do with each (inject, cancel, ignore) is decided in `event/triggers.py`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

CLOUDEVENT_PREFIX = "com.commercetools.order.message."
CLOUDEVENT_ORDER_CREATED = f"{CLOUDEVENT_PREFIX}OrderCreated"
INVALID_RESOURCE_ID = "invalid_resource_id"

# What a message's resource id must look like before it goes anywhere near a URL or a record.
# An OrderCreated message's `resource` is a Reference, "a loose reference to another resource
# in the same Project identified by its id", a platform-generated UUID such as
# "d1229e6f-2b79-441e-b419-180311e52754" (https://docs.commercetools.com/checkout/common-types,
# "Reference"; the HTTP API's Reference is the same); the CloudEvents `subject` is that id.
# Orders have no `key` (their user-defined identifier is `orderNumber`), but keys elsewhere are
# 2-256 characters of `[A-Za-z0-9_-]`. The rule is the union of the two shapes, which is the key
# shape since every UUID has it: a stricter rule would acknowledge, and so lose, an order whose
# id the platform ever formats otherwise, and nothing in that alphabet can change a request's
# target (no `/`, `.`, `?`, `#`, `%`, space or control character).
RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]{2,256}")


class EnvelopeError(ValueError):
    """The push request is not a usable Pub/Sub envelope; the message says why."""


class MessageKind(StrEnum):
    ORDER_CREATED = "order_created"
    ORDER_STATE_CHANGED = "order_state_changed"
    ORDER_PAYMENT_STATE_CHANGED = "order_payment_state_changed"
    SUBSCRIPTION_TEST = "subscription_test"
    OTHER = "other"


# The order messages worked on, by their Platform `type`.
ORDER_MESSAGES = {
    "OrderCreated": MessageKind.ORDER_CREATED,
    "OrderStateChanged": MessageKind.ORDER_STATE_CHANGED,
    "OrderPaymentStateChanged": MessageKind.ORDER_PAYMENT_STATE_CHANGED,
}


@dataclass(frozen=True)
class Delivery:
    message_id: str | None
    kind: MessageKind
    message_type: str
    order_id: str | None = None
    # Set when the message cannot be worked on (then order_id is None): why, and a short,
    # escaped preview of the offending value, safe to log.
    reason: str | None = None
    detail: str | None = None
    # When Pub/Sub published the message (`message.publishTime`): its age decides when an
    # order that keeps failing transiently is parked, inside the subscription's retention.
    published_at: datetime | None = None
    # The order's states as the message tells them: a state message's new `orderState` or
    # `paymentState`, or those of the order an OrderCreated carries (None when the payload
    # was not included).
    order_state: str | None = None
    payment_state: str | None = None


def parse_push(body: bytes) -> Delivery:
    envelope = _json_object(body, "request body")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise EnvelopeError("not a Pub/Sub push envelope: no 'message' object")
    message_id = message.get("messageId") or message.get("message_id")
    data = message.get("data")
    if not isinstance(data, str) or not data:
        raise EnvelopeError("the Pub/Sub message has no 'data'")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("message.data is not valid base64") from None
    delivery = _classify(_json_object(decoded, "message.data"), message_id)
    published = parse_publish_time(message.get("publishTime") or message.get("publish_time"))
    return replace(delivery, published_at=published)


# RFC 3339 as Pub/Sub writes it: "2026-12-01T10:00:00.123456789Z" (up to nanoseconds).
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


def parse_publish_time(value: Any) -> datetime | None:
    """`publishTime` as an aware datetime; None when absent or unreadable (the age is then
    taken from the order's record instead, never guessed)."""
    if not isinstance(value, str) or not (match := _RFC3339.fullmatch(value)):
        return None
    seconds, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    try:
        parsed = datetime.fromisoformat(f"{seconds}.{micros}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def _classify(payload: dict[str, Any], message_id: str | None) -> Delivery:
    if "specversion" in payload:  # CloudEvents 1.0, structured mode
        inner = payload.get("data")
        platform = inner if isinstance(inner, dict) else {}
        event_type = str(payload.get("type", ""))
        name = event_type.removeprefix(CLOUDEVENT_PREFIX)
        if event_type.startswith(CLOUDEVENT_PREFIX) and name in ORDER_MESSAGES:
            order_id = payload.get("subject") or _resource_id(platform)
            return _order_message(message_id, event_type, ORDER_MESSAGES[name], order_id, platform)
        return _not_an_order(message_id, event_type, platform)
    message_type = str(payload.get("type") or payload.get("notificationType") or "")
    kind = ORDER_MESSAGES.get(str(payload.get("type")))
    if payload.get("notificationType") == "Message" and kind is not None:
        return _order_message(message_id, message_type, kind, _resource_id(payload), payload)
    return _not_an_order(message_id, message_type, payload)


def _order_message(
    message_id: str | None,
    message_type: str,
    kind: MessageKind,
    order_id: Any,
    platform: dict[str, Any],
) -> Delivery:
    if not is_resource_id(order_id):
        # Redelivering it would never help: acknowledged as ignored, and never used.
        return Delivery(
            message_id, kind, message_type, reason=INVALID_RESOURCE_ID, detail=preview(order_id)
        )
    order = platform.get("order")
    source = order if kind is MessageKind.ORDER_CREATED and isinstance(order, dict) else platform
    return Delivery(
        message_id,
        kind,
        message_type,
        order_id,
        order_state=_state(source.get("orderState")),
        payment_state=_state(source.get("paymentState")),
    )


def _state(value: Any) -> str | None:
    return value if isinstance(value, str) and value.isalpha() and len(value) <= 32 else None


def is_resource_id(value: Any) -> bool:
    """Whether `value` looks like a commercetools id or key (RESOURCE_ID)."""
    return isinstance(value, str) and RESOURCE_ID.fullmatch(value) is not None


def preview(value: Any, limit: int = 16) -> str:
    """A short, escaped description of a value that is not an id, for a log line: its first
    `limit` characters as a Python literal (control and non-ASCII characters escaped), and
    its length; never the whole value."""
    if not isinstance(value, str):
        return f"not a string ({type(value).__name__})"
    shown = ascii(value[:limit])
    return f"{shown} ({len(value)} characters)" if len(value) > limit else shown


def _not_an_order(message_id: str | None, message_type: str, payload: dict[str, Any]) -> Delivery:
    resource = payload.get("resource") or {}
    is_test = (
        payload.get("notificationType") == "ResourceCreated"
        and isinstance(resource, dict)
        and resource.get("typeId") == "subscription"
    )
    kind = MessageKind.SUBSCRIPTION_TEST if is_test else MessageKind.OTHER
    return Delivery(message_id, kind, message_type or "unknown")


def _resource_id(platform_message: dict[str, Any]) -> Any:
    resource = platform_message.get("resource")
    if isinstance(resource, dict) and resource.get("typeId") == "order":
        return resource.get("id")
    order = platform_message.get("order")
    return order.get("id") if isinstance(order, dict) else None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EnvelopeError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return value
