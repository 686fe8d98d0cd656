"""Checks and normalisation of request bodies for the commercetools emulator, before the state
stores them: typed values in drafts, update-action lists and their version, custom object ids,
subscription keys, destinations and formats, and the defaults the real API fills into orders,
products (a seeded ProductProjection becomes a Product) and seeded inventory.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from sandbox.commercetools.common import Json, new_id
from sandbox.commercetools.errors import conflict, invalid_input, invalid_json

MAX_UPDATE_ACTIONS = 500

_ORDER_LIST_DEFAULTS = (
    "lineItems",
    "customLineItems",
    "shipping",
    "syncInfo",
    "returnInfo",
    "refusedGifts",
    "discountCodes",
    "directDiscounts",
    "itemShippingAddresses",
)
_ORDER_VALUE_DEFAULTS: dict[str, Any] = {
    "orderState": "Open",
    "origin": "Customer",
    "shippingMode": "Single",
    "taxMode": "Platform",
    "taxRoundingMode": "HalfEven",
    "taxCalculationMode": "LineItemLevel",
    "inventoryMode": "None",
}
_LINE_ITEM_LIST_DEFAULTS = ("discountedPricePerQuantity", "state", "perMethodTaxRate")
_PRODUCT_TOP_LEVEL = (
    "id",
    "version",
    "key",
    "createdAt",
    "lastModifiedAt",
    "productType",
    "taxCategory",
    "state",
    "priceMode",
    "reviewRatingStatistics",
)
_KEY_RE = re.compile(r"^[-_~.a-zA-Z0-9]+$")
_SUBSCRIPTION_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{2,256}$")
_DESTINATION_FIELDS: dict[str, tuple[str, ...]] = {
    "GoogleCloudPubSub": ("projectId", "topic"),
    "SNS": ("topicArn",),
    "SQS": ("queueUrl", "region"),
    "EventBridge": ("region", "accountId"),
    "AzureServiceBus": ("connectionString",),
    "AzureEventGrid": ("uri", "accessKey"),
    "ConfluentCloud": ("bootstrapServer", "apiKey", "apiSecret", "acks", "topic"),
    "IronMQ": ("uri",),
}


def require_int(data: Json, name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid_json(f"{name}: Missing required value")
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_json(f"{name}: JSON number (integer) expected")
    return value


def strip_nulls(value: Any) -> Any:
    """Custom Object values do not keep fields set to null (documented)."""
    if isinstance(value, dict | list) and b"null" not in _encoded(value):
        # Nothing to strip (a `null` inside a string only takes the long way): encoding a
        # value of thousands of SKUs in C is far cheaper than rebuilding it in Python, and
        # the inventory job's node state is megabytes of values without a null.
        return value
    return _without_nulls(value)


def _encoded(value: Any) -> bytes:
    """The value as msgspec writes it, or `null` for one it cannot write (a lone surrogate,
    which `json_loads` accepts as json.loads does): that one takes the long way."""
    try:
        return msgspec.json.encode(value)
    except (UnicodeEncodeError, msgspec.EncodeError, TypeError, OverflowError):
        return b"null"


def _without_nulls(value: Any) -> Any:
    # Leaves are kept without a call: values of thousands of SKUs are mostly leaves.
    if isinstance(value, dict):
        return {
            k: _without_nulls(v) if isinstance(v, dict | list) else v
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list):
        return [_without_nulls(v) if isinstance(v, dict | list) else v for v in value]
    return value


_FRACTION_DIGITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}


def typed_money(money: Any) -> Any:
    """Money in a draft becomes TypedMoney (`type`, `fractionDigits`) in the resource."""
    if not isinstance(money, dict) or "centAmount" not in money:
        return money
    digits = _FRACTION_DIGITS.get(str(money.get("currencyCode")), 2)
    return {"type": "centPrecision", "fractionDigits": digits, **money}


def as_product(product: Json) -> Json:
    """Seeds may give a ProductProjection; store it as a Product with masterData."""
    if "masterData" in product:
        return product
    projection = {k: v for k, v in product.items() if k not in _PRODUCT_TOP_LEVEL}
    projection.setdefault("masterVariant", {"id": 1})
    projection.setdefault("variants", [])
    top = {k: product[k] for k in _PRODUCT_TOP_LEVEL if k in product}
    top["masterData"] = {
        "current": projection,
        "staged": projection,
        "published": True,
        "hasStagedChanges": False,
    }
    return top


def fill_order_defaults(order: Json) -> None:
    order["totalPrice"] = typed_money(order["totalPrice"])
    for name in _ORDER_LIST_DEFAULTS:
        order.setdefault(name, [])
    for name, value in _ORDER_VALUE_DEFAULTS.items():
        order.setdefault(name, value)
    order.setdefault("lastMessageSequenceNumber", 1)
    for item in order["lineItems"]:
        if isinstance(item, dict):
            item.setdefault("id", new_id())
            item.setdefault("priceMode", "Platform")
            item.setdefault("lineItemMode", "Standard")
            for name in _LINE_ITEM_LIST_DEFAULTS:
                item.setdefault(name, [])
    for item in order["customLineItems"]:
        if isinstance(item, dict):
            item.setdefault("id", new_id())


def seed_reserved(draft: Json, quantity: int) -> int:
    if isinstance(draft.get("reserved"), int):
        return int(draft["reserved"])
    if isinstance(draft.get("availableQuantity"), int):
        return quantity - int(draft["availableQuantity"])
    return 0


def set_or_drop(resource: Json, name: str, value: Any) -> None:
    """Update actions set a field, or remove it when the value is absent."""
    if value is None:
        resource.pop(name, None)
    else:
        resource[name] = value


def checked_actions(body: Json, resource: Json) -> list[Json]:
    version = require_int(body, "version")
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise invalid_json("actions: JSON array of objects expected")
    if len(actions) > MAX_UPDATE_ACTIONS:
        raise invalid_input(f"At most {MAX_UPDATE_ACTIONS} update actions are allowed.")
    if version != resource["version"]:
        raise conflict(resource["id"], version or 0, resource["version"])
    return actions


def check_custom_object_id(container: Any, key: Any) -> None:
    for name, value in (("container", container), ("key", key)):
        if not isinstance(value, str) or not value:
            raise invalid_json(f"{name}: Missing required value")
        if len(value) > 256 or not _KEY_RE.match(value):
            raise invalid_input(f"'{name}' does not match the pattern '^[-_~.a-zA-Z0-9]+$'.")


def check_subscription_key(key: Any) -> None:
    if not isinstance(key, str) or not _SUBSCRIPTION_KEY_RE.match(key):
        raise invalid_input("'key' must match the pattern '^[A-Za-z0-9_-]+$' (2 to 256 chars).")


def checked_destination(destination: Any) -> Json:
    if not isinstance(destination, dict):
        raise invalid_json("destination: Missing required value")
    kind = destination.get("type")
    required = _DESTINATION_FIELDS.get(str(kind))
    if required is None:
        raise invalid_json(f"destination -> type: Unknown destination type '{kind}'")
    for name in required:
        if not destination.get(name):
            raise invalid_json(f"destination -> {name}: Missing required value")
    checked = dict(destination)
    if kind == "SNS":
        checked.setdefault("authenticationMode", "Credentials")
    return checked


def checked_list(data: Json, name: str) -> list[Json]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid_json(f"{name}: JSON array of objects expected")
    return [dict(item) for item in value]


def checked_format(fmt: Any) -> Json:
    if fmt is None:
        return {"type": "Platform"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("Platform", "CloudEvents"):
        raise invalid_json("format -> type: 'Platform' or 'CloudEvents' expected")
    if fmt["type"] == "CloudEvents" and fmt.get("cloudEventsVersion") != "1.0":
        raise invalid_json("format -> cloudEventsVersion: '1.0' expected")
    return dict(fmt)


def require_messages_or_changes(subscription: Json) -> None:
    if not subscription["messages"] and not subscription["changes"]:
        raise invalid_input("Either 'messages' or 'changes' must be set.")
