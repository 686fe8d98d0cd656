"""event/money.py: exact splits (largest remainder, ties to the earlier share) and rounding.

The reference implementations here use exact rationals (`fractions.Fraction`) and Python's
own rounding, independently of the integer arithmetic in event/money.py.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from event.money import allocate, line_cents, money_cents, money_major, round_ratio, to_major
from event.order import Money


def reference_split(total: int, weights: list[Fraction]) -> list[int]:
    """docs/mapping.md: floor(total * w / sum), then one cent each to the largest fractional
    remainders, equal remainders to the earlier share; all-zero weights count as equal."""
    if not weights:
        return []
    if all(w == 0 for w in weights):
        weights = [Fraction(1)] * len(weights)
    whole = sum(weights)
    exact = [Fraction(total) * w / whole for w in weights]
    shares = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


weights_lists = st.lists(st.integers(0, 10**9), min_size=1, max_size=30)


@settings(max_examples=500, deadline=None)
@given(st.integers(-(10**12), 10**12), weights_lists)
# Found by hypothesis against the old Decimal implementation: 4/6 of 1, 1 and 4 are 2/3,
# 2/3 and 2 2/3, three equal remainders; the 2 cents left after the floors 0, 0, 2 go to the
# two EARLIER shares. The old 28-digit quotients gave the third share the larger remainder.
@example(4, [1, 1, 4])
@example(2, [1, 1, 1])
@example(0, [0, 0])
@example(7, [0, 0, 0])
def test_allocate_is_the_exact_largest_remainder_split(total: int, weights: list[int]) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    assert shares == reference_split(total, [Fraction(w) for w in weights])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**7),
    st.lists(st.fractions(min_value=0, max_value=1000, max_denominator=10**6), min_size=1),
)
def test_allocate_takes_exact_rational_weights(total: int, weights: list[Fraction]) -> None:
    assert allocate(total, weights) == reference_split(total, weights)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 50), st.integers(1, 10**6))
def test_equal_weights_differ_by_at_most_one_cent_earlier_shares_first(
    total: int, count: int, weight: int
) -> None:
    shares = allocate(total, [weight] * count)
    base, extra = divmod(total, count)
    assert shares == [base + 1] * extra + [base] * (count - extra)


def test_ties_go_to_the_earlier_share() -> None:
    assert allocate(4, [1, 1, 4]) == [1, 1, 2]
    assert allocate(1, [1, 1]) == [1, 0]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]
    assert allocate(400, [1000, 1000, 4000]) == [67, 67, 266]
    # a later share with the larger remainder still wins: 5 * [1, 2] / 3 = 1.67, 3.33
    assert allocate(5, [1, 2]) == [2, 3]


def test_float_weights_are_read_as_their_decimal_value() -> None:
    # 2 x 0.3/0.4 = 1.5 and 2 x 0.1/0.4 = 0.5: a tie in decimal, so the earlier share wins.
    # (Read as binary doubles, 0.3 is a little less than 0.3 and the split would be 1, 1.)
    assert allocate(2, [0.3, 0.1]) == [2, 0]
    # 5 x 0.015/0.05 = 1.5 and 5 x 0.035/0.05 = 3.5: tie, earlier first (binary: 1, 4)
    assert allocate(5, [0.015, 0.035]) == [2, 3]
    assert allocate(10, [0.1, 0.2]) == allocate(10, [1, 2]) == [3, 7]


def test_edge_cases() -> None:
    assert allocate(5, []) == []
    assert allocate(5, [0, 0]) == [3, 2]
    with pytest.raises(ValueError):
        allocate(5, [1, -1])


# --- rounding and high-precision money ---------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.integers(-(10**9), 10**9), st.integers(1, 10**6))
def test_round_ratio_half_even_matches_python(numerator: int, denominator: int) -> None:
    assert round_ratio(numerator, denominator) == round(Fraction(numerator, denominator))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.integers(1, 10**6))
def test_round_ratio_half_up_and_half_down(numerator: int, denominator: int) -> None:
    value = Fraction(numerator, denominator)
    assert round_ratio(numerator, denominator, "HalfUp") == math.floor(value + Fraction(1, 2))
    assert round_ratio(numerator, denominator, "HalfDown") == math.ceil(value - Fraction(1, 2))


def test_round_ratio_at_exact_halves() -> None:
    assert [round_ratio(n, 2) for n in (1, 3, 5, -1, -3)] == [0, 2, 2, 0, -2]
    assert [round_ratio(n, 2, "HalfUp") for n in (1, 3, -1)] == [1, 2, -1]
    assert [round_ratio(n, 2, "HalfDown") for n in (1, 3, -1)] == [0, 1, 0]


def _high(precise: int, digits: int, cents: int, currency: str = "USD") -> Money:
    return Money.model_validate(
        {
            "type": "highPrecision",
            "currencyCode": currency,
            "centAmount": cents,
            "preciseAmount": precise,
            "fractionDigits": digits,
        }
    )


def test_high_precision_money_uses_the_currency_scale_not_its_fraction_digits() -> None:
    money = _high(2500345, 5, 2500)  # 25.00345 USD
    assert money_cents(money, 2) == 2500
    assert money_major(money, 2) == Decimal("25.00")  # not 0.02500
    # 3 x 25.00345 = 75.01035 -> 7501 cents (rounded once, not 3 x 25.00)
    assert line_cents(money, 3, 2) == 7501
    assert allocate(line_cents(money, 3, 2), [1, 1, 1]) == [2501, 2500, 2500]


def test_high_precision_line_totals_follow_the_rounding_mode() -> None:
    money = _high(10025, 4, 100)  # 1.0025 USD; x 2 = 2.0050 = 200.5 cents, exactly half
    assert line_cents(money, 2, 2) == 200
    assert line_cents(money, 2, 2, "HalfEven") == 200
    assert line_cents(money, 2, 2, "HalfUp") == 201
    assert line_cents(money, 2, 2, "HalfDown") == 200
    jpy = _high(15005, 1, 1500, "JPY")  # 1500.5 JPY, x 1 -> 1500 (half even), x 3 -> 4502
    assert line_cents(jpy, 1, 0) == 1500
    assert line_cents(jpy, 3, 0) == 4502  # 4501.5 -> even 4502
    kwd = _high(47551, 4, 4755, "KWD")  # 4.7551 KWD x 3 = 14.2653 -> 14.265
    assert line_cents(kwd, 3, 3) == 14265


def test_cent_precision_money() -> None:
    money = Money.model_validate({"centAmount": 1999, "currencyCode": "USD", "fractionDigits": 2})
    assert money_cents(money, 2) == 1999
    assert money_major(money, 2) == Decimal("19.99")
    assert line_cents(money, 3, 2) == 5997
    assert to_major(5, 0) == Decimal(5)
    assert to_major(29284, 3) == Decimal("29.284")
