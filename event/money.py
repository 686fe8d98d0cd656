"""Exact money arithmetic: cents to major units, and splits that always add up."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from event.order import Money


def to_major(cents: int, fraction_digits: int) -> Decimal:
    """`1999, 2` -> `Decimal("19.99")`; exact, never a float."""
    return Decimal(cents).scaleb(-fraction_digits)


def money_major(money: Money) -> Decimal:
    return to_major(money.cent_amount, money.fraction_digits)


def allocate(total: int, weights: Sequence[int | float]) -> list[int]:
    """Split `total` cents into shares proportional to `weights` (largest remainder).

    The shares add up to `total` exactly. Leftover cents go to the largest fractional
    remainders, ties to the earlier share, so the result is deterministic. All-zero
    weights count as equal weights.
    """
    if not weights:
        return []
    if not any(weights):
        weights = [1] * len(weights)
    exact_weights = [Decimal(str(w)) for w in weights]
    weight_sum = sum(exact_weights)
    exact = [Decimal(total) * w / weight_sum for w in exact_weights]
    shares = [int(e.to_integral_value(rounding="ROUND_FLOOR")) for e in exact]
    leftover = total - sum(shares)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in by_remainder[:leftover]:
        shares[index] += 1
    return shares
