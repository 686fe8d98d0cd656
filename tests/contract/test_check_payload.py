"""`event.contract.check_payload`: what it leaves out, what it refuses, and that it is pure.

These tests need no specification file: the drift tests next to them compare the contract
with the Swagger; these say what the contract does with a payload.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

from event.contract import ContractCheck, ContractViolation, check_payload
from event.errors import MappingError
from tests.contract.specs import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "orders" / "01_single_item_usd_tax_excluded.json"
PRICE = "shipments.0.items.0.price"
OPTION = "shipments.0.shipping_option"


def payload() -> dict[str, Any]:
    """A valid payload as the mapping writes it (money as Decimal)."""
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"), parse_float=Decimal)["expected"]
    return dict(expected)


def changed(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """`base` (default: `payload()`) with the value at a dotted path replaced (`...` deletes)."""
    result = copy.deepcopy(base) if base is not None else payload()
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return result


def discount(kind: str = "fixed", **changes: Any) -> dict[str, Any]:
    entry = {
        "type": kind,
        "original_value": Decimal(10),
        "price_adjustment": Decimal("1.5"),
        "discount_ref": "spring-10",
        "coupon_code": "SPRING10",
        "description": "Spring sale",
    }
    return {**entry, **changes}


def violation(candidate: dict[str, Any]) -> ContractViolation:
    with pytest.raises(ContractViolation) as raised:
        check_payload(candidate)
    return raised.value


# --- a valid payload ----------------------------------------------------------------------------


def test_a_valid_payload_comes_back_as_it_is() -> None:
    original = payload()
    check = check_payload(original)
    assert check == ContractCheck(original, ())
    assert check.payload is original


def test_the_result_is_frozen() -> None:
    check = check_payload(payload())
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.omitted = ("x",)  # type: ignore[misc]


def test_properties_the_swagger_does_not_define_are_left_alone() -> None:
    check = check_payload(changed("x_merchant_note", "kept"))
    assert check.payload["x_merchant_note"] == "kept"
    assert check.omitted == ()


# --- optional values: left out, never cut -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("customer_email", "j" * 53 + "@example.com", "customer_email: longer than 64"),
        ("customer_email", "", "customer_email: empty"),
        ("customer_name", "n" * 129, "customer_name: longer than 128"),
        ("customer_name", None, "customer_name: not a string"),
        ("external_customer_id", "c" * 65, "external_customer_id: longer than 64"),
        ("customer_language", "eng", "customer_language: longer than 2"),
        ("placed_at", "2024-05-14", "placed_at: not an RFC 3339 date-time"),
        ("placed_at", "2024-13-14T09:21:07Z", "placed_at: not an RFC 3339 date-time"),
        ("billing_address.title", "T" * 33, "billing_address.title: longer than 32"),
        ("billing_address.suffix", "S" * 33, "billing_address.suffix: longer than 32"),
        ("shipping_address.salutation", "S" * 33, "shipping_address.salutation: longer than 32"),
        ("shipping_address.state", "S" * 33, "shipping_address.state: longer than 32"),
        ("shipping_address.zip_code", "1" * 33, "shipping_address.zip_code: longer than 32"),
        ("shipping_address.first_name", "F" * 65, "shipping_address.first_name: longer than 64"),
        ("shipping_address.last_name", "L" * 65, "shipping_address.last_name: longer than 64"),
        ("shipping_address.city", "C" * 65, "shipping_address.city: longer than 64"),
        (
            "shipping_address.address_line_2",
            "A" * 257,
            "shipping_address.address_line_2: longer than 256",
        ),
        ("shipping_address.phone", 5551234, "shipping_address.phone: not a string"),
        ("payments.0.wallet", "", "payments[0].wallet: empty"),
        (
            f"{PRICE}.item_tax_lines.0.country_code",
            "USA",
            "shipments[0].items[0].price.item_tax_lines[0].country_code: longer than 2",
        ),
    ],
)
def test_an_optional_value_that_breaks_the_contract_is_left_out(
    path: str, value: Any, reason: str
) -> None:
    candidate = changed(path, value)
    before = copy.deepcopy(candidate)
    check = check_payload(candidate)
    assert check.omitted == (reason,)
    assert check.payload == changed(path, ..., candidate)  # only that value is gone
    assert candidate == before, "the input is never changed"


def test_an_over_long_field_of_an_optional_address_drops_just_that_field() -> None:
    check = check_payload(changed("billing_address.title", "T" * 33))
    assert check.payload["billing_address"] == payload()["billing_address"]
    assert "title" not in check.payload["billing_address"]


def test_a_discount_s_coupon_code_and_description_are_optional() -> None:
    entry = discount(coupon_code="C" * 65, description="D" * 1025)
    check = check_payload(changed(f"{PRICE}.item_discount_info", [entry]))
    assert check.omitted == (
        "shipments[0].items[0].price.item_discount_info[0].coupon_code: longer than 64",
        "shipments[0].items[0].price.item_discount_info[0].description: longer than 1024",
    )
    kept = check.payload["shipments"][0]["items"][0]["price"]["item_discount_info"]
    assert kept == [{k: v for k, v in entry.items() if k not in ("coupon_code", "description")}]


def test_a_bad_entry_inside_an_optional_array_drops_the_array() -> None:
    attributes = [{"name": "n" * 101, "value": "v"}]
    check = check_payload(changed("extended_attributes", attributes))
    assert check.omitted == ("extended_attributes: extended_attributes[0].name longer than 100",)
    assert "extended_attributes" not in check.payload


def test_several_omissions_come_in_a_stable_order() -> None:
    candidate = changed("customer_email", "x" * 65)
    candidate["billing_address"]["title"] = "T" * 33
    candidate["shipping_address"]["city"] = None
    first = check_payload(candidate)
    again = check_payload(json.loads(json.dumps(candidate, default=float), parse_float=Decimal))
    assert first.omitted == (
        "billing_address.title: longer than 32",
        "customer_email: longer than 64",
        "shipping_address.city: not a string",
    )
    assert check_payload(copy.deepcopy(candidate)) == first
    assert again.omitted == first.omitted


# --- required values: a ContractViolation -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "shipping_address.address_line_1",
            "y" * 129,
            "shipping_address.address_line_1 longer than 128",
        ),
        ("billing_address.country", "USA", "billing_address.country longer than 2"),
        ("billing_address.address_line_1", ..., "billing_address.address_line_1 is required"),
        ("external_id", "x" * 65, "external_id longer than 64"),
        ("shop", ..., "shop is required"),
        ("channel_type", "pos", "channel_type not one of 'web', 'mobile' or 'store'"),
        ("currency", "SLE", "currency not a currency of the contract"),
        ("price_method", "gross", "price_method not one of 'tax_included' or 'tax_excluded'"),
        ("shipments", [], "shipments has fewer than 1 entry"),
        (
            f"{OPTION}.service_level_identifier",
            "L" * 65,
            "shipments[0].shipping_option.service_level_identifier longer than 64",
        ),
        (f"{OPTION}.tax", ..., "shipments[0].shipping_option.tax is required"),
        (f"{PRICE}.item_price", "19.99", "shipments[0].items[0].price.item_price not a number"),
        (f"{PRICE}.item_price", True, "shipments[0].items[0].price.item_price not a number"),
        (f"{PRICE}.item_price", Decimal(-1), "shipments[0].items[0].price.item_price less than 0"),
        (
            f"{PRICE}.item_price",
            Decimal("NaN"),
            "shipments[0].items[0].price.item_price not a finite number",
        ),
        (
            f"{PRICE}.item_tax_lines.0.rate",
            1.5,
            "shipments[0].items[0].price.item_tax_lines[0].rate greater than 1",
        ),
        (
            f"{PRICE}.item_tax_lines.0.name",
            ...,
            "shipments[0].items[0].price.item_tax_lines[0].name is required",
        ),
        (
            f"{PRICE}.item_discount_info",
            [discount(), discount()],
            "shipments[0].items[0].price.item_discount_info has more than 1 entry",
        ),
        (
            f"{PRICE}.item_order_discount_info",
            [discount(), discount()],
            "shipments[0].items[0].price.item_order_discount_info has more than 1 entry",
        ),
        (
            f"{OPTION}.discount_info",
            [discount(), discount()],
            "shipments[0].shipping_option.discount_info has more than 1 entry",
        ),
        (
            f"{PRICE}.item_discount_info",
            [discount(type="bogus")],
            "shipments[0].items[0].price.item_discount_info[0] not a discount of type 'fixed' "
            "or 'percentage'",
        ),
        (
            f"{PRICE}.item_discount_info",
            [discount("percentage", original_value=Decimal(150))],
            "shipments[0].items[0].price.item_discount_info[0].original_value greater than 100",
        ),
        (
            f"{PRICE}.item_discount_info",
            [discount(discount_ref="")],
            "shipments[0].items[0].price.item_discount_info[0].discount_ref empty",
        ),
        ("payments.0.processor", "p" * 33, "payments[0].processor longer than 32"),
        ("payments.0.method", "m" * 65, "payments[0].method longer than 64"),
        ("payments.0.correlation_ref", "c" * 129, "payments[0].correlation_ref longer than 128"),
        ("payments.0.type", "pending", "payments[0].type not one of 'authorized' or 'captured'"),
        ("payments.0.amount", Decimal(0), "payments[0].amount not greater than 0"),
        (
            "payments.0.processed_at",
            "yesterday",
            "payments[0].processed_at not an RFC 3339 date-time",
        ),
    ],
)
def test_a_value_the_payload_cannot_do_without_raises(path: str, value: Any, message: str) -> None:
    error = violation(changed(path, value))
    assert isinstance(error, MappingError)
    assert error.reason == "contract_violation"
    assert error.message == f"contract_violation: {message}"
    assert str(error) == error.message
    assert f"{error.path} {error.detail}" == message


# --- money: the currency's decimals ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "accepted"),
    [
        ("USD", Decimal("19.99"), True),
        ("USD", 19.99, True),  # a float is read as its shortest repr
        ("USD", 20, True),
        ("USD", Decimal("20.00"), True),
        ("USD", Decimal("19.999"), False),
        ("USD", 0.1 + 0.2, False),
        ("JPY", 1200, True),
        ("JPY", Decimal("1200.0"), True),
        ("JPY", Decimal("1200.5"), False),
        ("KWD", Decimal("4.755"), True),
        ("KWD", Decimal("4.7555"), False),
        ("CLF", Decimal("1.2345"), True),
        ("XAU", Decimal("1.25"), True),  # no ISO minor unit: the Swagger's 0.01
        ("XAU", Decimal("1.255"), False),
    ],
)
def test_money_has_at_most_the_currency_s_decimals(
    currency: str, amount: Any, accepted: bool
) -> None:
    candidate = changed("currency", currency)
    price = candidate["shipments"][0]["items"][0]["price"]
    price["item_price"] = price["item_list_price"] = amount
    price["item_tax_lines"][0]["amount"] = Decimal(0)
    candidate["shipments"][0]["shipping_option"].update(price=Decimal(0), tax=Decimal(0))
    candidate["payments"][0]["amount"] = Decimal(1)
    if accepted:
        assert check_payload(candidate).omitted == ()
    else:
        error = violation(candidate)
        assert error.path == "shipments[0].items[0].price.item_list_price"
        assert error.detail.endswith(f"decimals for {currency}")


@pytest.mark.parametrize(
    "path",
    [
        f"{PRICE}.item_tax_lines.0.amount",
        f"{OPTION}.price",
        f"{OPTION}.tax",
        "payments.0.amount",
    ],
)
def test_every_money_amount_is_checked(path: str) -> None:
    error = violation(changed(path, Decimal("0.005")))
    assert error.detail == "more than 2 decimals for USD"


# --- limits and rules between fields --------------------------------------------------------------


def _with_items(count: int) -> dict[str, Any]:
    candidate = payload()
    item = candidate["shipments"][0]["items"][0]
    candidate["shipments"][0]["items"] = [copy.deepcopy(item) for _ in range(count)]
    return candidate


def test_at_most_100_items_per_shipment() -> None:
    assert check_payload(_with_items(100)).omitted == ()
    assert violation(_with_items(101)).message == (
        "contract_violation: shipments[0].items has more than 100 entries"
    )


def _token_shipments(count: int) -> dict[str, Any]:
    candidate = payload()
    shipment = candidate["shipments"][0]
    option = {"shipping_offer_token": "offer-1", "price": Decimal(0), "tax": Decimal(0)}
    candidate["shipments"] = [{**copy.deepcopy(shipment), "shipping_option": option}] * count
    return candidate


def test_at_most_5_shipments_and_only_one_with_a_service_level() -> None:
    assert check_payload(_token_shipments(5)).omitted == ()
    assert violation(_token_shipments(6)).detail == "has more than 5 entries"
    two = payload()
    two["shipments"] = two["shipments"] * 2
    assert violation(two).message == (
        "contract_violation: shipments has 2 shipments; a service_level_identifier allows only one"
    )
    mixed = _token_shipments(2)
    mixed["shipments"][0] = payload()["shipments"][0]
    assert violation(mixed).path == "shipments"


def test_a_shipping_option_needs_a_service_level_or_a_token() -> None:
    error = violation(changed(f"{OPTION}.service_level_identifier", ...))
    assert error.path == "shipments[0].shipping_option.service_level_identifier"
    assert error.detail == "is required"


def test_addons_must_name_a_parent_in_the_same_shipment() -> None:
    candidate = _with_items(2)
    items = candidate["shipments"][0]["items"]
    items[0]["external_item_id"], items[1]["external_item_id"] = "parent", "addon"
    items[1]["addon_parent_external_item_id"] = "parent"
    assert check_payload(candidate).omitted == ()
    items[1]["addon_parent_external_item_id"] = "nobody"
    assert violation(candidate).path == "shipments[0].items[1].addon_parent_external_item_id"
    items[1]["addon_parent_external_item_id"] = "addon"  # itself
    assert violation(candidate).path == "shipments[0].items[1].addon_parent_external_item_id"
    items[1]["addon_parent_external_item_id"] = "parent"
    items.append(copy.deepcopy(items[0]))  # a second "parent"
    assert "not unique" in violation(candidate).detail


def test_routing_strategies_are_the_three_published_ones() -> None:
    node = {"strategy": "prerouted", "fulfillment_node_id": "DC01"}
    assert check_payload(changed(f"{OPTION}.routing_strategy", node)).omitted == ()
    assert (
        check_payload(changed(f"{OPTION}.routing_strategy", {"strategy": "default"})).omitted == ()
    )
    error = violation(changed(f"{OPTION}.routing_strategy", {"strategy": "external"}))
    assert error.path == "shipments[0].shipping_option.routing_strategy.fulfillment_node_id"
    assert violation(changed(f"{OPTION}.routing_strategy", {"strategy": "nearest"})).path == (
        "shipments[0].shipping_option.routing_strategy"
    )


def test_an_extended_attribute_has_a_name_and_a_value_only() -> None:
    good = [{"name": "gift", "value": "yes"}]
    assert check_payload(changed("extended_attributes", good)).omitted == ()
    bad = [{"name": "gift", "value": "yes", "note": "no"}]
    assert check_payload(changed("extended_attributes", bad)).omitted == (
        "extended_attributes: extended_attributes[0].note is not allowed",
    )


def test_the_request_itself_must_be_an_object_with_shipments() -> None:
    assert (
        violation(changed("shipments", ...)).message == "contract_violation: shipments is required"
    )
