"""The merchant's customisation points for the order mapping.

Edit the functions in this module to fit your shop; nothing else needs to change.
They must stay deterministic: the same order must always give the same result, because
NewStore deduplicates injections on `external_id` and rejects a changed payload.
Raise `MappingError` for an order that can never be injected: it is acknowledged and
recorded as a permanent failure, so that an operator can fix the data and replay it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from event.errors import MappingError
from event.money import money_major
from event.order import Order, Payment, Transaction


def service_level_identifier(order: Order) -> str:
    """NewStore's `service_level_identifier` for the order's shipping.

    Default: the commercetools shipping method's `key`, which must match a NewStore
    service level. Map keys here if the two catalogues use different names, e.g.
    `return {"standard-eu": "GROUND"}.get(key, key)`.
    """
    info = order.shipping_info
    method = info.shipping_method if info else None
    key = (method.obj or {}).get("key") if method else None
    if not key:
        raise MappingError(
            "no_service_level",
            "the order has no shipping method with a key to use as service_level_identifier",
        )
    return str(key)


def newstore_payment(payment: Payment, order: Order) -> dict[str, Any] | None:
    """One NewStore `payments[]` entry for a commercetools payment, or None to skip it.

    Default, for a PSP that records its transactions in commercetools: successful charges
    are `captured`, else successful authorisations are `authorized`, else the planned amount
    is `authorized`. Adapt `processor` and `method` to the values that your NewStore tenant's
    payment provider integration expects (see NewStore's "Integrating a payment service
    provider").
    """
    used = _successful(payment, "Charge") or _successful(payment, "Authorization")
    kind = "captured" if used and used[0].type == "Charge" else "authorized"
    amounts = [t.amount for t in used] or [payment.amount_planned]
    amount = sum((money_major(m) for m in amounts), Decimal(0))
    if amount <= 0:
        return None
    timestamps = [t.timestamp for t in used if t.timestamp]
    return {
        "type": kind,
        "amount": amount,
        "method": payment.payment_method_info.method or "unknown",
        "processor": payment.payment_method_info.payment_interface or "commercetools",
        # The PSP reference, else the payment id: both stable across redeliveries.
        "correlation_ref": payment.interface_id or payment.id,
        "processed_at": max(timestamps) if timestamps else payment.created_at,
    }


def _successful(payment: Payment, transaction_type: str) -> list[Transaction]:
    return [t for t in payment.transactions if t.type == transaction_type and t.state == "Success"]
