"""The part of a commercetools Order that the mapping reads, as typed pydantic models.

Why not `commercetools.platform.models.Order`: its marshmallow deserialisation costs about
5 ms per 5-line order (measured), which is most of the event app's CPU budget per order.
These models validate the same JSON shape in tens of microseconds and ignore the fields that
the mapping does not use. Tests check that the sample orders are also valid for the
`commercetools` package's own Order schema, so both stay in step with the real API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CtModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Money(CtModel):
    """`CentPrecisionMoney` or `HighPrecisionMoney` (commercetools' `TypedMoney`).

    Cent precision: `centAmount` in the currency's smallest unit, `fractionDigits` the
    currency's decimals. High precision (`type: "highPrecision"`): `preciseAmount` with its
    own `fractionDigits` (more than the currency's), and `centAmount` still in the currency's
    smallest unit (commercetools' rounding of `preciseAmount`). So 25.00345 USD is
    `centAmount 2500, preciseAmount 2500345, fractionDigits 5`. Read amounts through
    `event.money`, which knows the difference.
    """

    type: str = "centPrecision"
    cent_amount: int = Field(alias="centAmount")
    currency_code: str = Field(alias="currencyCode")
    fraction_digits: int = Field(2, alias="fractionDigits")
    precise_amount: int | None = Field(None, alias="preciseAmount")

    @property
    def is_high_precision(self) -> bool:
        return self.type == "highPrecision" and self.precise_amount is not None


class Reference(CtModel):
    id: str
    obj: dict[str, Any] | None = None


class SubRate(CtModel):
    name: str
    amount: float


class TaxRate(CtModel):
    name: str
    amount: float
    included_in_price: bool = Field(alias="includedInPrice")
    country: str
    state: str | None = None
    sub_rates: list[SubRate] = Field(default_factory=list, alias="subRates")


class TaxedItemPrice(CtModel):
    total_net: Money = Field(alias="totalNet")
    total_gross: Money = Field(alias="totalGross")
    total_tax: Money | None = Field(None, alias="totalTax")

    @property
    def tax_cents(self) -> int:
        if self.total_tax is not None:
            return self.total_tax.cent_amount
        return self.total_gross.cent_amount - self.total_net.cent_amount


class DiscountPortion(CtModel):
    discount: Reference
    discounted_amount: Money = Field(alias="discountedAmount")


class DiscountedPrice(CtModel):
    value: Money
    included_discounts: list[DiscountPortion] = Field(
        default_factory=list, alias="includedDiscounts"
    )


class DiscountedPricePerQuantity(CtModel):
    quantity: int
    discounted_price: DiscountedPrice = Field(alias="discountedPrice")


class ProductDiscountedPrice(CtModel):
    value: Money


class Price(CtModel):
    value: Money
    discounted: ProductDiscountedPrice | None = None


class Attribute(CtModel):
    name: str
    value: Any = None


class Variant(CtModel):
    sku: str | None = None
    attributes: list[Attribute] = Field(default_factory=list)

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


class LineItem(CtModel):
    id: str
    variant: Variant
    price: Price
    quantity: int
    tax_rate: TaxRate | None = Field(None, alias="taxRate")
    taxed_price: TaxedItemPrice | None = Field(None, alias="taxedPrice")
    discounted_price_per_quantity: list[DiscountedPricePerQuantity] = Field(
        default_factory=list, alias="discountedPricePerQuantity"
    )


class CustomLineItem(CtModel):
    id: str


class Address(CtModel):
    salutation: str | None = None
    first_name: str | None = Field(None, alias="firstName")
    last_name: str | None = Field(None, alias="lastName")
    street_name: str | None = Field(None, alias="streetName")
    street_number: str | None = Field(None, alias="streetNumber")
    additional_street_info: str | None = Field(None, alias="additionalStreetInfo")
    building: str | None = None
    apartment: str | None = None
    postal_code: str | None = Field(None, alias="postalCode")
    city: str | None = None
    region: str | None = None
    state: str | None = None
    country: str
    phone: str | None = None
    mobile: str | None = None


class ShippingInfo(CtModel):
    price: Money
    tax_rate: TaxRate | None = Field(None, alias="taxRate")
    taxed_price: TaxedItemPrice | None = Field(None, alias="taxedPrice")
    shipping_method: Reference | None = Field(None, alias="shippingMethod")
    discounted_price: DiscountedPrice | None = Field(None, alias="discountedPrice")


class DiscountOnTotalPrice(CtModel):
    discounted_amount: Money = Field(alias="discountedAmount")
    included_discounts: list[DiscountPortion] = Field(
        default_factory=list, alias="includedDiscounts"
    )


class DiscountCodeInfo(CtModel):
    discount_code: Reference = Field(alias="discountCode")


class Transaction(CtModel):
    id: str
    timestamp: str | None = None
    type: str
    amount: Money
    state: str


class PaymentMethodInfo(CtModel):
    payment_interface: str | None = Field(None, alias="paymentInterface")
    method: str | None = None


class Payment(CtModel):
    id: str
    interface_id: str | None = Field(None, alias="interfaceId")
    amount_planned: Money = Field(alias="amountPlanned")
    payment_method_info: PaymentMethodInfo = Field(
        default_factory=PaymentMethodInfo, alias="paymentMethodInfo"
    )
    transactions: list[Transaction] = Field(default_factory=list)
    created_at: str = Field(alias="createdAt")


class PaymentInfo(CtModel):
    payments: list[Reference] = Field(default_factory=list)


class Order(CtModel):
    id: str
    order_number: str | None = Field(None, alias="orderNumber")
    created_at: str = Field(alias="createdAt")
    locale: str | None = None
    customer_id: str | None = Field(None, alias="customerId")
    customer_email: str | None = Field(None, alias="customerEmail")
    total_price: Money = Field(alias="totalPrice")
    line_items: list[LineItem] = Field(default_factory=list, alias="lineItems")
    custom_line_items: list[CustomLineItem] = Field(default_factory=list, alias="customLineItems")
    shipping_address: Address | None = Field(None, alias="shippingAddress")
    billing_address: Address | None = Field(None, alias="billingAddress")
    shipping_info: ShippingInfo | None = Field(None, alias="shippingInfo")
    payment_info: PaymentInfo | None = Field(None, alias="paymentInfo")
    discount_on_total_price: DiscountOnTotalPrice | None = Field(None, alias="discountOnTotalPrice")
    discount_codes: list[DiscountCodeInfo] = Field(default_factory=list, alias="discountCodes")
    # how commercetools rounded line totals of high-precision prices (HalfEven by default)
    price_rounding_mode: str = Field("HalfEven", alias="priceRoundingMode")

    @property
    def payments(self) -> list[Reference]:
        return self.payment_info.payments if self.payment_info else []


# The expansions that the mapping needs, requested on every order fetch.
ORDER_EXPANSIONS: tuple[str, ...] = (
    "paymentInfo.payments[*]",
    "shippingInfo.shippingMethod",
    "lineItems[*].discountedPricePerQuantity[*].discountedPrice.includedDiscounts[*].discount",
    "discountOnTotalPrice.includedDiscounts[*].discount",
    "shippingInfo.discountedPrice.includedDiscounts[*].discount",
    "discountCodes[*].discountCode",
)
