"""Pure mapping of a commercetools Order to a NewStore Order Injection payload.

See docs/mapping.md for the rules. Everything here is a function of its inputs only, so
the same order always gives the same payload: NewStore deduplicates on `external_id` and
rejects a second injection of the same order with different data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from event import customization
from event.errors import MappingError
from event.money import allocate, money_major, to_major
from event.order import Address, DiscountPortion, LineItem, Order, Payment, Reference, TaxRate

MAX_EXTERNAL_ID_LENGTH = 64
MAX_ITEMS_PER_SHIPMENT = 100

Payload = dict[str, Any]


@dataclass(frozen=True)
class MappingOptions:
    shop: str
    channel_type: Literal["web", "mobile", "store"] = "web"
    channel_name: str = "commercetools"
    default_locale: str = "en-US"
    external_id_source: Literal["id", "orderNumber"] = "id"


@dataclass(frozen=True)
class Unit:
    """One unit of a line item: NewStore wants one item per unit."""

    line: LineItem
    item_price: int  # cents
    item_discounts: tuple[DiscountPortion, ...]

    @property
    def net(self) -> int:
        return self.item_price - sum(d.discounted_amount.cent_amount for d in self.item_discounts)


def map_order(order: Order, options: MappingOptions) -> Payload:
    _check_injectable(order)
    units = [unit for line in order.line_items for unit in _units(line)]
    payload: Payload = {
        "external_id": external_id(order, options),
        "shop": options.shop,
        "channel_type": options.channel_type,
        "channel_name": options.channel_name,
        "shop_locale": order.locale or options.default_locale,
        "currency": order.total_price.currency_code,
        "placed_at": order.created_at,
        "customer_email": order.customer_email,
        "customer_name": _customer_name(order),
        "external_customer_id": order.customer_id,
        "price_method": _price_method(order),
        "shipping_address": _address(order.shipping_address),
        "billing_address": _address(order.billing_address),
        "shipments": [{"items": _items(order, units), "shipping_option": _shipping_option(order)}],
        "payments": _payments(order),
    }
    return {key: value for key, value in payload.items() if value not in (None, [], "")}


def external_id(order: Order, options: MappingOptions) -> str:
    value = order.id
    if options.external_id_source == "orderNumber" and order.order_number:
        value = order.order_number
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise MappingError(
            "external_id_too_long",
            f"external_id {value[:20]}... is {len(value)} characters; NewStore allows "
            f"{MAX_EXTERNAL_ID_LENGTH}",
        )
    return value


def payload_to_json(payload: Payload) -> bytes:
    """The request body: money as JSON numbers with the currency's decimals, never floats."""
    return json.dumps(
        payload, default=_json_number, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _json_number(value: object) -> int | float:
    if isinstance(value, Decimal):
        # A Decimal with <= 3 decimals round-trips through float's shortest repr exactly.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- checks ---------------------------------------------------------------------------


def _check_injectable(order: Order) -> None:
    if order.custom_line_items:
        raise MappingError(
            "custom_line_items",
            f"{len(order.custom_line_items)} custom line item(s) have no SKU for NewStore",
        )
    for line in order.line_items:
        if not line.variant.sku:
            raise MappingError("missing_sku", f"line item {line.id} has no SKU")
    units = sum(line.quantity for line in order.line_items)
    if units > MAX_ITEMS_PER_SHIPMENT:
        raise MappingError(
            "order_too_large",
            f"{units} units; NewStore takes one item per unit and at most "
            f"{MAX_ITEMS_PER_SHIPMENT} items in the one shipment a service level allows",
        )


# --- header ---------------------------------------------------------------------------


def _customer_name(order: Order) -> str | None:
    for address in (order.billing_address, order.shipping_address):
        if address:
            name = " ".join(p for p in (address.first_name, address.last_name) if p)
            if name:
                return name
    return None


def _price_method(order: Order) -> str:
    rates = [line.tax_rate for line in order.line_items if line.tax_rate]
    if rates and all(rate.included_in_price for rate in rates):
        return "tax_included"
    return "tax_excluded"


def _address(address: Address | None) -> dict[str, str] | None:
    if address is None:
        return None
    line_1 = _join(" ", address.street_name, address.street_number)
    if not line_1:
        return None
    fields = {
        "first_name": address.first_name,
        "last_name": address.last_name,
        "salutation": address.salutation,
        "address_line_1": line_1,
        "address_line_2": _join(
            ", ", address.additional_street_info, address.building, address.apartment
        ),
        "city": address.city,
        "state": address.state or address.region,
        "zip_code": address.postal_code,
        "country": address.country,
        "phone": address.phone or address.mobile,
    }
    return {key: value for key, value in fields.items() if value}


def _join(separator: str, *parts: str | None) -> str:
    return separator.join(p for p in parts if p)


# --- items ----------------------------------------------------------------------------


def _units(line: LineItem) -> list[Unit]:
    price = line.price.discounted.value if line.price.discounted else line.price.value
    discounts: list[tuple[DiscountPortion, ...]] = []
    for group in line.discounted_price_per_quantity:
        discounts += [tuple(group.discounted_price.included_discounts)] * group.quantity
    discounts += [()] * (line.quantity - len(discounts))
    return [Unit(line, price.cent_amount, d) for d in discounts[: line.quantity]]


def _items(order: Order, units: list[Unit]) -> list[Payload]:
    taxes = _unit_taxes(order, units)
    order_discounts = _order_discount_shares(order, units)
    return [
        {
            "external_item_id": unit.line.id,
            "product_id": unit.line.variant.sku,
            "price": {
                "item_price": _major(order, unit.item_price),
                "item_list_price": money_major(unit.line.price.value),
                "item_tax_lines": taxes[i],
                "item_discount_info": [
                    _discount(order, d.discount, d.discounted_amount.cent_amount)
                    for d in unit.item_discounts
                ],
                "item_order_discount_info": order_discounts[i],
            },
        }
        for i, unit in enumerate(units)
    ]


def _unit_taxes(order: Order, units: list[Unit]) -> list[list[Payload]]:
    """Per-unit tax lines; each line's tax is split over its units, weighted by their nets."""
    taxes: list[list[Payload]] = []
    for line in order.line_items:
        line_units = [u for u in units if u.line is line]
        if line.tax_rate is None or line.taxed_price is None:
            taxes += [[] for _ in line_units]
            continue
        shares = allocate(line.taxed_price.tax_cents, [u.net for u in line_units])
        taxes += [_tax_lines(order, line.tax_rate, share) for share in shares]
    return taxes


def _tax_lines(order: Order, rate: TaxRate, cents: int) -> list[Payload]:
    if not rate.sub_rates:
        return [_tax_line(order, cents, rate.amount, rate.name, rate.country)]
    shares = allocate(cents, [sub.amount for sub in rate.sub_rates])
    return [
        _tax_line(order, share, sub.amount, sub.name, rate.country)
        for sub, share in zip(rate.sub_rates, shares, strict=True)
    ]


def _tax_line(order: Order, cents: int, rate: float, name: str, country: str) -> Payload:
    return {
        "amount": _major(order, cents),
        "rate": rate,
        "name": name,
        "country_code": country,
    }


def _order_discount_shares(order: Order, units: list[Unit]) -> list[list[Payload]]:
    per_unit: list[list[Payload]] = [[] for _ in units]
    total = order.discount_on_total_price
    if total is None:
        return per_unit
    weights = [u.net for u in units]
    for portion in total.included_discounts:
        shares = allocate(portion.discounted_amount.cent_amount, weights)
        for entries, share in zip(per_unit, shares, strict=True):
            entries.append(_discount(order, portion.discount, share))
    return per_unit


# --- discounts, shipping, payments ------------------------------------------------------


def _discount(order: Order, reference: Reference, adjustment_cents: int) -> Payload:
    adjustment = _major(order, adjustment_cents)
    cart_discount = reference.obj or {}
    kind, original = _discount_value(order, cart_discount.get("value") or {}, adjustment)
    return {
        "type": kind,
        "original_value": original,
        "price_adjustment": adjustment,
        "discount_ref": cart_discount.get("key") or reference.id,
        "coupon_code": _coupon_code(order, reference.id),
        "description": _localized(cart_discount.get("name"), order.locale),
    }


def _discount_value(
    order: Order, value: dict[str, Any], adjustment: Decimal
) -> tuple[str, Decimal]:
    if value.get("type") == "relative":
        return "percentage", Decimal(value["permyriad"]) / 100
    if value.get("type") == "absolute":
        currency = order.total_price.currency_code
        for money in value.get("money", []):
            if money.get("currencyCode") == currency:
                return "fixed", to_major(money["centAmount"], money.get("fractionDigits", 2))
    return "fixed", adjustment


def _coupon_code(order: Order, cart_discount_id: str) -> str:
    for info in order.discount_codes:
        code = info.discount_code.obj or {}
        if any(ref.get("id") == cart_discount_id for ref in code.get("cartDiscounts", [])):
            return str(code.get("code", ""))
    return ""


def _localized(names: dict[str, str] | None, locale: str | None) -> str:
    if not names:
        return ""
    if locale and locale in names:
        return names[locale]
    return names[min(names)]


def _shipping_option(order: Order) -> Payload:
    service_level = customization.service_level_identifier(order)
    info = order.shipping_info
    assert info is not None  # service_level_identifier refuses an order without shipping
    discounted = info.discounted_price
    return {
        "service_level_identifier": service_level,
        "price": money_major(info.price),
        "tax": _major(order, info.taxed_price.tax_cents if info.taxed_price else 0),
        "discount_info": [
            _discount(order, d.discount, d.discounted_amount.cent_amount)
            for d in (discounted.included_discounts if discounted else [])
        ],
    }


def _payments(order: Order) -> list[Payload]:
    payments = []
    for reference in order.payments:
        if reference.obj is None:
            raise MappingError(
                "payment_not_expanded", f"payment {reference.id} could not be read with the order"
            )
        entry = customization.newstore_payment(Payment.model_validate(reference.obj), order)
        if entry is not None:
            payments.append(entry)
    return payments


def _major(order: Order, cents: int) -> Decimal:
    return to_major(cents, order.total_price.fraction_digits)
