"""Validation of the NewStore emulator's injected orders: `validate_order` raises `Rejected` for
the first problem in an Order Injection payload, with NewStore's limits and checks (field types
and lengths, money decimals per currency, shipment and item counts, known products).

Hand-written over plain dicts rather than a pydantic model: the emulator sits on the hot path
of the benchmarks, and the first error must name its field the way NewStore's message would
(`shipments[0].items[3].price.item_price`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sandbox.newstore.errors import Rejected

MAX_SHIPMENTS = 5
MAX_ITEMS_PER_SHIPMENT = 100
MAX_EXTERNAL_ID = 64
MAX_ADDRESS_LINE = 128
MAX_CHANNEL_NAME = 64
MAX_TEXT = 256  # not documented; generous so that only absurd values are refused


def _codes(text: str) -> list[str]:
    return text.split()


# ISO 4217 minor units of the active currencies (precious metals and test codes left out).
_ZERO_DECIMALS = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
_THREE_DECIMALS = _codes("BHD IQD JOD KWD LYD OMR TND")
_FOUR_DECIMALS = _codes("CLF UYW")
_TWO_DECIMALS = _codes(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN "
    "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD "
    "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY "
    "TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD YER ZAR ZMW ZWL"
)

CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS, 2),
    **dict.fromkeys(_ZERO_DECIMALS, 0),
    **dict.fromkeys(_THREE_DECIMALS, 3),
    **dict.fromkeys(_FOUR_DECIMALS, 4),
}

CHANNEL_TYPES = frozenset({"web", "mobile", "store"})
PRICE_METHODS = frozenset({"tax_included", "tax_excluded"})
PAYMENT_TYPES = frozenset({"authorized", "captured"})
DISCOUNT_TYPES = frozenset({"percentage", "fixed"})


def _invalid(code: str, message: str) -> Rejected:
    return Rejected(400, code, message)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --- primitive checks -------------------------------------------------------------------


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _invalid("missing_required_field", f"{path} is required")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("invalid_field_type", f"{path} must be an object, got {_type_name(value)}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid("invalid_field_type", f"{path} must be an array, got {_type_name(value)}")
    return value


def _text(
    obj: dict[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    min_len: int = 1,
    max_len: int = MAX_TEXT,
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _invalid("missing_required_field", f"{path} is required")
        return None
    if not isinstance(value, str):
        raise _invalid("invalid_field_type", f"{path} must be a string, got {_type_name(value)}")
    if not min_len <= len(value) <= max_len:
        raise _invalid(
            "invalid_field_value", f"{path} must be {min_len}..{max_len} characters long"
        )
    return value


def _enum(
    obj: dict[str, Any], key: str, path: str, allowed: Collection[str], *, required: bool
) -> None:
    value = _text(obj, key, path, required=required)
    if value is not None and value not in allowed:
        raise _invalid("invalid_field_value", f"{path} must be one of {sorted(allowed)}")


def _number(value: Any, path: str) -> float:
    # bool is an int subclass, but `true` is not a number in JSON
    if type(value) is bool or not isinstance(value, (int, float)):
        raise _invalid("invalid_field_type", f"{path} must be a number, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid("invalid_field_value", f"{path} must be a finite number")
    return value


def _money(value: Any, path: str, decimals: int, currency: str, minimum: float = 0.0) -> None:
    amount = _number(value, path)
    if amount < minimum:
        raise _invalid("invalid_field_value", f"{path} must be >= {minimum:g}")
    # round() is correctly rounded, so a float parsed from "19.99" survives round(x, 2)
    # unchanged, while 0.5666666666666667 or 0.30000000000000004 do not.
    if isinstance(amount, float) and round(amount, decimals) != amount:
        raise _invalid(
            "invalid_money_precision",
            f"{path} has more than {decimals} decimal places allowed for {currency}: {amount!r}",
        )


def _datetime(obj: dict[str, Any], key: str, path: str) -> None:
    value = _text(obj, key, path)
    if value is None:
        return
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    # RFC 3339 needs a time and an offset; fromisoformat alone would take a bare date
    if parsed is None or "T" not in value.upper() or parsed.tzinfo is None:
        raise _invalid("invalid_field_value", f"{path} must be an RFC 3339 date-time")


def _country(obj: dict[str, Any], key: str, path: str, *, required: bool) -> None:
    value = _text(obj, key, path, required=required, min_len=2, max_len=2)
    if value is not None and not (value.isascii() and value.isalpha()):
        raise _invalid("invalid_field_value", f"{path} must be a 2-letter country code")


# --- payload sections -------------------------------------------------------------------


class _Money:
    """Currency context, so that every money check knows its decimals."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.decimals = CURRENCY_DECIMALS[currency]

    def check(self, value: Any, path: str, minimum: float = 0.0) -> None:
        _money(value, path, self.decimals, self.currency, minimum)


def _address(value: Any, path: str) -> None:
    address = _object(value, path)
    _country(address, "country", f"{path}.country", required=True)
    line_max = MAX_ADDRESS_LINE
    _text(address, "address_line_1", f"{path}.address_line_1", required=True, max_len=line_max)
    _text(address, "address_line_2", f"{path}.address_line_2", min_len=0, max_len=line_max)
    for key in (
        "city",
        "state",
        "province",
        "zip_code",
        "first_name",
        "last_name",
        "second_name",
        "phone",
        "salutation",
        "suffix",
        "title",
    ):
        _text(address, key, f"{path}.{key}", min_len=0)


def _discounts(value: Any, path: str, money: _Money) -> None:
    for i, entry in enumerate(_array(value, path)):
        where = f"{path}[{i}]"
        discount = _object(entry, where)
        _enum(discount, "type", f"{where}.type", DISCOUNT_TYPES, required=False)
        if discount.get("price_adjustment") is not None:
            money.check(discount["price_adjustment"], f"{where}.price_adjustment")
        if discount.get("original_value") is not None:
            _number(discount["original_value"], f"{where}.original_value")
        for key in ("discount_ref", "coupon_code", "description"):
            _text(discount, key, f"{where}.{key}", min_len=0)


def _tax_lines(value: Any, path: str, money: _Money) -> None:
    for i, entry in enumerate(_array(value, path)):
        where = f"{path}[{i}]"
        line = _object(entry, where)
        money.check(_required(line, "amount", f"{where}.amount"), f"{where}.amount")
        rate = _number(_required(line, "rate", f"{where}.rate"), f"{where}.rate")
        if not 0 <= rate <= 1:
            raise _invalid("invalid_field_value", f"{where}.rate must be between 0 and 1")
        _text(line, "name", f"{where}.name", min_len=0)
        _country(line, "country_code", f"{where}.country_code", required=False)


def _item(value: Any, path: str, money: _Money, catalog: Collection[str] | None) -> None:
    item = _object(value, path)
    _text(item, "external_item_id", f"{path}.external_item_id", required=True)
    product_id = _text(item, "product_id", f"{path}.product_id", required=True)
    if catalog is not None and product_id not in catalog:
        raise _invalid(
            "product_not_found", f"{path}.product_id: product {product_id!r} does not exist"
        )
    price_path = f"{path}.price"
    price = _object(_required(item, "price", price_path), price_path)
    for key in ("item_price", "item_list_price"):
        money.check(_required(price, key, f"{price_path}.{key}"), f"{price_path}.{key}")
    taxes_path = f"{price_path}.item_tax_lines"
    _tax_lines(_required(price, "item_tax_lines", taxes_path), taxes_path, money)
    for key in ("item_discount_info", "item_order_discount_info"):
        if price.get(key) is not None:
            _discounts(price[key], f"{price_path}.{key}", money)


def _shipping_option(value: Any, path: str, money: _Money) -> bool:
    """Validate a shipping option; true when it uses a service level identifier."""
    option = _object(value, path)
    level = _text(option, "service_level_identifier", f"{path}.service_level_identifier")
    _text(option, "shipping_offer_token", f"{path}.shipping_offer_token")
    for key in ("price", "tax"):
        if option.get(key) is not None:
            money.check(option[key], f"{path}.{key}")
    if option.get("discount_info") is not None:
        _discounts(option["discount_info"], f"{path}.discount_info", money)
    return level is not None


def _shipments(value: Any, money: _Money, catalog: Collection[str] | None) -> None:
    shipments = _array(value, "shipments")
    if not shipments:
        raise _invalid("invalid_field_value", "shipments must contain at least 1 shipment")
    if len(shipments) > MAX_SHIPMENTS:
        raise _invalid(
            "too_many_shipments",
            f"shipments has {len(shipments)} shipments; at most {MAX_SHIPMENTS} are allowed",
        )
    uses_service_level = False
    for i, entry in enumerate(shipments):
        path = f"shipments[{i}]"
        shipment = _object(entry, path)
        items = _array(_required(shipment, "items", f"{path}.items"), f"{path}.items")
        if not items:
            raise _invalid("invalid_field_value", f"{path}.items must contain at least 1 item")
        if len(items) > MAX_ITEMS_PER_SHIPMENT:
            raise _invalid(
                "too_many_items",
                f"{path}.items has {len(items)} items; at most {MAX_ITEMS_PER_SHIPMENT} "
                "are allowed per shipment",
            )
        for j, item in enumerate(items):
            _item(item, f"{path}.items[{j}]", money, catalog)
        if shipment.get("shipping_option") is not None:
            option_path = f"{path}.shipping_option"
            uses_service_level |= _shipping_option(shipment["shipping_option"], option_path, money)
    if uses_service_level and len(shipments) > 1:
        raise _invalid(
            "single_shipment_required",
            "shipments: an order whose shipping_option uses service_level_identifier "
            f"must have exactly 1 shipment, got {len(shipments)}",
        )


def _payments(value: Any, money: _Money) -> None:
    for i, entry in enumerate(_array(value, "payments")):
        path = f"payments[{i}]"
        payment = _object(entry, path)
        _enum(payment, "type", f"{path}.type", PAYMENT_TYPES, required=True)
        money.check(_required(payment, "amount", f"{path}.amount"), f"{path}.amount", 0.01)
        for key in ("method", "processor", "correlation_ref"):
            _text(payment, key, f"{path}.{key}", required=True)
        _datetime(payment, "processed_at", f"{path}.processed_at")


def validate_order(payload: Any, catalog: Collection[str] | None = None) -> None:
    """Raise `Rejected` for the first problem in an injection payload.

    `catalog`, when given, is the set of known product ids; an unknown one is refused.
    """
    if not isinstance(payload, dict):
        raise _invalid("invalid_request_body", "the request body must be a JSON object")
    _text(payload, "external_id", "external_id", required=True, max_len=MAX_EXTERNAL_ID)
    _text(payload, "shop", "shop", required=True)
    _enum(payload, "channel_type", "channel_type", CHANNEL_TYPES, required=True)
    _text(payload, "channel_name", "channel_name", required=True, max_len=MAX_CHANNEL_NAME)
    _text(payload, "shop_locale", "shop_locale", required=True, max_len=35)
    currency = _text(payload, "currency", "currency", required=True, min_len=3, max_len=3) or ""
    if currency not in CURRENCY_DECIMALS:
        raise _invalid("invalid_currency", f"currency {currency!r} is not an ISO 4217 code")
    money = _Money(currency)
    for key in ("customer_name", "external_customer_id", "customer_language"):
        _text(payload, key, key)
    email = _text(payload, "customer_email", "customer_email")
    if email is not None and ("@" not in email or " " in email):
        raise _invalid("invalid_field_value", "customer_email must be an e-mail address")
    _datetime(payload, "placed_at", "placed_at")
    _enum(payload, "price_method", "price_method", PRICE_METHODS, required=False)
    for key in ("shipping_address", "billing_address"):
        if payload.get(key) is not None:
            _address(payload[key], key)
    _shipments(_required(payload, "shipments", "shipments"), money, catalog)
    if payload.get("payments") is not None:
        _payments(payload["payments"], money)
