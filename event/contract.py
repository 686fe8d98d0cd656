"""NewStore's published contract for an Order Injection payload (`POST /v0/d/fulfill_order`).

The models below are NewStore's Swagger definitions (`InjectedOrderRequest` and the
`InjectedOrder*` definitions it reaches, plus `GiftWrapping1`), one TypedDict per definition
and named like it, with every constraint that the Swagger publishes: required properties,
types, lengths, `minItems`/`maxItems`, enums, minimums and maximums. They are validated with
pydantic v2 over the payload dict as it is (nothing is converted or defaulted), and
`tests/contract/test_newstore_contract.py` fails when they and the Swagger disagree.

How the Swagger is read (where it says less than it means):
- The Swagger leaves four slots untyped (`shipments.items: {}`, `shipping_option: {}`,
  `routing_strategy` and the discount arrays' `items: {type: object}`); `SWAGGER_BINDINGS`
  names the definitions that fill them. The discount definitions come in two alternatives
  whose `type` defaults to `fixed` (`InjectedOrderDiscountInfo`) and `percentage`
  (`InjectedOrderDiscountInfo1`, `original_value` <= 100): an entry is the one its `type`
  names. The shipping options: `InjectedOrderShippingOption` (a `service_level_identifier`)
  and `InjectedOrderShippingOption1` (a `shipping_offer_token`).
- `multipleOf: 0.01` on a money amount means "the currency's decimals": the operation's
  description says that decimals depend on the currency (more than 2 for USD are invalid),
  which a literal 0.01 could not express for JPY (0) or KWD (3). Amounts have at most
  `currency_decimals(currency)` decimals (ISO 4217 minor units; 2 unless
  `CURRENCY_DECIMALS` says otherwise, also for codes without a minor unit such as XAU, to
  which the Swagger's 0.01 applies literally).
- `BEYOND_SWAGGER` lists the few constraints that are published elsewhere (the
  "Importing orders" guide, a property's description) and are checked too.
- Properties the Swagger does not define are left alone (it does not forbid them).
- JSON types are strict: a number is an int, a float or a Decimal (never a bool or a
  string), a string is a str; an explicit `null` is a wrong type, not an absent value.
- The rules between fields that fulfill_order's description states are checked on the
  whole payload: a `service_level_identifier` allows a single shipment, and an add-on
  (`addon_parent_external_item_id`) names a non-add-on item of its own shipment, itself
  and its parent having an `external_item_id` unique in the order.

`check_payload` returns the payload without the optional values that break the contract,
and raises `ContractViolation` for the others. What "optional" means here: a property that
its definition does not require AND that is in `OMITTABLE`: descriptive values whose loss
loses information but changes neither what the order costs, what was paid, nor how it is
fulfilled (the customer's email and name, an address's name parts, city, state, zip code
and phone, a discount's coupon code and description, ...). Such a value is dropped whole,
never truncated (a cut email is a wrong email); inside an optional object only the bad
field goes (an over-long `billing_address.title` drops the title, not the address). The
innermost omittable property on the bad value's path is the one dropped. Everything else
is required in effect, even where the Swagger makes it optional: the discount arrays
(dropping one changes the totals NewStore checks), payments, `price_method`, routing, and
any required property inside an optional object (`shipping_address.address_line_1`);
array entries are never dropped one by one. A value the Swagger requires that is missing or
wrong raises, always.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Required

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    with_config,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# pydantic needs typing_extensions' TypedDict before Python 3.12
from typing_extensions import TypedDict

from event.errors import MappingError

# --- currencies -------------------------------------------------------------------------


def _codes(text: str) -> list[str]:
    return text.split()


# The Swagger's `Currency2` enum.
CURRENCIES: frozenset[str] = frozenset(
    _codes(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL "
        "BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF "
        "DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG "
        "HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP "
        "LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN "
        "NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG "
        "SEK SGD SHP SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH "
        "UGX USD USN UYI UYU UYW UZS VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF "
        "XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWL"
    )
)

# ISO 4217 minor units of the currencies above that do not have 2.
CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(
        _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"), 0
    ),
    **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
    **dict.fromkeys(_codes("CLF UYW"), 4),
}


def currency_decimals(currency: str) -> int:
    """The decimals a money amount in `currency` may have."""
    return CURRENCY_DECIMALS.get(currency, 2)


# --- how the contract reads the Swagger ---------------------------------------------------

# The definitions that fill the Swagger's untyped slots: (definition, property) -> the
# definitions its value (or, for an array, each entry) is one of.
SWAGGER_BINDINGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("InjectedOrderRequest", "shipments"): ("InjectedOrderShipment",),
    ("InjectedOrderShipment", "shipping_option"): (
        "InjectedOrderShippingOption",
        "InjectedOrderShippingOption1",
    ),
    **{
        (definition, prop): ("InjectedOrderDiscountInfo", "InjectedOrderDiscountInfo1")
        for definition, prop in (
            ("InjectedOrderShipmentItemPrice", "item_discount_info"),
            ("InjectedOrderShipmentItemPrice", "item_order_discount_info"),
            ("InjectedOrderShippingOption", "discount_info"),
            ("InjectedOrderShippingOption1", "discount_info"),
        )
    },
    **{
        (option, "routing_strategy"): (
            "InjectedOrderRoutingStrategy",
            "InjectedOrderRoutingStrategy1",
            "InjectedOrderRoutingStrategy2",
        )
        for option in ("InjectedOrderShippingOption", "InjectedOrderShippingOption1")
    },
}

GUIDE = "https://docs.newstore.net/developers/guides/importing-orders"


@dataclass(frozen=True)
class Published:
    """A constraint that is published outside the Swagger's keywords: its value, and where."""

    value: Any
    source: str  # "swagger" (a description in the Swagger file) or a docs.newstore.net page
    quote: str


# (definition, property, keyword) -> the constraint the contract checks on top of the Swagger.
BEYOND_SWAGGER: dict[tuple[str, str, str], Published] = {
    ("InjectedOrderRequest", "shipments", "maxItems"): Published(
        5, GUIDE, "An order can contain up to 5 shipments"
    ),
    ("InjectedOrderShipment", "items", "maxItems"): Published(
        100, GUIDE, "each shipment can contain up to a 100 items"
    ),
    ("InjectedOrderItemTaxLine", "rate", "maximum"): Published(
        1, "swagger", "Must be in form of ratio between 0 and 1, not percentage."
    ),
    **{
        (option, prop, "money"): Published(
            True,
            "swagger",
            "the correct number of decimal places for monetary values of prices",
        )
        for option in ("InjectedOrderShippingOption", "InjectedOrderShippingOption1")
        for prop in ("price", "tax")
    },
}

_ADDRESS_DETAILS = (
    "address_line_2 city first_name last_name phone salutation state suffix title zip_code"
)
_DISCOUNTS = (
    "shipments[].items[].price.item_discount_info[]",
    "shipments[].items[].price.item_order_discount_info[]",
    "shipments[].shipping_option.discount_info[]",
)

# The optional properties that `check_payload` may leave out (paths: `[]` for any index).
OMITTABLE: frozenset[str] = frozenset(
    [
        *_codes(
            "associate_id customer_email customer_language customer_name "
            "external_customer_id extended_attributes ip_address placed_at store_id "
            "shipments[].items[].extended_attributes "
            "shipments[].items[].price.item_tax_lines[].country_code "
            "payments[].wallet"
        ),
        *(
            f"{address}.{p}"
            for address in ("shipping_address", "billing_address")
            for p in _codes(_ADDRESS_DETAILS)
        ),
        *(f"{discounts}.{p}" for discounts in _DISCOUNTS for p in ("coupon_code", "description")),
    ]
)

# --- value types ----------------------------------------------------------------------------


def _json_number(value: Any) -> Decimal:
    """A JSON number as an exact Decimal (a float as its shortest repr: 19.99, not binary)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("number_type", "not a number")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise PydanticCustomError("finite_number", "not a finite number")
    return number


def _money(value: Decimal, info: ValidationInfo) -> Decimal:
    context = info.context or {}
    decimals = context.get("decimals")
    if decimals is not None:
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise PydanticCustomError(
                "money_decimals",
                "more than {decimals} decimals for {currency}",
                {"decimals": decimals, "currency": context.get("currency")},
            )
    return value


def _currency(value: str) -> str:
    if value not in CURRENCIES:
        raise PydanticCustomError("currency", "not a currency of the contract")
    return value


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _date_time(value: str) -> str:
    if _RFC3339.fullmatch(value):
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            return value
        except ValueError:
            pass
    raise PydanticCustomError("date_time", "not an RFC 3339 date-time")


MONEY_MARK = "x-currency-decimals"

# The bounds come before the BeforeValidator, so that they apply to (and are written into the
# JSON schema of) the Decimal itself.
NonNegativeMoney = Annotated[
    Decimal,
    Field(ge=0),
    BeforeValidator(_json_number),
    AfterValidator(_money),
    Field(json_schema_extra={MONEY_MARK: True}),
]
PositiveMoney = Annotated[
    Decimal,
    Field(gt=0),
    BeforeValidator(_json_number),
    AfterValidator(_money),
    Field(json_schema_extra={MONEY_MARK: True}),
]
NonNegativeNumber = Annotated[Decimal, Field(ge=0), BeforeValidator(_json_number)]
Percentage = Annotated[Decimal, Field(ge=0, le=100), BeforeValidator(_json_number)]
Ratio = Annotated[Decimal, Field(ge=0, le=1), BeforeValidator(_json_number)]
Currency = Annotated[
    str, AfterValidator(_currency), WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES)})
]
DateTime = Annotated[
    str, AfterValidator(_date_time), WithJsonSchema({"type": "string", "format": "date-time"})
]

_definition = with_config(ConfigDict(strict=True))

# --- the definitions ------------------------------------------------------------------------


@with_config(ConfigDict(strict=True, extra="forbid", json_schema_extra={"maxProperties": 2}))
class InjectedOrderExtendedAttribute(TypedDict, total=False):
    # maxProperties 2 with both properties required: no other property (extra="forbid")
    name: Required[Annotated[str, Field(min_length=1, max_length=100)]]
    value: Required[Annotated[str, Field(max_length=8192)]]


ExtendedAttributes = Annotated[list[InjectedOrderExtendedAttribute], Field(max_length=100)]


@_definition
class InjectedOrderAddress(TypedDict, total=False):
    address_line_1: Required[Annotated[str, Field(min_length=1, max_length=128)]]
    address_line_2: Annotated[str, Field(max_length=256)]
    city: Annotated[str, Field(max_length=64)]
    country: Required[Annotated[str, Field(min_length=2, max_length=2)]]
    first_name: Annotated[str, Field(max_length=64)]
    last_name: Annotated[str, Field(max_length=64)]
    phone: Annotated[str, Field(max_length=128)]
    salutation: Annotated[str, Field(max_length=32)]
    state: Annotated[str, Field(max_length=32)]
    suffix: Annotated[str, Field(max_length=32)]
    title: Annotated[str, Field(max_length=32)]
    zip_code: Annotated[str, Field(max_length=32)]


@_definition
class InjectedOrderDiscountInfo(TypedDict, total=False):
    coupon_code: Annotated[str, Field(max_length=64)]
    description: Annotated[str, Field(max_length=1024)]
    discount_ref: Required[Annotated[str, Field(min_length=1, max_length=256)]]
    original_value: Required[NonNegativeNumber]
    price_adjustment: Required[NonNegativeMoney]
    type: Required[Literal["fixed"]]


@_definition
class InjectedOrderDiscountInfo1(TypedDict, total=False):
    coupon_code: Annotated[str, Field(max_length=64)]
    description: Annotated[str, Field(max_length=1024)]
    discount_ref: Required[Annotated[str, Field(min_length=1, max_length=256)]]
    original_value: Required[Percentage]
    price_adjustment: Required[NonNegativeMoney]
    type: Required[Literal["percentage"]]


_DISCOUNT_TYPES = {"fixed": "InjectedOrderDiscountInfo", "percentage": "InjectedOrderDiscountInfo1"}


def _discount_kind(value: Any) -> str | None:
    kind: Any = value.get("type") if isinstance(value, dict) else None
    return _DISCOUNT_TYPES.get(kind) if isinstance(kind, str) else None


DiscountInfo = Annotated[
    Annotated[InjectedOrderDiscountInfo, Tag("InjectedOrderDiscountInfo")]
    | Annotated[InjectedOrderDiscountInfo1, Tag("InjectedOrderDiscountInfo1")],
    Discriminator(
        _discount_kind,
        custom_error_type="discount_type",
        custom_error_message="not a discount of type 'fixed' or 'percentage'",
    ),
]
Discounts = Annotated[list[DiscountInfo], Field(max_length=1)]


@_definition
class InjectedOrderItemTaxLine(TypedDict, total=False):
    amount: Required[NonNegativeMoney]
    country_code: Annotated[str, Field(max_length=2)]
    name: Required[str]
    rate: Required[Ratio]


TaxLines = Annotated[list[InjectedOrderItemTaxLine], Field(max_length=100)]


@_definition
class GiftWrapping1(TypedDict, total=False):
    item_price: NonNegativeMoney
    item_tax_lines: TaxLines
    message: Annotated[str, Field(max_length=512)]
    tax_class: Annotated[str, Field(max_length=256)]


@_definition
class InjectedOrderShipmentItemPrice(TypedDict, total=False):
    group_ref: Annotated[str, Field(max_length=64)]
    item_discount_info: Discounts
    item_list_price: Required[NonNegativeMoney]
    item_order_discount_info: Discounts
    item_price: Required[NonNegativeMoney]
    item_tax_lines: Required[TaxLines]
    pricebook: Annotated[str, Field(max_length=64)]


@_definition
class InjectedOrderShipmentItem(TypedDict, total=False):
    addon_parent_external_item_id: Annotated[str, Field(min_length=1, max_length=64)]
    extended_attributes: ExtendedAttributes
    external_item_id: Required[Annotated[str, Field(min_length=1, max_length=64)]]
    gift_wrapping: GiftWrapping1
    price: Required[InjectedOrderShipmentItemPrice]
    product_id: Required[Annotated[str, Field(min_length=1, max_length=64)]]


@_definition
class InjectedOrderRoutingStrategy(TypedDict, total=False):
    strategy: Required[Literal["default"]]


@_definition
class InjectedOrderRoutingStrategy1(TypedDict, total=False):
    fulfillment_node_id: Required[Annotated[str, Field(min_length=1, max_length=256)]]
    strategy: Required[Literal["prerouted"]]


@_definition
class InjectedOrderRoutingStrategy2(TypedDict, total=False):
    fulfillment_node_id: Required[Annotated[str, Field(min_length=1, max_length=256)]]
    strategy: Required[Literal["external"]]


_STRATEGIES = {
    "default": "InjectedOrderRoutingStrategy",
    "prerouted": "InjectedOrderRoutingStrategy1",
    "external": "InjectedOrderRoutingStrategy2",
}


def _strategy_kind(value: Any) -> str | None:
    kind: Any = value.get("strategy") if isinstance(value, dict) else None
    return _STRATEGIES.get(kind) if isinstance(kind, str) else None


RoutingStrategy = Annotated[
    Annotated[InjectedOrderRoutingStrategy, Tag("InjectedOrderRoutingStrategy")]
    | Annotated[InjectedOrderRoutingStrategy1, Tag("InjectedOrderRoutingStrategy1")]
    | Annotated[InjectedOrderRoutingStrategy2, Tag("InjectedOrderRoutingStrategy2")],
    Discriminator(
        _strategy_kind,
        custom_error_type="routing_strategy",
        custom_error_message="not a routing strategy 'default', 'prerouted' or 'external'",
    ),
]


@_definition
class InjectedOrderShippingOption(TypedDict, total=False):
    discount_info: Discounts
    price: Required[NonNegativeMoney]
    routing_strategy: RoutingStrategy
    service_level_identifier: Required[Annotated[str, Field(min_length=1, max_length=64)]]
    tax: Required[NonNegativeMoney]


@_definition
class InjectedOrderShippingOption1(TypedDict, total=False):
    discount_info: Discounts
    price: Required[NonNegativeMoney]
    routing_strategy: RoutingStrategy
    shipping_offer_token: Required[Annotated[str, Field(min_length=1, max_length=8192)]]
    tax: Required[NonNegativeMoney]


def _option_kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "shipping_offer_token" in value:
        return "InjectedOrderShippingOption1"
    return "InjectedOrderShippingOption"


ShippingOption = Annotated[
    Annotated[InjectedOrderShippingOption, Tag("InjectedOrderShippingOption")]
    | Annotated[InjectedOrderShippingOption1, Tag("InjectedOrderShippingOption1")],
    Discriminator(
        _option_kind,
        custom_error_type="shipping_option",
        custom_error_message="not a shipping option (an object)",
    ),
]


@_definition
class InjectedOrderShipment(TypedDict, total=False):
    items: Required[Annotated[list[InjectedOrderShipmentItem], Field(min_length=1, max_length=100)]]
    shipping_option: Required[ShippingOption]


@_definition
class InjectedOrderPayment(TypedDict, total=False):
    amount: Required[PositiveMoney]
    correlation_ref: Required[Annotated[str, Field(min_length=1, max_length=128)]]
    metadata: Annotated[dict[str, Any], Field(max_length=100)]
    method: Required[Annotated[str, Field(min_length=1, max_length=64)]]
    processed_at: Required[DateTime]
    processor: Required[Annotated[str, Field(min_length=1, max_length=32)]]
    type: Required[Literal["authorized", "captured"]]
    wallet: Annotated[str, Field(min_length=1, max_length=64)]


@_definition
class InjectedOrderRequest(TypedDict, total=False):
    associate_id: Annotated[str, Field(max_length=256)]
    billing_address: InjectedOrderAddress
    channel_name: Required[Annotated[str, Field(min_length=1, max_length=64)]]
    channel_type: Required[Literal["web", "mobile", "store"]]
    currency: Required[Currency]
    customer_email: Annotated[str, Field(min_length=1, max_length=64)]
    customer_language: Annotated[str, Field(max_length=2)]
    customer_name: Annotated[str, Field(min_length=1, max_length=128)]
    extended_attributes: ExtendedAttributes
    external_customer_id: Annotated[str, Field(max_length=64)]
    external_id: Required[Annotated[str, Field(min_length=1, max_length=64)]]
    ip_address: Any
    is_fulfilled: bool
    is_historical: bool
    is_offline: bool
    is_preconfirmed: bool
    notification_blacklist: list[str]
    payments: Annotated[list[InjectedOrderPayment], Field(max_length=40)]
    placed_at: DateTime
    price_method: Literal["tax_included", "tax_excluded"]
    shipments: Required[Annotated[list[InjectedOrderShipment], Field(min_length=1, max_length=5)]]
    shipping_address: InjectedOrderAddress
    shop: Required[Annotated[str, Field(min_length=1, max_length=128)]]
    shop_locale: Required[Annotated[str, Field(min_length=1, max_length=128)]]
    store_id: Annotated[str, Field(max_length=256)]


_ADAPTER: TypeAdapter[InjectedOrderRequest] = TypeAdapter(InjectedOrderRequest)
# pydantic names the member of a union in an error's location: these names are not keys
_TAGS = frozenset(name for names in SWAGGER_BINDINGS.values() if len(names) > 1 for name in names)


class ContractJsonSchema(GenerateJsonSchema):
    """JSON numbers for the Decimal fields (pydantic writes a Decimal as number-or-string)."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        json_schema: JsonSchemaValue = {"type": "number"}
        for key, keyword in (
            ("ge", "minimum"),
            ("gt", "exclusiveMinimum"),
            ("le", "maximum"),
            ("lt", "exclusiveMaximum"),
            ("multiple_of", "multipleOf"),
        ):
            if schema.get(key) is not None:
                json_schema[keyword] = float(schema[key])  # type: ignore[literal-required]
        return json_schema


def json_schema() -> dict[str, Any]:
    """The contract as JSON Schema (draft 2020-12); `$defs` named like the Swagger's."""
    return _ADAPTER.json_schema(schema_generator=ContractJsonSchema)


# --- the check ------------------------------------------------------------------------------


class ContractViolation(MappingError):
    """A value NewStore's contract refuses, and that the payload cannot do without."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__("contract_violation", f"contract_violation: {path} {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class ContractCheck:
    """The payload to send, and what was left out of it (`"<json path>: <why>"` each)."""

    payload: dict[str, Any]
    omitted: tuple[str, ...]


def check_payload(payload: dict[str, Any]) -> ContractCheck:
    """The payload without its optional values that break the contract (see the module's
    docstring); `ContractViolation` for the first other value that does.

    Pure and deterministic: the input is never changed (a copy is returned when something
    is left out, the input itself otherwise), and the same input gives the same answer.
    """
    currency = payload.get("currency") if isinstance(payload, dict) else None
    context: dict[str, Any] = {"currency": currency}
    if isinstance(currency, str) and currency in CURRENCIES:
        context["decimals"] = currency_decimals(currency)
    current = payload
    omitted: list[str] = []
    # Dropping optional properties cannot create new errors; the loop's bound is a guard.
    for _ in range(3):
        try:
            _ADAPTER.validate_python(current, context=context)
        except ValidationError as error:
            drops = _drops(current, error)
            if current is payload:
                current = copy.deepcopy(payload)
            for keys, reason in drops:
                _delete(current, keys)
                omitted.append(reason)
            continue
        _check_rules(current)
        return ContractCheck(current, tuple(omitted))
    raise AssertionError("the payload still breaks the contract after dropping values")


def _drops(payload: Any, error: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """What to delete for each error (the payload's keys to it, and why); raise for an error
    that no optional property can absorb."""
    drops: dict[tuple[str | int, ...], str] = {}
    for item in error.errors(include_url=False):
        keys = _keys(payload, item["loc"])
        path, detail = _path(keys) or "<payload>", _detail(item)
        target = _omittable_prefix(keys)
        if target is None:
            raise ContractViolation(path, detail) from None
        if not any(target[: len(done)] == done for done in drops):
            dropped = _path(target)
            drops[target] = f"{path}: {detail}" if target == keys else f"{dropped}: {path} {detail}"
    return list(drops.items())


def _keys(payload: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The error location as keys into the payload (pydantic adds the union tags)."""
    keys: list[str | int] = []
    node = payload
    for part in loc:
        is_key = isinstance(node, dict) and part in node
        if not is_key and isinstance(part, str) and part in _TAGS:
            continue
        keys.append(part)
        if is_key or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
        else:
            node = None
    return tuple(keys)


def _path(keys: tuple[str | int, ...]) -> str:
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _pattern(keys: tuple[str | int, ...]) -> str:
    """The path with `[]` for every index, as `OMITTABLE` writes it."""
    text = ""
    for key in keys:
        text += "[]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def _omittable_prefix(keys: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """The innermost omittable property at or above `keys`, or None."""
    for end in range(len(keys), 0, -1):
        prefix = keys[:end]
        if isinstance(prefix[-1], str) and _pattern(prefix) in OMITTABLE:
            return prefix
    return None


def _delete(payload: dict[str, Any], keys: tuple[str | int, ...]) -> None:
    node: Any = payload
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]


def _detail(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_too_long":
        return f"longer than {ctx['max_length']}"
    if kind == "string_too_short":
        return "empty" if ctx["min_length"] == 1 else f"shorter than {ctx['min_length']}"
    if kind in ("too_long", "too_short"):
        count = ctx["max_length"] if kind == "too_long" else ctx["min_length"]
        entries = "entry" if count == 1 else "entries"
        return f"has {'more' if kind == 'too_long' else 'fewer'} than {count} {entries}"
    if kind == "greater_than_equal":
        return f"less than {ctx['ge']}"
    if kind == "greater_than":
        return f"not greater than {ctx['gt']}"
    if kind == "less_than_equal":
        return f"greater than {ctx['le']}"
    if kind == "literal_error":
        return f"not one of {ctx['expected']}"
    if kind == "extra_forbidden":
        return "is not allowed"
    simple = {
        "string_type": "not a string",
        "bool_type": "not a boolean",
        "list_type": "not an array",
        "dict_type": "not an object",
    }
    return simple.get(kind) or str(error["msg"])


# --- rules between fields ---------------------------------------------------------------------


def _check_rules(payload: dict[str, Any]) -> None:
    """The documented rules that no single property carries (fulfill_order's description
    and the `service_level_identifier` property's)."""
    shipments = payload["shipments"]
    with_level = [
        i for i, s in enumerate(shipments) if "service_level_identifier" in s["shipping_option"]
    ]
    if with_level and len(shipments) > 1:
        raise ContractViolation(
            "shipments",
            f"has {len(shipments)} shipments; a service_level_identifier allows only one",
        )
    _check_addons(shipments)


def _check_addons(shipments: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    linked: set[str] = set()
    for shipment in shipments:
        for item in shipment["items"]:
            counts[item["external_item_id"]] = counts.get(item["external_item_id"], 0) + 1
    for i, shipment in enumerate(shipments):
        items = shipment["items"]
        parents = {
            item["external_item_id"]
            for item in items
            if "addon_parent_external_item_id" not in item
        }
        for j, item in enumerate(items):
            parent = item.get("addon_parent_external_item_id")
            if parent is None:
                continue
            path = f"shipments[{i}].items[{j}].addon_parent_external_item_id"
            if parent == item["external_item_id"] or parent not in parents:
                raise ContractViolation(
                    path, f"{parent!r} is not a non-add-on item of the same shipment"
                )
            linked.update((parent, item["external_item_id"]))
    for external_item_id in sorted(linked):
        if counts[external_item_id] > 1:
            raise ContractViolation(
                "shipments",
                f"external_item_id {external_item_id!r} of an add-on or its parent is not "
                "unique in the order",
            )
