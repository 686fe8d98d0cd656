"""Exact money arithmetic: cents to major units, rounding, and splits that always add up.

"Cents" means the currency's smallest unit as commercetools' `centAmount` counts it (ISO 4217:
USD 2 decimals, JPY 0, KWD 3). Nothing here uses floats or limited-precision decimals for the
arithmetic: splits and rounding work on integers (and `Fraction` for the weights), so ties are
real ties and are broken by a stated rule, never by rounding noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from math import lcm
from typing import Literal

from event.order import Money

RoundingMode = Literal["HalfEven", "HalfUp", "HalfDown"]

Weight = int | float | Decimal | Fraction


def to_major(cents: int, fraction_digits: int) -> Decimal:
    """`1999, 2` -> `Decimal("19.99")`; exact, never a float."""
    return Decimal(cents).scaleb(-fraction_digits)


def money_cents(money: Money, scale: int) -> int:
    """The amount in the currency's smallest unit (`scale` = the currency's decimals).

    A cent-precision money's `centAmount` is that already (its `fractionDigits` is the
    currency's). A high-precision money also carries `centAmount` at the currency's scale,
    commercetools' own rounding of `preciseAmount`; its `fractionDigits` is the precision of
    `preciseAmount`, NOT the currency's, so it must not be used to scale `centAmount`.
    """
    if money.is_high_precision:
        return money.cent_amount
    return rescale(money.cent_amount, money.fraction_digits, scale)


def money_major(money: Money, scale: int) -> Decimal:
    """The amount in major units with the currency's decimals (see `money_cents`)."""
    return to_major(money_cents(money, scale), scale)


def rescale(amount: int, from_digits: int, to_digits: int) -> int:
    """An integer amount with `from_digits` decimals as one with `to_digits`; must be exact."""
    if from_digits <= to_digits:
        return amount * _pow10(to_digits - from_digits)
    quotient, rest = divmod(amount, _pow10(from_digits - to_digits))
    if rest:
        raise ValueError(
            f"{amount} with {from_digits} decimals has no exact {to_digits}-decimal value"
        )
    return quotient


def line_cents(money: Money, quantity: int, scale: int, mode: RoundingMode = "HalfEven") -> int:
    """`quantity` times a unit price, in the currency's smallest unit.

    Cent precision: `centAmount * quantity`, exact. High precision: `preciseAmount * quantity`
    rounded once to the currency's decimals with the order's price rounding mode (HalfEven
    unless the cart said otherwise), which is how commercetools computes a line's total.
    """
    if not money.is_high_precision:
        return money_cents(money, scale) * quantity
    assert money.precise_amount is not None
    shift = money.fraction_digits - scale
    if shift <= 0:
        return money.precise_amount * quantity * _pow10(-shift)
    return round_ratio(money.precise_amount * quantity, _pow10(shift), mode)


def round_ratio(numerator: int, denominator: int, mode: RoundingMode = "HalfEven") -> int:
    """`numerator / denominator` rounded to an integer, exactly, with a commercetools mode."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, rest = divmod(numerator, denominator)  # floor, 0 <= rest < denominator
    twice = 2 * rest
    if twice < denominator:
        return quotient
    if twice > denominator:
        return quotient + 1
    # exactly half way
    if mode == "HalfUp":  # away from zero
        return quotient + 1 if numerator >= 0 else quotient
    if mode == "HalfDown":  # towards zero
        return quotient if numerator >= 0 else quotient + 1
    return quotient if quotient % 2 == 0 else quotient + 1


def allocate(total: int, weights: Sequence[Weight]) -> list[int]:
    """Split `total` cents into shares proportional to `weights` (largest remainder).

    Exact integer arithmetic throughout: the weights become integers over a common
    denominator (a float weight is read as its shortest decimal repr, `0.07` as 7/100), each
    share's exact value is `total * w_i / W` with `W = sum(w)`, its floor is
    `(total * w_i) // W` and its fractional remainder is the integer `(total * w_i) % W`.
    The `total - sum(floors)` cents that are left (fewer than the number of shares) go one
    each to the shares with the largest remainder; equal remainders are a true tie, and a
    tie goes to the EARLIER share. The shares add up to `total` exactly, and the result
    depends only on the inputs. All-zero weights count as equal weights; a negative weight
    is a ValueError.
    """
    if not weights:
        return []
    fractions = [_fraction(w) for w in weights]
    if any(f < 0 for f in fractions):
        raise ValueError(f"negative weight in {list(weights)}")
    if not any(fractions):
        fractions = [Fraction(1)] * len(fractions)
    common = lcm(*(f.denominator for f in fractions))
    integer_weights = [f.numerator * (common // f.denominator) for f in fractions]
    weight_sum = sum(integer_weights)
    floors: list[int] = []
    remainders: list[int] = []
    for weight in integer_weights:
        share, remainder = divmod(total * weight, weight_sum)
        floors.append(share)
        remainders.append(remainder)
    leftover = total - sum(floors)
    # largest remainder first; among equal remainders, the earlier share first
    by_remainder = sorted(range(len(floors)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:leftover]:
        floors[index] += 1
    return floors


def _pow10(exponent: int) -> int:
    if exponent < 0:
        raise ValueError("negative exponent")
    power: int = 10**exponent
    return power


def _fraction(weight: Weight) -> Fraction:
    if isinstance(weight, bool):
        raise TypeError("a weight must be a number, not a bool")
    if isinstance(weight, float):
        return Fraction(repr(weight))  # 0.07 -> 7/100, not the binary 0.07000000000000000666...
    return Fraction(weight)
