"""A small, realistic sandbox catalog and order generator, shared by the demo, tests and benchmarks.

Everything is derived from a seed number, so a run can be repeated exactly.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

CURRENCY = "USD"
TAX_RATE = 0.08875  # New York City sales tax

PRODUCTS: list[tuple[str, str, int]] = [  # (sku, name, price in cents)
    ("TSHIRT-BLK-M", "Organic T-shirt, black, M", 2900),
    ("TSHIRT-WHT-L", "Organic T-shirt, white, L", 2900),
    ("HOODIE-GRY-M", "Merino hoodie, grey, M", 8900),
    ("SNEAKER-42", "Canvas sneaker, EU 42", 6450),
    ("CAP-NAVY", "Baseball cap, navy", 1999),
    ("SOCKS-3PK", "Running socks, 3 pairs", 1500),
    ("JACKET-OLV-L", "Waxed jacket, olive, L", 18900),
    ("TOTE-NAT", "Canvas tote bag", 1250),
]
SHIPPING_METHODS: list[tuple[str, str, int]] = [  # (key = NewStore service level, name, price)
    ("GROUND", "Ground (3-5 days)", 595),
    ("EXPRESS", "Express (next day)", 1495),
]
FULFILLMENT_NODES = ["US-EAST-DC", "US-WEST-DC", "NYC-STORE-01"]
# names the sandbox's Location API serves (its own assumption: NewStore's documented list
# has none); the demo's per-store channels are named after them
LOCATION_NAMES = {
    "US-EAST-DC": "East Coast DC",
    "US-WEST-DC": "West Coast DC",
    "NYC-STORE-01": "New York Store",
}
CUSTOMERS = [
    ("Ada", "Lovelace", "ada@example.com", "10 Downing Ave", "New York", "NY", "10001"),
    ("Grace", "Hopper", "grace@example.com", "500 Navy Yard", "Arlington", "VA", "22202"),
    ("Alan", "Turing", "alan@example.com", "1 Bletchley Rd", "Boston", "MA", "02110"),
    ("Katherine", "Johnson", "kj@example.com", "77 Langley Blvd", "Hampton", "VA", "23666"),
]


def product_id(sku: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-product/{sku}"))


def shipping_method_id(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-shipping/{key}"))


def money(cents: int) -> Json:
    return {
        "type": "centPrecision",
        "currencyCode": CURRENCY,
        "centAmount": cents,
        "fractionDigits": 2,
    }


def commercetools_seed() -> Json:
    """Products and shipping methods for the commercetools emulator."""
    products = [
        {
            "id": product_id(sku),
            "key": sku.lower(),
            "version": 1,
            "productType": {"typeId": "product-type", "id": "sandbox-apparel"},
            "masterData": {
                "published": True,
                "current": {
                    "name": {"en-US": name},
                    "slug": {"en-US": sku.lower()},
                    "masterVariant": {"id": 1, "sku": sku, "prices": [{"value": money(price)}]},
                    "variants": [],
                },
            },
        }
        for sku, name, price in PRODUCTS
    ]
    shipping_methods = [
        {
            "id": shipping_method_id(key),
            "key": key,
            "version": 1,
            "name": name,
            "taxCategory": {"typeId": "tax-category", "id": "sandbox-standard"},
            "zoneRates": [],
            "isDefault": key == "GROUND",
        }
        for key, name, _ in SHIPPING_METHODS
    ]
    return {"products": products, "shippingMethods": shipping_methods}


def newstore_seed(atp_by_node: dict[str, int] | None = None) -> Json:
    """The same SKUs as NewStore products, with stock at every fulfillment node."""
    rng = random.Random(7)
    stock = [
        {
            "product_id": sku,
            "sku": sku,
            "fulfillment_node_id": node,
            "atp": (atp_by_node or {}).get(node, rng.randint(0, 40)),
        }
        for sku, _, _ in PRODUCTS
        for node in FULFILLMENT_NODES
    ]
    return {
        "products": [{"product_id": sku, "sku": sku} for sku, _, _ in PRODUCTS],
        "stock": stock,
        "locations": [{"id": node, "name": name} for node, name in LOCATION_NAMES.items()],
        "service_levels": [key for key, _, _ in SHIPPING_METHODS],
    }


@dataclass(frozen=True)
class OrderDraft:
    """An order for the commercetools emulator, and the payment that it references."""

    order: Json
    payment: Json


def order_draft(number: int, rng: random.Random | None = None) -> OrderDraft:
    """A realistic order: 1-3 lines, US tax excluded, shipping, one captured card payment."""
    rng = rng or random.Random(number)
    first, last, email, street, city, state, zip_code = CUSTOMERS[number % len(CUSTOMERS)]
    lines = [_line_item(sku, name, price, rng.randint(1, 3)) for sku, name, price in _pick(rng)]
    key, method_name, shipping_cents = SHIPPING_METHODS[number % len(SHIPPING_METHODS)]
    shipping_tax = round(shipping_cents * TAX_RATE)
    net = sum(line["totalPrice"]["centAmount"] for line in lines) + shipping_cents
    tax = sum(line["taxedPrice"]["totalTax"]["centAmount"] for line in lines) + shipping_tax
    address = {
        "firstName": first,
        "lastName": last,
        "streetName": street.split(" ", 1)[1],
        "streetNumber": street.split(" ", 1)[0],
        "city": city,
        "state": state,
        "postalCode": zip_code,
        "country": "US",
        "email": email,
    }
    payment = _payment(net + tax, number)
    order = {
        "orderNumber": f"SBX-{number:06d}",
        "customerEmail": email,
        "customerId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-customer/{email}")),
        "locale": "en-US",
        "orderState": "Open",
        "totalPrice": money(net + tax),
        "taxedPrice": {
            "totalNet": money(net),
            "totalGross": money(net + tax),
            "totalTax": money(tax),
        },
        "taxMode": "Platform",
        "lineItems": lines,
        "shippingAddress": address,
        "billingAddress": address,
        "shippingInfo": {
            "shippingMethodName": method_name,
            "price": money(shipping_cents),
            "shippingRate": {"price": money(shipping_cents), "tiers": []},
            "taxRate": _tax_rate(),
            "taxedPrice": {
                "totalNet": money(shipping_cents),
                "totalGross": money(shipping_cents + shipping_tax),
                "totalTax": money(shipping_tax),
            },
            "shippingMethod": {"typeId": "shipping-method", "id": shipping_method_id(key)},
            "shippingMethodState": "MatchesCart",
            "deliveries": [],
        },
        "paymentInfo": {"payments": [{"typeId": "payment", "id": payment["id"]}]},
    }
    return OrderDraft(order, payment)


def _pick(rng: random.Random) -> list[tuple[str, str, int]]:
    return rng.sample(PRODUCTS, rng.randint(1, 3))


def _tax_rate() -> Json:
    return {
        "name": "NY sales tax",
        "amount": TAX_RATE,
        "includedInPrice": False,
        "country": "US",
        "state": "NY",
        "subRates": [],
    }


def _line_item(sku: str, name: str, price: int, quantity: int) -> Json:
    total = price * quantity
    tax = round(total * TAX_RATE)
    return {
        "id": str(uuid.uuid4()),
        "productId": product_id(sku),
        "productKey": sku.lower(),
        "name": {"en-US": name},
        "productType": {"typeId": "product-type", "id": "sandbox-apparel"},
        "variant": {"id": 1, "sku": sku},
        "price": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"price/{sku}")), "value": money(price)},
        "quantity": quantity,
        "totalPrice": money(total),
        "taxRate": _tax_rate(),
        "taxedPrice": {
            "totalNet": money(total),
            "totalGross": money(total + tax),
            "totalTax": money(tax),
        },
        "discountedPricePerQuantity": [],
        "state": [{"quantity": quantity, "state": {"typeId": "state", "id": "initial"}}],
    }


def _payment(cents: int, number: int) -> Json:
    payment_id = str(uuid.uuid4())
    return {
        "id": payment_id,
        "version": 1,
        "createdAt": "2026-11-01T10:00:00.000Z",
        "lastModifiedAt": "2026-11-01T10:00:00.000Z",
        "interfaceId": f"psp_{number:06d}",
        "amountPlanned": money(cents),
        "paymentMethodInfo": {"paymentInterface": "stripe", "method": "credit_card"},
        "paymentStatus": {},
        "transactions": [
            {
                "id": str(uuid.uuid4()),
                "timestamp": "2026-11-01T10:00:01.000Z",
                "type": "Charge",
                "amount": money(cents),
                "state": "Success",
            }
        ],
        "interfaceInteractions": [],
    }
