"""Validation of the NewStore emulator's injected orders: `validate_order` raises `Rejected` for
the first problem in an Order Injection payload.

What it checks is `CONSTRAINTS`, a literal table of NewStore's published Swagger definitions
(`specs/newstore/newstore-api.swagger.json`: `InjectedOrderRequest`, `InjectedOrderAddress`,
`InjectedOrderExtendedAttribute`, `InjectedOrderPayment`, `InjectedOrderShipment`,
`InjectedOrderShipmentItem`, `InjectedOrderShipmentItemPrice`, `InjectedOrderItemTaxLine`,
`InjectedOrderDiscountInfo`/`InjectedOrderDiscountInfo1`, `InjectedOrderShippingOption`/
`InjectedOrderShippingOption1`, `InjectedOrderRoutingStrategy`/`1`/`2`, `GiftWrapping1`), with
the few limits that NewStore publishes elsewhere (5 shipments of at most 100 items: the
"Importing orders" guide; a tax rate of at most 1: the property's description), and the
rules between fields that the operation's description states (one shipment with a
`service_level_identifier`, add-ons). A literal, not read from the Swagger at start-up: the
emulator runs from a clone without `../shared`. `tests/contract/test_newstore_contract.py`
fails when the table and the Swagger disagree.

The table's form, per definition: `properties`, each with `required`, `type`, `ref` (a
definition, or the list of alternatives a value is one of), `items` (an array's entries),
`enum`, `minLength`/`maxLength`, `minItems`/`maxItems`, `minimum`/`exclusiveMinimum`/
`maximum`, `maxProperties`, `format`, and `money` (at most the currency's decimals: the
Swagger's `multipleOf: 0.01`, read as the operation's description says, "the correct number
of decimal places for monetary values of prices, according to the specified currency").

Hand-written over plain dicts rather than a pydantic model: the emulator sits on the hot path
of the benchmarks, and the first error must name its field the way NewStore's message would
(`shipments[0].items[3].price.item_price`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any

from sandbox.newstore.errors import Rejected


def _codes(text: str) -> list[str]:
    return text.split()


# The Swagger's `Currency2` enum.
CURRENCIES = _codes(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP "
    "DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS "
    "INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD "
    "MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR "
    "PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLL SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS "
    "VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF XPD XPF XPT XSU XTS XUA XXX YER "
    "ZAR ZMW ZWL"
)
# ISO 4217 minor units where they are not 2. Codes without a minor unit (XAU, XDR, ...)
# count as 2: the Swagger's literal `multipleOf: 0.01`.
NOT_TWO_DECIMALS: dict[str, int] = {
    **dict.fromkeys(
        _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"), 0
    ),
    **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
    **dict.fromkeys(_codes("CLF UYW"), 4),
}
CURRENCY_DECIMALS: dict[str, int] = {code: NOT_TWO_DECIMALS.get(code, 2) for code in CURRENCIES}

_DISCOUNTS = ["InjectedOrderDiscountInfo", "InjectedOrderDiscountInfo1"]
_DISCOUNT_ARRAY = {"type": "array", "maxItems": 1, "items": {"ref": _DISCOUNTS}}
_ROUTING = {
    "ref": [
        "InjectedOrderRoutingStrategy",
        "InjectedOrderRoutingStrategy1",
        "InjectedOrderRoutingStrategy2",
    ]
}
_EXTENDED_ATTRIBUTES = {
    "type": "array",
    "maxItems": 100,
    "items": {"ref": "InjectedOrderExtendedAttribute"},
}
_TAX_LINES = {"type": "array", "maxItems": 100, "items": {"ref": "InjectedOrderItemTaxLine"}}
_MONEY = {"type": "number", "minimum": 0, "money": True}


def _string(min_length: int | None = None, max_length: int | None = None, **more: Any) -> Any:
    spec: dict[str, Any] = {"type": "string"}
    if min_length is not None:
        spec["minLength"] = min_length
    if max_length is not None:
        spec["maxLength"] = max_length
    return spec | more


def _required(spec: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, **spec}


def _discount_info(kind: str, original_value: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {
            "coupon_code": _string(max_length=64),
            "description": _string(max_length=1024),
            "discount_ref": _required(_string(1, 256)),
            "original_value": _required(original_value),
            "price_adjustment": _required(_MONEY),
            # the Swagger: `type: string, default: <kind>`; the default names the alternative
            "type": _required(_string(enum=[kind])),
        }
    }


def _shipping_option(level_or_token: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {
            "discount_info": _DISCOUNT_ARRAY,
            "price": _required(_MONEY),
            "routing_strategy": _ROUTING,
            level_or_token: _required(spec),
            "tax": _required(_MONEY),
        }
    }


def _routing(strategy: str, node: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"strategy": _required(_string(enum=[strategy]))}
    if node:
        properties["fulfillment_node_id"] = _required(_string(1, 256))
    return {"properties": properties}


def _address() -> dict[str, Any]:
    return {
        "properties": {
            "address_line_1": _required(_string(1, 128)),
            "address_line_2": _string(max_length=256),
            "city": _string(max_length=64),
            "country": _required(_string(2, 2)),
            "first_name": _string(max_length=64),
            "last_name": _string(max_length=64),
            "phone": _string(max_length=128),
            "salutation": _string(max_length=32),
            "state": _string(max_length=32),
            "suffix": _string(max_length=32),
            "title": _string(max_length=32),
            "zip_code": _string(max_length=32),
        }
    }


# NewStore's Swagger definitions as this emulator enforces them (see the module docstring).
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "InjectedOrderRequest": {
        "properties": {
            "associate_id": _string(max_length=256),
            "billing_address": {"ref": "InjectedOrderAddress"},
            "channel_name": _required(_string(1, 64)),
            "channel_type": _required(_string(enum=["mobile", "store", "web"])),
            "currency": _required(_string(enum=CURRENCIES)),
            "customer_email": _string(1, 64),
            "customer_language": _string(max_length=2),
            "customer_name": _string(1, 128),
            "extended_attributes": _EXTENDED_ATTRIBUTES,
            "external_customer_id": _string(max_length=64),
            "external_id": _required(_string(1, 64)),
            "ip_address": {},
            "is_fulfilled": {"type": "boolean"},
            "is_historical": {"type": "boolean"},
            "is_offline": {"type": "boolean"},
            "is_preconfirmed": {"type": "boolean"},
            "notification_blacklist": {"type": "array", "items": {"type": "string"}},
            "payments": {
                "type": "array",
                "maxItems": 40,
                "items": {"ref": "InjectedOrderPayment"},
            },
            "placed_at": _string(format="date-time"),
            "price_method": _string(enum=["tax_excluded", "tax_included"]),
            # maxItems: the Swagger says 10, the "Importing orders" guide 5
            "shipments": _required(
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 5,
                    "items": {"ref": "InjectedOrderShipment"},
                }
            ),
            "shipping_address": {"ref": "InjectedOrderAddress"},
            "shop": _required(_string(1, 128)),
            "shop_locale": _required(_string(1, 128)),
            "store_id": _string(max_length=256),
        }
    },
    "InjectedOrderAddress": _address(),
    "InjectedOrderExtendedAttribute": {
        "maxProperties": 2,
        "properties": {
            "name": _required(_string(1, 100)),
            "value": _required(_string(max_length=8192)),
        },
    },
    "InjectedOrderPayment": {
        "properties": {
            "amount": _required({"type": "number", "exclusiveMinimum": 0, "money": True}),
            "correlation_ref": _required(_string(1, 128)),
            "metadata": {"type": "object", "maxProperties": 100},
            "method": _required(_string(1, 64)),
            "processed_at": _required(_string(format="date-time")),
            "processor": _required(_string(1, 32)),
            "type": _required(_string(enum=["authorized", "captured"])),
            "wallet": _string(1, 64),
        }
    },
    "InjectedOrderShipment": {
        "properties": {
            # maxItems: not in the Swagger; the "Importing orders" guide says 100
            "items": _required(
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {"ref": "InjectedOrderShipmentItem"},
                }
            ),
            "shipping_option": _required(
                {"ref": ["InjectedOrderShippingOption", "InjectedOrderShippingOption1"]}
            ),
        }
    },
    "InjectedOrderShipmentItem": {
        "properties": {
            "addon_parent_external_item_id": _string(1, 64),
            "extended_attributes": _EXTENDED_ATTRIBUTES,
            "external_item_id": _required(_string(1, 64)),
            "gift_wrapping": {"ref": "GiftWrapping1"},
            "price": _required({"ref": "InjectedOrderShipmentItemPrice"}),
            "product_id": _required(_string(1, 64)),
        }
    },
    "InjectedOrderShipmentItemPrice": {
        "properties": {
            "group_ref": _string(max_length=64),
            "item_discount_info": _DISCOUNT_ARRAY,
            "item_list_price": _required(_MONEY),
            "item_order_discount_info": _DISCOUNT_ARRAY,
            "item_price": _required(_MONEY),
            "item_tax_lines": _required(_TAX_LINES),
            "pricebook": _string(max_length=64),
        }
    },
    "InjectedOrderItemTaxLine": {
        "properties": {
            "amount": _required(_MONEY),
            "country_code": _string(max_length=2),
            "name": _required(_string()),
            # maximum: from the description, "a ratio between 0 and 1, not percentage"
            "rate": _required({"type": "number", "minimum": 0, "maximum": 1}),
        }
    },
    "InjectedOrderDiscountInfo": _discount_info("fixed", {"type": "number", "minimum": 0}),
    "InjectedOrderDiscountInfo1": _discount_info(
        "percentage", {"type": "number", "minimum": 0, "maximum": 100}
    ),
    # money on price and tax: the operation's description (the Swagger has no multipleOf)
    "InjectedOrderShippingOption": _shipping_option("service_level_identifier", _string(1, 64)),
    "InjectedOrderShippingOption1": _shipping_option("shipping_offer_token", _string(1, 8192)),
    "InjectedOrderRoutingStrategy": _routing("default", node=False),
    "InjectedOrderRoutingStrategy1": _routing("prerouted", node=True),
    "InjectedOrderRoutingStrategy2": _routing("external", node=True),
    "GiftWrapping1": {
        "properties": {
            "item_price": _MONEY,
            "item_tax_lines": _TAX_LINES,
            "message": _string(max_length=512),
            "tax_class": _string(max_length=256),
        }
    },
}

_REQUEST = CONSTRAINTS["InjectedOrderRequest"]["properties"]
MAX_SHIPMENTS: int = _REQUEST["shipments"]["maxItems"]
MAX_ITEMS_PER_SHIPMENT: int = CONSTRAINTS["InjectedOrderShipment"]["properties"]["items"][
    "maxItems"
]
MAX_EXTERNAL_ID: int = _REQUEST["external_id"]["maxLength"]
MAX_CHANNEL_NAME: int = _REQUEST["channel_name"]["maxLength"]
MAX_ADDRESS_LINE: int = CONSTRAINTS["InjectedOrderAddress"]["properties"]["address_line_1"][
    "maxLength"
]
CHANNEL_TYPES = frozenset(_REQUEST["channel_type"]["enum"])
PRICE_METHODS = frozenset(_REQUEST["price_method"]["enum"])
PAYMENT_TYPES = frozenset(CONSTRAINTS["InjectedOrderPayment"]["properties"]["type"]["enum"])
DISCOUNT_TYPES = frozenset(
    CONSTRAINTS[name]["properties"]["type"]["enum"][0] for name in _DISCOUNTS
)

# Assumptions, where the Swagger (`POST /v0/d/fulfill_order`'s 400 response: "The input data
# is invalid", the `Problem` definition) and the fulfill_order description are silent:
# - the `error_code` of each refusal (`missing_required_field`, `invalid_field_type`,
#   `invalid_field_value`, `invalid_money_precision`, `invalid_currency`, and the two
#   below); only the add-on codes (`addon_invalid_parent_item`,
#   `addon_duplicate_external_item_id`) are documented;
# - that the first problem is reported, checking the properties in the Swagger's order;
# - that an explicit `null` is a wrong type, as JSON Schema reads the Swagger (no
#   `x-nullable` anywhere in these definitions), not an absent value.
_LIMIT_CODES = {"shipments": "too_many_shipments", "items": "too_many_items"}


def _invalid(code: str, message: str) -> Rejected:
    return Rejected(400, code, message)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_JSON_TYPES: dict[str, tuple[str, Any]] = {
    "string": ("a string", str),
    "boolean": ("a boolean", bool),
    "array": ("an array", list),
    "object": ("an object", dict),
}

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class _Context:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.decimals = CURRENCY_DECIMALS[currency]


# --- one value against its spec -------------------------------------------------------------


def _check(value: Any, spec: dict[str, Any], path: str, ctx: _Context) -> None:
    ref = spec.get("ref")
    if ref is not None:
        name = ref if isinstance(ref, str) else _alternative(value, ref, path)
        _definition(value, name, path, ctx)
        return
    kind = spec.get("type")
    if kind == "number":
        _number(value, spec, path, ctx)
    elif kind is not None:
        label, python_type = _JSON_TYPES[kind]
        if not isinstance(value, python_type):
            raise _invalid("invalid_field_type", f"{path} must be {label}, got {_type_name(value)}")
    if kind == "string":
        _string_value(value, spec, path)
    elif kind == "array":
        _array(value, spec, path, ctx)
    elif kind == "object" and len(value) > spec.get("maxProperties", math.inf):
        raise _invalid(
            "invalid_field_value", f"{path} has more than {spec['maxProperties']} properties"
        )


def _string_value(value: str, spec: dict[str, Any], path: str) -> None:
    low, high = spec.get("minLength", 0), spec.get("maxLength")
    if len(value) < low or (high is not None and len(value) > high):
        limits = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _invalid("invalid_field_value", f"{path} must be {limits} characters long")
    if "enum" in spec and value not in spec["enum"]:
        raise _invalid("invalid_field_value", f"{path} must be one of {sorted(spec['enum'])}")
    if spec.get("format") == "date-time" and not _is_date_time(value):
        raise _invalid("invalid_field_value", f"{path} must be an RFC 3339 date-time")


def _is_date_time(value: str) -> bool:
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _number(value: Any, spec: dict[str, Any], path: str, ctx: _Context) -> None:
    # bool is an int subclass, but `true` is not a number in JSON
    if type(value) is bool or not isinstance(value, int | float):
        raise _invalid("invalid_field_type", f"{path} must be a number, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid("invalid_field_value", f"{path} must be a finite number")
    if "minimum" in spec and value < spec["minimum"]:
        raise _invalid("invalid_field_value", f"{path} must be >= {spec['minimum']}")
    if "exclusiveMinimum" in spec and value <= spec["exclusiveMinimum"]:
        raise _invalid("invalid_field_value", f"{path} must be > {spec['exclusiveMinimum']}")
    if "maximum" in spec and value > spec["maximum"]:
        raise _invalid(
            "invalid_field_value",
            f"{path} must be between {spec.get('minimum', '-inf')} and {spec['maximum']}",
        )
    # round() is correctly rounded, so a float parsed from "19.99" survives round(x, 2)
    # unchanged, while 0.5666666666666667 or 0.30000000000000004 do not.
    if spec.get("money") and isinstance(value, float) and round(value, ctx.decimals) != value:
        raise _invalid(
            "invalid_money_precision",
            f"{path} has more than {ctx.decimals} decimal places allowed for {ctx.currency}: "
            f"{value!r}",
        )


def _array(value: list[Any], spec: dict[str, Any], path: str, ctx: _Context) -> None:
    if len(value) < spec.get("minItems", 0):
        raise _invalid(
            "invalid_field_value", f"{path} must contain at least {spec['minItems']} entry"
        )
    high = spec.get("maxItems")
    if high is not None and len(value) > high:
        name = path.rsplit(".", 1)[-1]
        raise _invalid(
            _LIMIT_CODES.get(name, "invalid_field_value"),
            f"{path} has {len(value)} entries; at most {high} are allowed",
        )
    for i, entry in enumerate(value):
        _check(entry, spec["items"], f"{path}[{i}]", ctx)


def _alternative(value: Any, names: list[str], path: str) -> str:
    """Which of the alternative definitions `value` is: the one whose single-valued `enum`
    property it carries (`type: fixed`), else the one whose own required property it has
    (`shipping_offer_token`), else the first."""
    if not isinstance(value, dict):
        raise _invalid("invalid_field_type", f"{path} must be an object, got {_type_name(value)}")
    tagged, own = _distinguishing(tuple(names))
    if tagged:
        for name, (prop, tag) in tagged.items():
            if value.get(prop) == tag:
                return name
        prop = next(iter(tagged.values()))[0]
        allowed = sorted(tag for _, tag in tagged.values())
        raise _invalid("invalid_field_value", f"{path}.{prop} must be one of {allowed}")
    for name, props in own.items():
        if any(prop in value for prop in props):
            return name
    return names[0]


@cache
def _distinguishing(
    names: tuple[str, ...],
) -> tuple[dict[str, tuple[str, Any]], dict[str, frozenset[str]]]:
    """What tells the alternatives apart: each one's tag (a required property with a single
    `enum` value), when they all have one; else the required properties only it has."""
    tags: dict[str, tuple[str, Any]] = {}
    required: dict[str, frozenset[str]] = {}
    for name in names:
        properties = CONSTRAINTS[name]["properties"]
        required[name] = frozenset(p for p, spec in properties.items() if spec.get("required"))
        for prop, spec in properties.items():
            if spec.get("required") and len(spec.get("enum", ())) == 1:
                tags[name] = (prop, spec["enum"][0])
    if len(tags) == len(names):
        return tags, {}
    shared = frozenset.intersection(*required.values())
    return {}, {name: props - shared for name, props in required.items()}


def _definition(value: Any, name: str, path: str, ctx: _Context) -> None:
    if not isinstance(value, dict):
        raise _invalid("invalid_field_type", f"{path} must be an object, got {_type_name(value)}")
    definition = CONSTRAINTS[name]
    if len(value) > definition.get("maxProperties", math.inf):
        raise _invalid(
            "invalid_field_value",
            f"{path} has more than {definition['maxProperties']} properties",
        )
    for prop, spec in definition["properties"].items():
        where = f"{path}.{prop}" if path else prop
        if prop not in value:
            if spec.get("required"):
                raise _invalid("missing_required_field", f"{where} is required")
            continue
        _check(value[prop], spec, where, ctx)


# --- rules between fields ---------------------------------------------------------------------


def _single_shipment(shipments: list[dict[str, Any]]) -> None:
    if len(shipments) > 1 and any(
        "service_level_identifier" in shipment["shipping_option"] for shipment in shipments
    ):
        raise _invalid(
            "single_shipment_required",
            "shipments: an order whose shipping_option uses service_level_identifier "
            f"must have exactly 1 shipment, got {len(shipments)}",
        )


def _addons(shipments: list[dict[str, Any]]) -> None:
    """The add-on rules of fulfill_order's description, with its documented error codes."""
    counts: dict[str, int] = {}
    for shipment in shipments:
        for item in shipment["items"]:
            counts[item["external_item_id"]] = counts.get(item["external_item_id"], 0) + 1
    for i, shipment in enumerate(shipments):
        parents = {
            item["external_item_id"]
            for item in shipment["items"]
            if "addon_parent_external_item_id" not in item
        }
        for j, item in enumerate(shipment["items"]):
            parent = item.get("addon_parent_external_item_id")
            if parent is None:
                continue
            path = f"shipments[{i}].items[{j}].addon_parent_external_item_id"
            if parent == item["external_item_id"] or parent not in parents:
                raise _invalid(
                    "addon_invalid_parent_item",
                    f"{path}: {parent!r} is not a non-add-on item of the same shipment",
                )
            for linked in (parent, item["external_item_id"]):
                if counts[linked] > 1:
                    raise _invalid(
                        "addon_duplicate_external_item_id",
                        f"{path}: external_item_id {linked!r} is not unique in the order",
                    )


def _assumptions(payload: dict[str, Any], catalog: Collection[str] | None) -> None:
    """What the emulator checks that the docs do not say."""
    # Assumption: the Swagger gives `customer_email` only lengths (InjectedOrderRequest);
    # NewStore creates customer profiles by email, so a value that is no address is refused.
    email = payload.get("customer_email")
    if email is not None and ("@" not in email or " " in email):
        raise _invalid("invalid_field_value", "customer_email must be an e-mail address")
    # Assumption: InjectedOrderAddress.country says "ISO ALPHA-2 format" but has no pattern.
    for key in ("shipping_address", "billing_address"):
        country = payload.get(key, {}).get("country")
        if country is not None and not (country.isascii() and country.isalpha()):
            raise _invalid("invalid_field_value", f"{key}.country must be a 2-letter country code")
    # Assumption: product_id is "as it was fetched from the catalog" (InjectedOrderShipmentItem);
    # the Swagger does not say that an unknown one is refused. The emulator refuses it once a
    # catalog is seeded (`validate_products`).
    if catalog is None:
        return
    for i, shipment in enumerate(payload["shipments"]):
        for j, item in enumerate(shipment["items"]):
            if item["product_id"] not in catalog:
                raise _invalid(
                    "product_not_found",
                    f"shipments[{i}].items[{j}].product_id: product {item['product_id']!r} "
                    "does not exist",
                )


def validate_order(payload: Any, catalog: Collection[str] | None = None) -> None:
    """Raise `Rejected` for the first problem in an injection payload.

    `catalog`, when given, is the set of known product ids; an unknown one is refused.
    """
    if not isinstance(payload, dict):
        raise _invalid("invalid_request_body", "the request body must be a JSON object")
    currency = payload.get("currency")
    if "currency" not in payload:
        raise _invalid("missing_required_field", "currency is required")
    if not isinstance(currency, str) or currency not in CURRENCY_DECIMALS:
        raise _invalid("invalid_currency", f"currency {currency!r} is not an ISO 4217 code")
    _definition(payload, "InjectedOrderRequest", "", _Context(currency))
    _single_shipment(payload["shipments"])
    _addons(payload["shipments"])
    _assumptions(payload, catalog)
