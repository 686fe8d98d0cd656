"""Targeted rules of docs/mapping.md that the fixture table does not pin down on its own:
length limits of merged discounts, the price rounding mode, payments, processors,
product ids, and the `MappedOrder` interface."""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from event import customization
from event.errors import MappingError
from event.mapping import MappedOrder, MappingOptions, map_order, payload_to_json
from event.order import Order, Payment
from event.settings import OrderSettings

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "orders"


def _fixture(stem: str) -> dict[str, Any]:
    return json.loads((FIXTURE_DIR / f"{stem}.json").read_text(encoding="utf-8"))


def _mapped(order_json: dict[str, Any], **options: Any) -> MappedOrder:
    return map_order(Order.model_validate(order_json), MappingOptions(shop="storefront", **options))


def _payload(order_json: dict[str, Any], **options: Any) -> dict[str, Any]:
    body = payload_to_json(_mapped(order_json, **options).payload)
    return json.loads(body, parse_float=Decimal)


# ----------------------------------------------------------------------------- MappedOrder


def test_map_order_returns_a_frozen_mapped_order() -> None:
    mapped = _mapped(_fixture("14_payments_mixed")["order"])
    assert isinstance(mapped, MappedOrder)
    assert isinstance(mapped.payload, dict) and mapped.payload["currency"] == "USD"
    assert isinstance(mapped.omitted, tuple) and all(isinstance(o, str) for o in mapped.omitted)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mapped.omitted = ()  # type: ignore[misc]


def test_nothing_omitted_from_a_complete_order() -> None:
    assert _mapped(_fixture("01_single_item_usd_tax_excluded")["order"]).omitted == ()


# ----------------------------------------------------------------------------- merged discounts


def _line_discount_objs(order_json: dict[str, Any]) -> list[dict[str, Any]]:
    group = order_json["lineItems"][0]["discountedPricePerQuantity"][0]
    return [d["discount"]["obj"] for d in group["discountedPrice"]["includedDiscounts"]]


def test_merged_discount_ref_keeps_the_whole_refs_that_fit_in_256() -> None:
    order_json = copy.deepcopy(_fixture("18_two_cart_discounts_on_a_line")["order"])
    winter, member = _line_discount_objs(order_json)
    winter["key"], member["key"] = "w" * 200, "m" * 100  # 200 + 1 + 100 = 301 > 256
    mapped = _mapped(order_json)
    items = mapped.payload["shipments"][0]["items"]
    entry = items[0]["price"]["item_discount_info"][0]
    assert entry["discount_ref"] == "w" * 200  # "m" * 100 is left out whole, never cut
    assert entry["price_adjustment"] == Decimal("13.00")  # the money is all there
    line_id = order_json["lineItems"][0]["id"]
    note = (
        f"lineItems[{line_id}].discountedPricePerQuantity discount_ref: "
        f"'{'m' * 40}...' left out (256-character limit)"
    )
    assert mapped.omitted == (note,), "reported once, not once per unit"


def test_a_later_shorter_ref_still_fits() -> None:
    order_json = copy.deepcopy(_fixture("18_two_cart_discounts_on_a_line")["order"])
    group = order_json["lineItems"][0]["discountedPricePerQuantity"][0]
    portions = group["discountedPrice"]["includedDiscounts"]
    third = copy.deepcopy(portions[1])
    third["discount"]["id"] = third["discount"]["obj"]["id"] = (
        "c0ffee00-0000-4000-8000-000000000003"
    )
    third["discount"]["obj"]["key"] = "short"
    third["discountedAmount"]["centAmount"] = 0
    portions.append(third)
    portions[0]["discount"]["obj"]["key"] = "w" * 200
    portions[1]["discount"]["obj"]["key"] = "m" * 100
    entry = _mapped(order_json).payload["shipments"][0]["items"][0]["price"]["item_discount_info"]
    assert entry[0]["discount_ref"] == "w" * 200 + ",short"  # 206 characters


def test_merged_coupon_codes_and_descriptions_respect_their_limits() -> None:
    order_json = copy.deepcopy(_fixture("18_two_cart_discounts_on_a_line")["order"])
    codes = [c["discountCode"]["obj"] for c in order_json["discountCodes"]]
    codes[0]["code"], codes[1]["code"] = "A" * 40, "B" * 40  # 40 + 1 + 40 = 81 > 64
    _winter, member = _line_discount_objs(order_json)
    member["name"] = {"en-US": "x" * 1100}  # alone longer than 1024: left out, never cut
    mapped = _mapped(order_json)
    entry = mapped.payload["shipments"][0]["items"][0]["price"]["item_discount_info"][0]
    assert entry["coupon_code"] == "A" * 40
    assert entry["description"] == "Winter sale 15% off"
    assert len(mapped.omitted) == 2
    assert "coupon_code: 'BBBB" in mapped.omitted[0] and "(64-character limit)" in mapped.omitted[0]
    assert (
        "description: 'xxxx" in mapped.omitted[1] and "(1024-character limit)" in mapped.omitted[1]
    )


def test_one_discount_keeps_its_own_type_and_value() -> None:
    """A single discount is not 'merged': fixture 10's percentage entry stays as it is."""
    option = _payload(_fixture("10_shipping_discount")["order"])["shipments"][0]["shipping_option"]
    assert len(option["discount_info"]) == 1
    assert option["discount_info"][0]["type"] == "percentage"
    assert option["discount_info"][0]["original_value"] == 50


# ----------------------------------------------------------------------------- high precision


def test_price_rounding_mode_half_up_rounds_the_exact_half_up() -> None:
    order_json = copy.deepcopy(_fixture("20_high_precision_price")["order"])
    order_json["priceRoundingMode"] = "HalfUp"
    items = _payload(order_json)["shipments"][0]["items"]
    # screws: 2 x 1.0025 = 200.5 cents -> HalfUp 201 -> 1.01, 1.00 (HalfEven gave 1.00, 1.00)
    assert [it["price"]["item_price"] for it in items[3:]] == [Decimal("1.01"), 1]
    # cable: 75.01035 is not a half, HalfUp changes nothing
    assert [it["price"]["item_price"] for it in items[:3]] == [Decimal("25.01"), 25, 25]


def test_an_unknown_rounding_mode_fails_only_orders_that_need_it() -> None:
    order_json = copy.deepcopy(_fixture("20_high_precision_price")["order"])
    order_json["priceRoundingMode"] = "Banker"
    with pytest.raises(MappingError) as raised:
        _mapped(order_json)
    assert raised.value.reason == "unknown_rounding_mode"
    plain = copy.deepcopy(_fixture("01_single_item_usd_tax_excluded")["order"])
    plain["priceRoundingMode"] = "Banker"
    assert _mapped(plain).payload["shipments"][0]["items"][0]["price"]["item_price"] == 25


# ----------------------------------------------------------------------------- payments


def _order() -> Order:
    return Order.model_validate(_fixture("01_single_item_usd_tax_excluded")["order"])


def _pay(transactions: list[dict[str, Any]], **fields: Any) -> Payment:
    body: dict[str, Any] = {
        "id": "pay-1",
        "createdAt": "2024-05-14T09:20:55.000Z",
        "amountPlanned": {"centAmount": 3343, "currencyCode": "USD", "fractionDigits": 2},
        "paymentMethodInfo": {"paymentInterface": "stripe", "method": "credit_card"},
        "transactions": transactions,
        **fields,
    }
    return Payment.model_validate(body)


def _tx(kind: str, cents: int, state: str = "Success", **money: Any) -> dict[str, Any]:
    amount = {"centAmount": cents, "currencyCode": "USD", "fractionDigits": 2, **money}
    return {"id": f"tx-{kind}-{cents}", "type": kind, "state": state, "amount": amount}


def test_a_payment_with_a_successful_refund_reports_it() -> None:
    result = customization.newstore_payment(
        _pay([_tx("Charge", 3343), _tx("Refund", 500)]), _order()
    )
    assert result.entry is not None
    assert (result.entry["type"], result.entry["amount"]) == ("captured", Decimal("33.43"))
    assert result.omitted == (
        "payments[pay-1].transactions[tx-Refund-500]: successful Refund of 5.00 not sent",
    )


def test_an_authorization_alone_is_authorized_with_its_own_amount() -> None:
    result = customization.newstore_payment(
        _pay([_tx("Authorization", 2000), _tx("Authorization", 1343)]), _order()
    )
    assert result.entry is not None
    assert (result.entry["type"], result.entry["amount"]) == ("authorized", Decimal("33.43"))
    assert result.omitted == ()


def test_a_high_precision_transaction_amount_uses_cents_not_its_fraction_digits() -> None:
    hp = _tx("Charge", 3343, type="highPrecision", preciseAmount=3342512, fractionDigits=5)
    result = customization.newstore_payment(_pay([hp]), _order())
    assert result.entry is not None
    assert result.entry["amount"] == Decimal("33.43")  # not 0.03343


def test_a_transaction_in_another_currency_is_not_used() -> None:
    eur = _tx("Charge", 3343)
    eur["amount"]["currencyCode"] = "EUR"
    result = customization.newstore_payment(_pay([eur]), _order())
    assert result.entry is None
    assert result.omitted[0].startswith(
        "payments[pay-1].transactions[tx-Charge-3343]: Charge in EUR"
    )


def test_zero_amount_is_not_sent() -> None:
    result = customization.newstore_payment(_pay([_tx("Charge", 0)]), _order())
    assert result.entry is None
    assert result.omitted == ("payments[pay-1]: successful Charge amounts add up to 0; not sent",)


def test_long_method_and_interface_id() -> None:
    info = {"paymentInterface": "stripe", "method": "credit_card_" + "visa_" * 20}
    result = customization.newstore_payment(
        _pay([_tx("Charge", 3343)], paymentMethodInfo=info, interfaceId="p" * 129), _order()
    )
    assert result.entry is not None
    assert len(result.entry["method"]) <= 64
    assert result.entry["method"] == "credit_card" + "_visa" * 10  # whole words only: 61
    assert result.entry["correlation_ref"] == "pay-1"
    assert len(result.omitted) == 2


@pytest.mark.parametrize(
    ("interface", "processor", "noted"),
    [
        ("stripe", "stripe", False),
        ("STRIPE", "stripe", False),
        ("PayPal", "paypal", False),
        ("Cash", "cash", False),
        ("giftcard", "gift_card", False),
        ("Gift-Card", "gift_card", False),
        (None, "commercetools", False),
        ("  ", "commercetools", False),
        ("ctp-adyen-integration", "ctp-adyen-integration", False),
        ("Adyen Payments", "adyen_payments", False),
        # 41 characters: the whole words that fit in 32 ("commercetools-payment-connector", 31)
        ("commercetools-payment-connector-for-kredi", "commercetools-payment-connector", True),
        # one 40-character word: can only be cut at 32, and the note says so
        ("x" * 40, "x" * 32, True),
    ],
)
def test_processor_table_and_fallback(interface: str | None, processor: str, noted: bool) -> None:
    value, note = customization.processor_for(interface)
    assert value == processor
    assert 1 <= len(value) <= 32
    assert (note is not None) == noted


# ----------------------------------------------------------------------------- product ids


def _line(order_json: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return order_json["lineItems"][index]


def test_product_id_from_a_number_attribute() -> None:
    order_json = copy.deepcopy(_fixture("01_single_item_usd_tax_excluded")["order"])
    _line(order_json)["variant"]["attributes"] = [{"name": "ns-id", "value": 700123}]
    payload = _payload(order_json, product_id_source="attribute:ns-id")
    assert payload["shipments"][0]["items"][0]["product_id"] == "700123"


def test_attribute_source_does_not_need_a_sku() -> None:
    order_json = copy.deepcopy(_fixture("01_single_item_usd_tax_excluded")["order"])
    del _line(order_json)["variant"]["sku"]
    _line(order_json)["variant"]["attributes"] = [{"name": "ns-id", "value": "NS-1"}]
    payload = _payload(order_json, product_id_source="attribute:ns-id")
    assert payload["shipments"][0]["items"][0]["product_id"] == "NS-1"
    with pytest.raises(MappingError) as raised:
        _mapped(order_json)  # the default source, sku
    assert raised.value.reason == "missing_sku"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (["a", "b"], "missing_product_id"),  # a set attribute
        (True, "missing_product_id"),
        ({"en-US": "localized text"}, "missing_product_id"),
        ("", "missing_product_id"),
        ("N" * 65, "product_id_too_long"),
    ],
)
def test_unusable_product_id_attributes_are_permanent_errors(value: Any, reason: str) -> None:
    order_json = copy.deepcopy(_fixture("01_single_item_usd_tax_excluded")["order"])
    _line(order_json)["variant"]["attributes"] = [{"name": "ns-id", "value": value}]
    with pytest.raises(MappingError) as raised:
        _mapped(order_json, product_id_source="attribute:ns-id")
    assert raised.value.reason == reason
    assert _line(order_json)["id"] in raised.value.message


def test_a_missing_attribute_names_the_line() -> None:
    fixture = _fixture("97_error_product_id_attribute_missing")
    with pytest.raises(MappingError) as raised:
        _mapped(fixture["order"], product_id_source="attribute:newstore-product-id")
    assert _line(fixture["order"], 1)["id"] in raised.value.message
    assert "'newstore-product-id'" in raised.value.message


@pytest.mark.parametrize("source", ["", "attribute:", "SKU", "attr:ns-id"])
def test_invalid_product_id_sources_are_refused(source: str, monkeypatch) -> None:
    with pytest.raises(ValueError):
        MappingOptions(shop="storefront", product_id_source=source)
    monkeypatch.setenv("NEW_STORE_PRODUCT_ID_SOURCE", source)
    with pytest.raises(ValueError):
        OrderSettings()


def test_the_product_id_setting(monkeypatch) -> None:
    monkeypatch.delenv("NEW_STORE_PRODUCT_ID_SOURCE", raising=False)
    assert OrderSettings().new_store_product_id_source == "sku"
    monkeypatch.setenv("NEW_STORE_PRODUCT_ID_SOURCE", "attribute:newstore-product-id")
    assert OrderSettings().new_store_product_id_source == "attribute:newstore-product-id"
