"""The merchant's customisation points for the order mapping.

Edit the functions in this module to fit your shop; nothing else needs to change.
They must stay deterministic: the same order must always give the same result, because
NewStore deduplicates injections on `external_id` and rejects a changed payload.
Raise `MappingError` for an order that can never be injected: it is acknowledged and
recorded as a permanent failure, so that an operator can fix the data and replay it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from event.errors import MappingError
from event.money import money_cents, to_major
from event.order import LineItem, Order, Payment

# --- product ids ------------------------------------------------------------------------

MAX_PRODUCT_ID_LENGTH = 64  # InjectedOrderShipmentItem.product_id
ATTRIBUTE_SOURCE_PREFIX = "attribute:"


def product_id(line_item: LineItem, source: str = "sku") -> str:
    """NewStore's `product_id` for a line item (`NEW_STORE_PRODUCT_ID_SOURCE`).

    - `sku` (the default): the variant's SKU, which is what NewStore's catalogue import
      uses as product id in the usual set-up (and what the seed connector sent).
    - `attribute:<name>`: the value of the variant attribute `<name>`, for tenants whose
      NewStore product ids are not the SKUs. A text or number value is used as it is
      (a number as its decimal digits), an enum or localized enum value by its `key`.

    A line whose variant has no SKU (source `sku`) or lacks the attribute, whose value is of
    another type (set, money, reference, boolean, localized text), is empty, or is longer
    than 64 characters, is a permanent MappingError naming the line: injecting the order
    without that item, or with a guessed id, would misstate what was bought.
    """
    variant = line_item.variant
    if source == "sku":
        if not variant.sku:
            raise MappingError("missing_sku", f"line item {line_item.id} has no SKU")
        value = variant.sku
    elif source.startswith(ATTRIBUTE_SOURCE_PREFIX) and len(source) > len(ATTRIBUTE_SOURCE_PREFIX):
        name = source[len(ATTRIBUTE_SOURCE_PREFIX) :]
        attribute = variant.attribute(name)
        where = f"line item {line_item.id} (SKU {variant.sku or 'none'})"
        if attribute is None:
            raise MappingError(
                "missing_product_id",
                f"{where}: its variant has no attribute {name!r} to use as NewStore product_id",
            )
        value = _attribute_text(attribute.value)
        if not value:
            raise MappingError(
                "missing_product_id",
                f"{where}: attribute {name!r} is not a non-empty text, number or enum value",
            )
    else:
        raise ValueError(f"product id source {source!r} is neither 'sku' nor 'attribute:<name>'")
    if len(value) > MAX_PRODUCT_ID_LENGTH:
        raise MappingError(
            "product_id_too_long",
            f"line item {line_item.id}: product_id {value[:20]}... is {len(value)} characters; "
            f"NewStore allows {MAX_PRODUCT_ID_LENGTH}",
        )
    return value


def _attribute_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("key"), str):  # enum, lenum
        return str(value["key"])
    return ""


# --- shipping -----------------------------------------------------------------------------


def service_level_for_key(key: str) -> str:
    """NewStore's service level for a commercetools shipping method key.

    Default: the key itself, which must match a NewStore service level. Map keys here if the
    two catalogues use different names, e.g. `return {"standard-eu": "GROUND"}.get(key, key)`;
    `newstore-connector doctor` checks every key through this function."""
    return key


def service_level_identifier(order: Order) -> str:
    """NewStore's `service_level_identifier` for the order's shipping: the shipping method's
    `key`, through `service_level_for_key`.
    """
    info = order.shipping_info
    method = info.shipping_method if info else None
    key = (method.obj or {}).get("key") if method else None
    if not key:
        raise MappingError(
            "no_service_level",
            "the order has no shipping method with a key to use as service_level_identifier",
        )
    return service_level_for_key(str(key))


# --- payments -----------------------------------------------------------------------------

MAX_PROCESSOR_LENGTH = 32  # InjectedOrderPayment.processor
MAX_METHOD_LENGTH = 64  # InjectedOrderPayment.method
MAX_CORRELATION_REF_LENGTH = 128  # InjectedOrderPayment.correlation_ref

# commercetools `paymentMethodInfo.paymentInterface` (compared lower-cased, surrounding
# whitespace removed) -> NewStore `processor`. NewStore's contract names stripe, paypal, cash
# and gift_card as its supported providers; add the interface names of your PSP
# integrations here (e.g. "ctp-adyen-integration": "adyen") if your tenant knows them by
# another name.
PROCESSORS: dict[str, str] = {
    "stripe": "stripe",
    "paypal": "paypal",
    "cash": "cash",
    "gift_card": "gift_card",
    "giftcard": "gift_card",
    "gift-card": "gift_card",
}
# A payment without a paymentInterface.
NO_INTERFACE_PROCESSOR = "commercetools"
# Transaction types that describe money moving after the order (refunds, voids): not
# represented in an injected order, and reported as omitted when present and successful.
NOT_MAPPED_TRANSACTION_TYPES = ("CancelAuthorization", "Refund", "Chargeback")


@dataclass(frozen=True)
class PaymentResult:
    """What `newstore_payment` gives for one commercetools payment.

    `entry` is the NewStore `payments[]` entry, or None when the payment is not sent;
    `omitted` says, one human-readable line each, what was deliberately left out (it ends up
    in `MappedOrder.omitted`).
    """

    entry: dict[str, Any] | None
    omitted: tuple[str, ...] = ()


def newstore_payment(payment: Payment, order: Order) -> PaymentResult:
    """The NewStore `payments[]` entry for a commercetools payment.

    NewStore takes only payments that are already authorized or captured, so only
    successful (`state: Success`) transactions count, in the order's currency:

    - successful `Charge`s -> `type: captured`, `amount` = their sum;
    - else successful `Authorization`s -> `type: authorized`, `amount` = their sum;
    - a payment with both: the charges win, `captured` with the charged sum, because a
      charge captures (part of) the authorization and sending both would count the money
      twice. An authorized amount above the charged one (a partial capture) is NOT sent as
      a second, authorized payment (it would need its own correlation_ref, which the PSP
      does not know); it is reported in `omitted`;
    - neither (only Pending / Initial / Failure transactions, or none: `amountPlanned` is a
      plan, not money): the payment is not sent, and reported in `omitted`; the same for a
      sum of 0 (NewStore needs at least 0.01);
    - successful CancelAuthorization / Refund / Chargeback transactions are not represented
      (injection describes the order as placed) and are reported in `omitted`.

    `processed_at` is the latest `timestamp` among the transactions used (else the payment's
    `createdAt`); `method` = `paymentMethodInfo.method` (default `unknown`, at most 64
    characters); `processor` = `processor_for(paymentInterface)`; `correlation_ref` = the
    payment's `interfaceId` (the PSP's reference), else the payment `id`: both are stable,
    so redelivery produces the same payload. Adapt `PROCESSORS` and `method` to the values
    that your NewStore tenant's payment provider integration expects.
    """
    where = f"payments[{payment.id}]"
    scale = order.total_price.fraction_digits
    currency = order.total_price.currency_code
    omitted: list[str] = []
    successful = [t for t in payment.transactions if t.state == "Success"]
    for t in successful:
        if t.amount.currency_code != currency:
            omitted.append(
                f"{where}.transactions[{t.id}]: {t.type} in {t.amount.currency_code}, not the "
                f"order currency {currency}; not used"
            )
    successful = [t for t in successful if t.amount.currency_code == currency]
    for t in successful:
        if t.type in NOT_MAPPED_TRANSACTION_TYPES:
            amount = to_major(money_cents(t.amount, scale), scale)
            omitted.append(
                f"{where}.transactions[{t.id}]: successful {t.type} of {amount} not sent"
            )
    charges = [t for t in successful if t.type == "Charge"]
    authorizations = [t for t in successful if t.type == "Authorization"]
    used = charges or authorizations
    if not used:
        states = ", ".join(f"{t.type} {t.state}" for t in payment.transactions) or "none"
        omitted.append(
            f"{where}: no successful Authorization or Charge (transactions: {states}); not sent"
        )
        return PaymentResult(None, tuple(omitted))
    cents = sum(money_cents(t.amount, scale) for t in used)
    if cents <= 0:
        omitted.append(f"{where}: successful {used[0].type} amounts add up to 0; not sent")
        return PaymentResult(None, tuple(omitted))
    authorized = sum(money_cents(t.amount, scale) for t in authorizations)
    if charges and authorized > cents:
        omitted.append(
            f"{where}: authorized {to_major(authorized, scale)} but captured "
            f"{to_major(cents, scale)}; the uncaptured {to_major(authorized - cents, scale)} "
            "is not sent"
        )
    processor, note = processor_for(payment.payment_method_info.payment_interface)
    if note:
        omitted.append(f"{where}.paymentMethodInfo.paymentInterface: {note}")
    method = payment.payment_method_info.method or "unknown"
    short_method = shorten_to_words(method, MAX_METHOD_LENGTH)
    if short_method != method:
        omitted.append(
            f"{where}.paymentMethodInfo.method: {method!r} shortened to {short_method!r} "
            f"(method allows {MAX_METHOD_LENGTH} characters)"
        )
    correlation_ref = payment.interface_id or payment.id
    if len(correlation_ref) > MAX_CORRELATION_REF_LENGTH:
        omitted.append(
            f"{where}.interfaceId: longer than {MAX_CORRELATION_REF_LENGTH} characters; "
            "correlation_ref is the payment id instead"
        )
        correlation_ref = payment.id
    timestamps = [t.timestamp for t in used if t.timestamp]
    return PaymentResult(
        {
            "type": "captured" if charges else "authorized",
            "amount": to_major(cents, scale),
            "method": short_method,
            "processor": processor,
            # The PSP reference, else the payment id: both stable across redeliveries.
            "correlation_ref": correlation_ref,
            "processed_at": max(timestamps) if timestamps else payment.created_at,
        },
        tuple(omitted),
    )


def processor_for(payment_interface: str | None) -> tuple[str, str | None]:
    """NewStore `processor` for a commercetools `paymentInterface`, and a note if shortened.

    The rule: the interface is lower-cased, surrounding whitespace is removed and inner
    whitespace runs become `_`. A name in `PROCESSORS` maps to its NewStore provider. Any
    other name is sent as it is now (your tenant may know it, e.g. `adyen`); no interface
    gives `commercetools`. A name longer than 32 characters is shortened to its leading whole
    words (words end at `_`, `-` or `.`) that fit, never cut inside a word, and the note
    says so; only a first word that alone is longer than 32 characters is cut at 32, and the
    note says that too.
    """
    name = re.sub(r"\s+", "_", (payment_interface or "").strip().lower())
    if not name:
        return NO_INTERFACE_PROCESSOR, None
    if name in PROCESSORS:
        return PROCESSORS[name], None
    short = shorten_to_words(name, MAX_PROCESSOR_LENGTH)
    if short == name:
        return name, None
    return short, (
        f"{payment_interface!r} shortened to {short!r} (processor allows "
        f"{MAX_PROCESSOR_LENGTH} characters)"
    )


def shorten_to_words(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else its longest prefix that ends at a word
    boundary (before a `_`, `-`, `.` or space), else (one word longer than `limit`) its first
    `limit` characters. Callers report every shortening."""
    if len(value) <= limit:
        return value
    cuts = [m.start() for m in re.finditer(r"[_\-. ]", value) if 0 < m.start() <= limit]
    return value[: cuts[-1]] if cuts else value[:limit]
