"""Pure mapping of a commercetools Order to a NewStore Order Injection payload.

See docs/mapping.md for the rules. Everything here is a function of its inputs only, so
the same order always gives the same payload: NewStore deduplicates on `external_id` and
rejects a second injection of the same order with different data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from event import customization
from event.errors import MappingError
from event.money import RoundingMode, allocate, line_cents, money_cents, money_major, to_major
from event.order import (
    Address,
    DiscountPortion,
    LineItem,
    Money,
    Order,
    Payment,
    Reference,
    TaxRate,
)

MAX_EXTERNAL_ID_LENGTH = 64
MAX_ITEMS_PER_SHIPMENT = 100
# InjectedOrderDiscountInfo / InjectedOrderDiscountInfo1
MAX_DISCOUNT_REF_LENGTH = 256
MAX_COUPON_CODE_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 1024
# How the values of merged discounts are joined (cart discount keys and ids never contain a
# comma; descriptions are prose).
REF_SEPARATOR = ","
CODE_SEPARATOR = ","
DESCRIPTION_SEPARATOR = "; "

ROUNDING_MODES: tuple[RoundingMode, ...] = ("HalfEven", "HalfUp", "HalfDown")

Payload = dict[str, Any]


@dataclass(frozen=True)
class MappingOptions:
    shop: str
    channel_type: Literal["web", "mobile", "store"] = "web"
    channel_name: str = "commercetools"
    default_locale: str = "en-US"
    external_id_source: Literal["id", "orderNumber"] = "id"
    # NEW_STORE_PRODUCT_ID_SOURCE: "sku", or "attribute:<name>" (customization.product_id)
    product_id_source: str = "sku"

    def __post_init__(self) -> None:
        source = self.product_id_source
        prefix = customization.ATTRIBUTE_SOURCE_PREFIX
        if source != "sku" and not (source.startswith(prefix) and len(source) > len(prefix)):
            raise ValueError(
                f"product_id_source {source!r} is neither 'sku' nor 'attribute:<name>'"
            )


@dataclass(frozen=True)
class MappedOrder:
    """The payload, and what the mapping deliberately left out of it.

    `omitted` holds one human-readable line per thing left out, each starting with the path
    of the commercetools data it concerns (e.g. `payments[<payment id>]: no successful
    Authorization or Charge (...); not sent`), in a stable order, without duplicates.
    """

    payload: Payload
    omitted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unit:
    """One unit of a line item: NewStore wants one item per unit. Amounts in cents."""

    line: LineItem
    product_id: str
    item_price: int
    item_list_price: int
    item_discounts: tuple[DiscountPortion, ...]
    item_discount_cents: int

    @property
    def net(self) -> int:
        return self.item_price - self.item_discount_cents


class _Omitted:
    """The `omitted` lines, in the order found, each once."""

    def __init__(self) -> None:
        self._lines: dict[str, None] = {}

    def add(self, line: str) -> None:
        self._lines.setdefault(line, None)

    def extend(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.add(line)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._lines)


def map_order(order: Order, options: MappingOptions) -> MappedOrder:
    omitted = _Omitted()
    units = _check_injectable_and_split(order, options)
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
        "shipping_address": _address(order.shipping_address, "shippingAddress", omitted),
        "billing_address": _address(order.billing_address, "billingAddress", omitted),
        "shipments": [
            {
                "items": _items(order, units, omitted),
                "shipping_option": _shipping_option(order, omitted),
            }
        ],
        "payments": _payments(order, omitted),
    }
    return MappedOrder(
        {key: value for key, value in payload.items() if value not in (None, [], "")},
        omitted.as_tuple(),
    )


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


# --- checks and units -----------------------------------------------------------------


def _check_injectable_and_split(order: Order, options: MappingOptions) -> list[Unit]:
    """The order's units, or a permanent MappingError: never a partial order."""
    if order.custom_line_items:
        raise MappingError(
            "custom_line_items",
            f"{len(order.custom_line_items)} custom line item(s) have no SKU for NewStore",
        )
    product_ids = [
        customization.product_id(line, options.product_id_source) for line in order.line_items
    ]
    units = sum(line.quantity for line in order.line_items)
    if units > MAX_ITEMS_PER_SHIPMENT:
        raise MappingError(
            "order_too_large",
            f"{units} units; NewStore takes one item per unit and at most "
            f"{MAX_ITEMS_PER_SHIPMENT} items in the one shipment a service level allows",
        )
    return [
        unit
        for line, product_id in zip(order.line_items, product_ids, strict=True)
        for unit in _units(order, line, product_id)
    ]


def _units(order: Order, line: LineItem, product_id: str) -> list[Unit]:
    """The line's units in order. Unit prices are the line's `quantity x price` in cents
    (exact for cent precision; a high-precision price multiplied first and rounded once, as
    commercetools does) split over the units by largest remainder with equal weights, so
    the units add up to the line total and differ by at most one cent, earlier units first.
    """
    scale = _scale(order)
    mode = _rounding_mode(order, line)
    price = line.price.discounted.value if line.price.discounted else line.price.value
    item_prices = allocate(line_cents(price, line.quantity, scale, mode), [1] * line.quantity)
    list_prices = allocate(
        line_cents(line.price.value, line.quantity, scale, mode), [1] * line.quantity
    )
    discounts: list[tuple[DiscountPortion, ...]] = []
    for group in line.discounted_price_per_quantity:
        discounts += [tuple(group.discounted_price.included_discounts)] * group.quantity
    discounts += [()] * (line.quantity - len(discounts))
    return [
        Unit(
            line=line,
            product_id=product_id,
            item_price=item_price,
            item_list_price=list_price,
            item_discounts=portions,
            item_discount_cents=sum(money_cents(p.discounted_amount, scale) for p in portions),
        )
        for item_price, list_price, portions in zip(
            item_prices, list_prices, discounts[: line.quantity], strict=True
        )
    ]


def _rounding_mode(order: Order, line: LineItem) -> RoundingMode:
    """The order's `priceRoundingMode`; only high-precision prices are rounded with it, so an
    unknown mode is a permanent error only for a line that has one."""
    for mode in ROUNDING_MODES:
        if mode == order.price_rounding_mode:
            return mode
    prices = [line.price.value] + ([line.price.discounted.value] if line.price.discounted else [])
    if any(money.is_high_precision for money in prices):
        raise MappingError(
            "unknown_rounding_mode",
            f"line item {line.id} has a high-precision price and the order's priceRoundingMode "
            f"{order.price_rounding_mode!r} is not one of {', '.join(ROUNDING_MODES)}",
        )
    return "HalfEven"


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


def _address(address: Address | None, where: str, omitted: _Omitted) -> dict[str, str] | None:
    if address is None:
        return None
    line_1 = _join(" ", address.street_name, address.street_number)
    if not line_1:
        omitted.add(f"{where}: no streetName or streetNumber for address_line_1; not sent")
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


def _items(order: Order, units: list[Unit], omitted: _Omitted) -> list[Payload]:
    taxes = _unit_taxes(order, units)
    order_discounts = _order_discount_entries(order, units, omitted)
    return [
        {
            "external_item_id": unit.line.id,
            "product_id": unit.product_id,
            "price": {
                "item_price": _major(order, unit.item_price),
                "item_list_price": _major(order, unit.item_list_price),
                "item_tax_lines": taxes[i],
                "item_discount_info": _discount_info(
                    order,
                    unit.item_discounts,
                    unit.item_discount_cents,
                    merged_original_cents=unit.item_discount_cents,
                    where=f"lineItems[{unit.line.id}].discountedPricePerQuantity",
                    omitted=omitted,
                ),
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


def _order_discount_entries(
    order: Order, units: list[Unit], omitted: _Omitted
) -> list[list[Payload]]:
    """One merged entry per unit: the order discounts' total, split once over all units."""
    total = order.discount_on_total_price
    if total is None or not total.included_discounts:
        return [[] for _ in units]
    portions = total.included_discounts
    scale = _scale(order)
    amount = sum(money_cents(p.discounted_amount, scale) for p in portions)
    shares = allocate(amount, [u.net for u in units])
    return [
        _discount_info(
            order,
            portions,
            share,
            merged_original_cents=amount,
            where="discountOnTotalPrice",
            omitted=omitted,
        )
        for share in shares
    ]


# --- discounts --------------------------------------------------------------------------


def _discount_info(
    order: Order,
    portions: Sequence[DiscountPortion],
    adjustment_cents: int,
    *,
    merged_original_cents: int,
    where: str,
    omitted: _Omitted,
) -> list[Payload]:
    """NewStore allows at most ONE discount entry per item (and per shipping option): the
    discounts of `portions` become one entry, `[]` when there are none.

    One cart discount: its own entry. Several: `fixed`, `price_adjustment` = their summed
    adjustment, `original_value` = `merged_original_cents` (the merged amount, for order
    discounts the order-wide total), and refs, codes and descriptions joined in the
    commercetools order (see `_joined`).
    """
    references = list({p.discount.id: p.discount for p in portions}.values())
    if not references:
        return []
    adjustment = _major(order, adjustment_cents)
    if len(references) == 1:
        reference = references[0]
        cart_discount = reference.obj or {}
        kind, original = _discount_value(order, cart_discount.get("value") or {}, adjustment)
    else:
        kind, original = "fixed", _major(order, merged_original_cents)
    return [
        {
            "type": kind,
            "original_value": original,
            "price_adjustment": adjustment,
            "discount_ref": _joined(
                [_discount_ref(r) for r in references],
                REF_SEPARATOR,
                MAX_DISCOUNT_REF_LENGTH,
                f"{where} discount_ref",
                omitted,
            )
            or references[0].id,
            "coupon_code": _joined(
                [_coupon_code(order, r.id) for r in references],
                CODE_SEPARATOR,
                MAX_COUPON_CODE_LENGTH,
                f"{where} coupon_code",
                omitted,
            ),
            "description": _joined(
                [_localized((r.obj or {}).get("name"), order.locale) for r in references],
                DESCRIPTION_SEPARATOR,
                MAX_DESCRIPTION_LENGTH,
                f"{where} description",
                omitted,
            ),
        }
    ]


def _joined(values: list[str], separator: str, limit: int, where: str, omitted: _Omitted) -> str:
    """The distinct non-empty `values`, in order, joined by `separator`, within `limit`.

    A value is never cut: the values are taken in order and each one is kept only if the
    joined text still fits in `limit` characters; a value that does not fit is left out
    entirely (a later, shorter one may still fit), and each one left out is reported in
    `omitted` under `where`. (With cart discount keys of at most 256 characters and ids of
    36, a `discount_ref` always keeps at least its first value.)
    """
    kept: list[str] = []
    for value in dict.fromkeys(v for v in values if v):
        if len(separator.join([*kept, value])) <= limit:
            kept.append(value)
        else:
            shown = value if len(value) <= 40 else value[:40] + "..."
            omitted.add(f"{where}: {shown!r} left out ({limit}-character limit)")
    return separator.join(kept)


def _discount_ref(reference: Reference) -> str:
    return str((reference.obj or {}).get("key") or reference.id)


def _discount_value(
    order: Order, value: dict[str, Any], adjustment: Decimal
) -> tuple[str, Decimal]:
    if value.get("type") == "relative":
        return "percentage", Decimal(value["permyriad"]) / 100
    if value.get("type") == "absolute":
        currency = order.total_price.currency_code
        for money in value.get("money", []):
            if money.get("currencyCode") == currency:  # cent or high precision alike
                return "fixed", money_major(Money.model_validate(money), _scale(order))
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


# --- shipping, payments -----------------------------------------------------------------


def _shipping_option(order: Order, omitted: _Omitted) -> Payload:
    service_level = customization.service_level_identifier(order)
    info = order.shipping_info
    assert info is not None  # service_level_identifier refuses an order without shipping
    scale = _scale(order)
    portions = info.discounted_price.included_discounts if info.discounted_price else []
    adjustment = sum(money_cents(p.discounted_amount, scale) for p in portions)
    return {
        "service_level_identifier": service_level,
        "price": money_major(info.price, scale),
        "tax": _major(order, info.taxed_price.tax_cents if info.taxed_price else 0),
        "discount_info": _discount_info(
            order,
            portions,
            adjustment,
            merged_original_cents=adjustment,
            where="shippingInfo.discountedPrice",
            omitted=omitted,
        ),
    }


def _payments(order: Order, omitted: _Omitted) -> list[Payload]:
    payments = []
    for reference in order.payments:
        if reference.obj is None:
            raise MappingError(
                "payment_not_expanded", f"payment {reference.id} could not be read with the order"
            )
        result = customization.newstore_payment(Payment.model_validate(reference.obj), order)
        omitted.extend(result.omitted)
        if result.entry is not None:
            payments.append(result.entry)
    return payments


def _scale(order: Order) -> int:
    """The currency's decimals (ISO 4217): `totalPrice` is always cent precision."""
    return order.total_price.fraction_digits


def _major(order: Order, cents: int) -> Decimal:
    return to_major(cents, _scale(order))
