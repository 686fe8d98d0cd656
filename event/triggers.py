"""What an order message asks for: inject the order, cancel it in NewStore, or nothing.

Pure: decided from the message (`decide`) and, for an injection, from the order as read
(`ineligible`), never from the time or from memory.

ORDER_INJECT_WHEN:
- `created` (the default): every `OrderCreated` is injected.
- `confirmed`: an order is injected once its `orderState` is `Confirmed` (or already
  `Complete`): on the `OrderStateChanged` that says so, or on its `OrderCreated` when it was
  created that way.
- `paid`: likewise once its `paymentState` is `Paid` (`OrderPaymentStateChanged`).

An `OrderStateChanged` to `Cancelled` cancels the order in NewStore (`event/cancellation.py`),
whatever the mode. Every other message is acknowledged as ignored, with the reason.

Exactly once: the messages that can inject one order (its `OrderCreated` and the state
change) may both arrive, twice each; the first to inject writes NewStore's order id into the
order's syncInfo, and every later one finds it there (`event/handler.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from event.envelope import MessageKind

InjectWhen = Literal["created", "confirmed", "paid"]

CANCELLED = "Cancelled"
# The orderStates (OrderState in the commercetools OpenAPI) that count as confirmed: an
# order confirmed and completed before its message is read has been confirmed.
CONFIRMED_STATES = frozenset({"Confirmed", "Complete"})
PAID = "Paid"


class Action(StrEnum):
    INJECT = "inject"
    CANCEL = "cancel"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None  # why a message is ignored


def decide(
    kind: MessageKind,
    order_state: str | None,
    payment_state: str | None,
    when: InjectWhen,
    cancel_in_newstore: bool = True,
) -> Decision:
    """The action for one order message, from what the message itself says. A state the
    message does not tell (an OrderCreated without its order) is left to the order as read
    (`ineligible`)."""
    if kind is MessageKind.ORDER_STATE_CHANGED and order_state == CANCELLED:
        if cancel_in_newstore:
            return Decision(Action.CANCEL)
        return Decision(Action.IGNORE, "cancellations_not_sent")
    if kind is MessageKind.ORDER_CREATED:
        if when == "created":
            return Decision(Action.INJECT)
        told = order_state if when == "confirmed" else payment_state
        if told is None or _eligible_state(when, order_state, payment_state):
            return Decision(Action.INJECT)
        return Decision(Action.IGNORE, _not_yet(when, order_state, payment_state))
    if kind is MessageKind.ORDER_STATE_CHANGED:
        if when == "confirmed" and order_state in CONFIRMED_STATES:
            return Decision(Action.INJECT)
        return Decision(Action.IGNORE, f"orderState {order_state}: not a trigger ({when})")
    if kind is MessageKind.ORDER_PAYMENT_STATE_CHANGED:
        if when == "paid" and payment_state == PAID:
            return Decision(Action.INJECT)
        return Decision(Action.IGNORE, f"paymentState {payment_state}: not a trigger ({when})")
    return Decision(Action.IGNORE, "not_an_order_message")


def ineligible(order: dict[str, Any], when: InjectWhen) -> str | None:
    """Why the order as read may not be injected (yet) under `when`; None when it may.

    A cancelled order is never injected, in any mode: a late or redelivered message must not
    send an order that was cancelled meanwhile (its cancellation found nothing to cancel)."""
    order_state, payment_state = order.get("orderState"), order.get("paymentState")
    if order_state == CANCELLED:
        return "order_cancelled"
    if when == "created":
        return None
    if _eligible_state(when, order_state, payment_state):
        return None
    return _not_yet(when, order_state, payment_state)


def _eligible_state(when: InjectWhen, order_state: Any, payment_state: Any) -> bool:
    if order_state == CANCELLED:
        return False
    if when == "confirmed":
        return bool(order_state in CONFIRMED_STATES)
    return bool(payment_state == PAID)


def _not_yet(when: InjectWhen, order_state: Any, payment_state: Any) -> str:
    if when == "confirmed":
        return f"not_confirmed: orderState {order_state}"
    return f"not_paid: paymentState {payment_state}"
