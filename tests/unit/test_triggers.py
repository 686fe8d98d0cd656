"""What each order message asks for under each ORDER_INJECT_WHEN (event/triggers.py)."""

from __future__ import annotations

import pytest

from event.envelope import MessageKind
from event.triggers import Action, decide, ineligible

CREATED, STATE, PAYMENT = (
    MessageKind.ORDER_CREATED,
    MessageKind.ORDER_STATE_CHANGED,
    MessageKind.ORDER_PAYMENT_STATE_CHANGED,
)


@pytest.mark.parametrize(
    ("kind", "order_state", "payment_state", "when", "action"),
    [
        # created: every OrderCreated, and nothing else
        (CREATED, "Open", None, "created", Action.INJECT),
        (CREATED, None, None, "created", Action.INJECT),
        (STATE, "Confirmed", None, "created", Action.IGNORE),
        (PAYMENT, None, "Paid", "created", Action.IGNORE),
        # confirmed
        (CREATED, "Open", None, "confirmed", Action.IGNORE),
        (CREATED, "Confirmed", None, "confirmed", Action.INJECT),
        (CREATED, None, None, "confirmed", Action.INJECT),  # no payload: the order decides
        (STATE, "Confirmed", None, "confirmed", Action.INJECT),
        (STATE, "Complete", None, "confirmed", Action.INJECT),
        (STATE, "Open", None, "confirmed", Action.IGNORE),
        (PAYMENT, None, "Paid", "confirmed", Action.IGNORE),
        # paid
        (CREATED, "Open", "Pending", "paid", Action.IGNORE),
        (CREATED, "Open", "Paid", "paid", Action.INJECT),
        (CREATED, "Cancelled", "Paid", "paid", Action.IGNORE),
        (PAYMENT, None, "Paid", "paid", Action.INJECT),
        (PAYMENT, None, "BalanceDue", "paid", Action.IGNORE),
        (STATE, "Confirmed", None, "paid", Action.IGNORE),
        # a cancellation, in every mode
        (STATE, "Cancelled", None, "created", Action.CANCEL),
        (STATE, "Cancelled", None, "confirmed", Action.CANCEL),
        (STATE, "Cancelled", None, "paid", Action.CANCEL),
        (MessageKind.OTHER, None, None, "created", Action.IGNORE),
    ],
)
def test_each_message_in_each_mode(kind, order_state, payment_state, when, action) -> None:
    decision = decide(kind, order_state, payment_state, when)
    assert decision.action is action
    assert (decision.reason is not None) is (action is Action.IGNORE)


def test_cancellations_can_be_kept_from_newstore() -> None:
    decision = decide(STATE, "Cancelled", None, "created", cancel_in_newstore=False)
    assert (decision.action, decision.reason) == (Action.IGNORE, "cancellations_not_sent")


def test_the_order_as_read_decides_and_a_cancelled_order_never_goes() -> None:
    assert ineligible({"orderState": "Cancelled"}, "created") == "order_cancelled"
    assert ineligible({"orderState": "Open"}, "created") is None
    assert ineligible({"orderState": "Cancelled", "paymentState": "Paid"}, "paid")
    assert ineligible({"orderState": "Open"}, "confirmed") == "not_confirmed: orderState Open"
    assert ineligible({"orderState": "Confirmed"}, "confirmed") is None
    assert ineligible({"paymentState": "Paid"}, "paid") is None
