"""In-memory NewStore API emulator: tokens, Order Injection, stocked products, ATP export.

A FastAPI app (`create_app`) that answers the NewStore endpoints the connector uses, with
the behaviour that matters to it: real validation of injected orders (field names in the
messages, money decimals per currency, shipment and item limits), idempotency on
`external_id`, 403 on expired tokens, offset paging of stock, and the Availabilities
Export API with its integer `last_updated_at` cursor. State lives in
`app.state.emulator` (a `NewStoreEmulator`) and is also reachable under `/_sandbox/`.

Everything runs on one event loop and no handler awaits between reading and writing the
state, so concurrent identical injections cannot create two orders.
"""

from __future__ import annotations

import gc
import io
import json
import math
import secrets
import time
import uuid
import zipfile
from base64 import b64decode
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.controls import SANDBOX_PREFIX, SandboxState, install_controls

# Not documented: NewStore's guide only says injection answers 200 or 400, so a
# different payload for a known external_id is answered 400 like other refusals.
DIFFERENT_DATA_STATUS = 400
# Not documented for stocked_products; larger limits are clamped (count tells the truth).
STOCKED_PRODUCTS_MAX_LIMIT = 100
DEFAULT_NODES = ("DC01", "STORE01", "STORE02")
# Finished exports whose snapshot is kept downloadable; older links answer 404 (expired).
MAX_RETAINED_EXPORTS = 8


# --- order validation -------------------------------------------------------------------
# Hand-written over plain dicts rather than a pydantic model: the emulator sits on the hot
# path of the benchmarks, and the first error must name its field the way NewStore's
# message would (`shipments[0].items[3].price.item_price`).

MAX_SHIPMENTS = 5
MAX_ITEMS_PER_SHIPMENT = 100
MAX_EXTERNAL_ID = 64
MAX_ADDRESS_LINE = 128
MAX_CHANNEL_NAME = 64
MAX_TEXT = 256  # not documented; generous so that only absurd values are refused


def _codes(text: str) -> list[str]:
    return text.split()


# ISO 4217 minor units of the active currencies (precious metals and test codes left out).
_ZERO_DECIMALS = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
_THREE_DECIMALS = _codes("BHD IQD JOD KWD LYD OMR TND")
_FOUR_DECIMALS = _codes("CLF UYW")
_TWO_DECIMALS = _codes(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN "
    "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD "
    "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY "
    "TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD YER ZAR ZMW ZWL"
)

CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS, 2),
    **dict.fromkeys(_ZERO_DECIMALS, 0),
    **dict.fromkeys(_THREE_DECIMALS, 3),
    **dict.fromkeys(_FOUR_DECIMALS, 4),
}

CHANNEL_TYPES = frozenset({"web", "mobile", "store"})
PRICE_METHODS = frozenset({"tax_included", "tax_excluded"})
PAYMENT_TYPES = frozenset({"authorized", "captured"})
DISCOUNT_TYPES = frozenset({"percentage", "fixed"})


class Rejected(Exception):
    """A request NewStore would refuse: HTTP status, `error_code` and message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _invalid(code: str, message: str) -> Rejected:
    return Rejected(400, code, message)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --- primitive checks -------------------------------------------------------------------


def _required(obj: dict[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _invalid("missing_required_field", f"{path} is required")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("invalid_field_type", f"{path} must be an object, got {_type_name(value)}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid("invalid_field_type", f"{path} must be an array, got {_type_name(value)}")
    return value


def _text(
    obj: dict[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    min_len: int = 1,
    max_len: int = MAX_TEXT,
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _invalid("missing_required_field", f"{path} is required")
        return None
    if not isinstance(value, str):
        raise _invalid("invalid_field_type", f"{path} must be a string, got {_type_name(value)}")
    if not min_len <= len(value) <= max_len:
        raise _invalid(
            "invalid_field_value", f"{path} must be {min_len}..{max_len} characters long"
        )
    return value


def _enum(
    obj: dict[str, Any], key: str, path: str, allowed: Collection[str], *, required: bool
) -> None:
    value = _text(obj, key, path, required=required)
    if value is not None and value not in allowed:
        raise _invalid("invalid_field_value", f"{path} must be one of {sorted(allowed)}")


def _number(value: Any, path: str) -> float:
    # bool is an int subclass, but `true` is not a number in JSON
    if type(value) is bool or not isinstance(value, (int, float)):
        raise _invalid("invalid_field_type", f"{path} must be a number, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid("invalid_field_value", f"{path} must be a finite number")
    return value


def _money(value: Any, path: str, decimals: int, currency: str, minimum: float = 0.0) -> None:
    amount = _number(value, path)
    if amount < minimum:
        raise _invalid("invalid_field_value", f"{path} must be >= {minimum:g}")
    # round() is correctly rounded, so a float parsed from "19.99" survives round(x, 2)
    # unchanged, while 0.5666666666666667 or 0.30000000000000004 do not.
    if isinstance(amount, float) and round(amount, decimals) != amount:
        raise _invalid(
            "invalid_money_precision",
            f"{path} has more than {decimals} decimal places allowed for {currency}: {amount!r}",
        )


def _datetime(obj: dict[str, Any], key: str, path: str) -> None:
    value = _text(obj, key, path)
    if value is None:
        return
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    # RFC 3339 needs a time and an offset; fromisoformat alone would take a bare date
    if parsed is None or "T" not in value.upper() or parsed.tzinfo is None:
        raise _invalid("invalid_field_value", f"{path} must be an RFC 3339 date-time")


def _country(obj: dict[str, Any], key: str, path: str, *, required: bool) -> None:
    value = _text(obj, key, path, required=required, min_len=2, max_len=2)
    if value is not None and not (value.isascii() and value.isalpha()):
        raise _invalid("invalid_field_value", f"{path} must be a 2-letter country code")


# --- payload sections -------------------------------------------------------------------


class _Money:
    """Currency context, so that every money check knows its decimals."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.decimals = CURRENCY_DECIMALS[currency]

    def check(self, value: Any, path: str, minimum: float = 0.0) -> None:
        _money(value, path, self.decimals, self.currency, minimum)


def _address(value: Any, path: str) -> None:
    address = _object(value, path)
    _country(address, "country", f"{path}.country", required=True)
    line_max = MAX_ADDRESS_LINE
    _text(address, "address_line_1", f"{path}.address_line_1", required=True, max_len=line_max)
    _text(address, "address_line_2", f"{path}.address_line_2", min_len=0, max_len=line_max)
    for key in (
        "city",
        "state",
        "province",
        "zip_code",
        "first_name",
        "last_name",
        "second_name",
        "phone",
        "salutation",
        "suffix",
        "title",
    ):
        _text(address, key, f"{path}.{key}", min_len=0)


def _discounts(value: Any, path: str, money: _Money) -> None:
    for i, entry in enumerate(_array(value, path)):
        where = f"{path}[{i}]"
        discount = _object(entry, where)
        _enum(discount, "type", f"{where}.type", DISCOUNT_TYPES, required=False)
        if discount.get("price_adjustment") is not None:
            money.check(discount["price_adjustment"], f"{where}.price_adjustment")
        if discount.get("original_value") is not None:
            _number(discount["original_value"], f"{where}.original_value")
        for key in ("discount_ref", "coupon_code", "description"):
            _text(discount, key, f"{where}.{key}", min_len=0)


def _tax_lines(value: Any, path: str, money: _Money) -> None:
    for i, entry in enumerate(_array(value, path)):
        where = f"{path}[{i}]"
        line = _object(entry, where)
        money.check(_required(line, "amount", f"{where}.amount"), f"{where}.amount")
        rate = _number(_required(line, "rate", f"{where}.rate"), f"{where}.rate")
        if not 0 <= rate <= 1:
            raise _invalid("invalid_field_value", f"{where}.rate must be between 0 and 1")
        _text(line, "name", f"{where}.name", min_len=0)
        _country(line, "country_code", f"{where}.country_code", required=False)


def _item(value: Any, path: str, money: _Money, catalog: Collection[str] | None) -> None:
    item = _object(value, path)
    _text(item, "external_item_id", f"{path}.external_item_id", required=True)
    product_id = _text(item, "product_id", f"{path}.product_id", required=True)
    if catalog is not None and product_id not in catalog:
        raise _invalid(
            "product_not_found", f"{path}.product_id: product {product_id!r} does not exist"
        )
    price_path = f"{path}.price"
    price = _object(_required(item, "price", price_path), price_path)
    for key in ("item_price", "item_list_price"):
        money.check(_required(price, key, f"{price_path}.{key}"), f"{price_path}.{key}")
    taxes_path = f"{price_path}.item_tax_lines"
    _tax_lines(_required(price, "item_tax_lines", taxes_path), taxes_path, money)
    for key in ("item_discount_info", "item_order_discount_info"):
        if price.get(key) is not None:
            _discounts(price[key], f"{price_path}.{key}", money)


def _shipping_option(value: Any, path: str, money: _Money) -> bool:
    """Validate a shipping option; true when it uses a service level identifier."""
    option = _object(value, path)
    level = _text(option, "service_level_identifier", f"{path}.service_level_identifier")
    _text(option, "shipping_offer_token", f"{path}.shipping_offer_token")
    for key in ("price", "tax"):
        if option.get(key) is not None:
            money.check(option[key], f"{path}.{key}")
    if option.get("discount_info") is not None:
        _discounts(option["discount_info"], f"{path}.discount_info", money)
    return level is not None


def _shipments(value: Any, money: _Money, catalog: Collection[str] | None) -> None:
    shipments = _array(value, "shipments")
    if not shipments:
        raise _invalid("invalid_field_value", "shipments must contain at least 1 shipment")
    if len(shipments) > MAX_SHIPMENTS:
        raise _invalid(
            "too_many_shipments",
            f"shipments has {len(shipments)} shipments; at most {MAX_SHIPMENTS} are allowed",
        )
    uses_service_level = False
    for i, entry in enumerate(shipments):
        path = f"shipments[{i}]"
        shipment = _object(entry, path)
        items = _array(_required(shipment, "items", f"{path}.items"), f"{path}.items")
        if not items:
            raise _invalid("invalid_field_value", f"{path}.items must contain at least 1 item")
        if len(items) > MAX_ITEMS_PER_SHIPMENT:
            raise _invalid(
                "too_many_items",
                f"{path}.items has {len(items)} items; at most {MAX_ITEMS_PER_SHIPMENT} "
                "are allowed per shipment",
            )
        for j, item in enumerate(items):
            _item(item, f"{path}.items[{j}]", money, catalog)
        if shipment.get("shipping_option") is not None:
            option_path = f"{path}.shipping_option"
            uses_service_level |= _shipping_option(shipment["shipping_option"], option_path, money)
    if uses_service_level and len(shipments) > 1:
        raise _invalid(
            "single_shipment_required",
            "shipments: an order whose shipping_option uses service_level_identifier "
            f"must have exactly 1 shipment, got {len(shipments)}",
        )


def _payments(value: Any, money: _Money) -> None:
    for i, entry in enumerate(_array(value, "payments")):
        path = f"payments[{i}]"
        payment = _object(entry, path)
        _enum(payment, "type", f"{path}.type", PAYMENT_TYPES, required=True)
        money.check(_required(payment, "amount", f"{path}.amount"), f"{path}.amount", 0.01)
        for key in ("method", "processor", "correlation_ref"):
            _text(payment, key, f"{path}.{key}", required=True)
        _datetime(payment, "processed_at", f"{path}.processed_at")


def validate_order(payload: Any, catalog: Collection[str] | None = None) -> None:
    """Raise `Rejected` for the first problem in an injection payload.

    `catalog`, when given, is the set of known product ids; an unknown one is refused.
    """
    if not isinstance(payload, dict):
        raise _invalid("invalid_request_body", "the request body must be a JSON object")
    _text(payload, "external_id", "external_id", required=True, max_len=MAX_EXTERNAL_ID)
    _text(payload, "shop", "shop", required=True)
    _enum(payload, "channel_type", "channel_type", CHANNEL_TYPES, required=True)
    _text(payload, "channel_name", "channel_name", required=True, max_len=MAX_CHANNEL_NAME)
    _text(payload, "shop_locale", "shop_locale", required=True, max_len=35)
    currency = _text(payload, "currency", "currency", required=True, min_len=3, max_len=3) or ""
    if currency not in CURRENCY_DECIMALS:
        raise _invalid("invalid_currency", f"currency {currency!r} is not an ISO 4217 code")
    money = _Money(currency)
    for key in ("customer_name", "external_customer_id", "customer_language"):
        _text(payload, key, key)
    email = _text(payload, "customer_email", "customer_email")
    if email is not None and ("@" not in email or " " in email):
        raise _invalid("invalid_field_value", "customer_email must be an e-mail address")
    _datetime(payload, "placed_at", "placed_at")
    _enum(payload, "price_method", "price_method", PRICE_METHODS, required=False)
    for key in ("shipping_address", "billing_address"):
        if payload.get(key) is not None:
            _address(payload[key], key)
    _shipments(_required(payload, "shipments", "shipments"), money, catalog)
    if payload.get("payments") is not None:
        _payments(payload["payments"], money)


# --- errors -----------------------------------------------------------------------------

_CODES_BY_STATUS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
    500: "internal_server_error",
    503: "service_unavailable",
}


def error_body(status: int, message: str, error_code: str | None = None) -> dict[str, Any]:
    """NewStore's error shape."""
    return {
        "error_code": error_code or _CODES_BY_STATUS.get(status, "error"),
        "message": message,
        "request_id": uuid.uuid4().hex,
    }


def _error(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message, error_code), status_code=status)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """Keycloak's error shape (the token endpoints are OAuth, not NewStore, APIs)."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


# --- state ------------------------------------------------------------------------------


class EmulatorControls(BaseModel):
    """Behaviour switches specific to the NewStore emulator (faults live in `Controls`)."""

    validate_products: bool | None = Field(
        None, description="refuse unknown product_id; None: only once a catalog is seeded"
    )
    export_api_enabled: bool = Field(True, description="false: the export endpoints answer 404")
    export_processing_polls: int = Field(
        1, ge=0, description="GETs of a new export job answered 'processing' before 'finished'"
    )
    export_never_finish: bool = False
    export_fail: bool = Field(False, description="jobs end in state 'failed'")
    export_format: Literal["json", "zip"] = Field(
        "json", description="the link serves a JSON array, or a zip holding one JSON file"
    )
    empty_delta_cursor_zero: bool = Field(
        False,
        description="a delta export with no rows reports last_updated_at 0, as some "
        "NewStore integrations expect; off: it reports the current revision",
    )
    stocked_products_max_limit: int = Field(STOCKED_PRODUCTS_MAX_LIMIT, ge=1)


@dataclass(slots=True)
class InjectedOrder:
    external_id: str
    id: str
    payload: dict[str, Any]
    response: dict[str, Any]


@dataclass(slots=True)
class ExportJob:
    id: str
    cursor: int | None
    state: str = "processing"
    polls: int = 0
    last_updated_at: int | None = None
    format: str = "json"
    # (product_id, node, atp, revision) rows, frozen when the job finishes
    snapshot: list[tuple[str, str, int, int]] | None = None
    files: dict[str, bytes] = field(default_factory=dict)


class NewStoreEmulator:
    """All mutable state of one emulated tenant."""

    def __init__(
        self,
        tenant: str,
        users: Mapping[str, str],
        clients: Mapping[str, str],
        token_ttl_s: float,
        client_token_ttl_s: float,
    ) -> None:
        self.tenant = tenant
        self.users = dict(users)
        self.clients = dict(clients)
        self.token_ttl_s = token_ttl_s
        self.client_token_ttl_s = client_token_ttl_s
        self.sandbox = SandboxState()
        self.controls = EmulatorControls()
        self.catalog_name = "storefront-catalog-en"
        self.catalog_locale = "en-us"
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.orders: dict[str, InjectedOrder] = {}
        self.products: dict[str, str] = {}  # product_id -> sku
        self.stock: dict[str, dict[str, list[int]]] = {}  # product_id -> node -> [atp, rev]
        self.product_revision: dict[str, int] = {}  # last revision any node's ATP changed
        self.revision = 0
        self.exports: dict[str, ExportJob] = {}
        self._row_keys: list[tuple[str, str]] | None = None

    # --- tokens -------------------------------------------------------------------------

    def issue_token(self, ttl_s: float) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + ttl_s
        return token

    def token_status(self, token: str) -> Literal["valid", "expired", "unknown"]:
        expiry = self.tokens.get(token)
        if expiry is None:
            return "unknown"
        return "valid" if time.monotonic() < expiry else "expired"

    def expire_tokens(self) -> int:
        for token in self.tokens:
            self.tokens[token] = -math.inf
        return len(self.tokens)

    # --- catalog and stock --------------------------------------------------------------

    def product_catalog(self) -> Collection[str] | None:
        """The product ids injection checks against, or None when it does not check."""
        validate = self.controls.validate_products
        if validate is None:
            validate = bool(self.products)
        return self.products if validate else None

    def add_products(self, products: Iterable[tuple[str, str | None]]) -> int:
        count = 0
        for product_id, sku in products:
            self.products[product_id] = sku or self.products.get(product_id, product_id)
            count += 1
        return count

    def set_stock(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Set the ATP of (product, node) rows; one revision bump covers the whole batch."""
        rev = self.revision + 1
        changed = 0
        for row in rows:
            product_id = str(row["product_id"])
            node = str(row["fulfillment_node_id"])
            atp = int(row["atp"])
            if row.get("sku"):
                self.products[product_id] = str(row["sku"])
            else:
                self.products.setdefault(product_id, product_id)
            nodes = self.stock.setdefault(product_id, {})
            entry = nodes.get(node)
            if entry is None:
                nodes[node] = [atp, rev]
                self._row_keys = None
            elif entry[0] != atp:
                entry[0], entry[1] = atp, rev
            else:
                continue  # unchanged ATP is no change: it must not appear in a delta
            self.product_revision[product_id] = rev
            changed += 1
        if changed:
            self.revision = rev
        return changed

    def bulk_seed_stock(
        self, n_skus: int, nodes: Sequence[str] = DEFAULT_NODES, *, first: int = 1
    ) -> int:
        """Add products `P0000001`.. with SKUs `SKU-0000001`.., stocked at every node.

        Product ids differ from SKUs on purpose, so that mixing them up shows. ATP is a
        deterministic spread over 0..22 (some zeros). Returns the number of rows written.
        """
        self.revision += 1
        rev = self.revision
        products, stock, revisions = self.products, self.stock, self.product_revision
        spread = [(node, 5 * k) for k, node in enumerate(nodes)]
        with _gc_paused():
            for i in range(first, first + n_skus):
                product_id = f"P{i:07d}"
                products[product_id] = f"SKU-{i:07d}"
                stock[product_id] = {node: [(7 * i + offset) % 23, rev] for node, offset in spread}
                revisions[product_id] = rev
        self._row_keys = None
        return n_skus * len(nodes)

    def row_keys(self) -> list[tuple[str, str]]:
        """Every (product, node) row in a stable order; rebuilt only when rows are added."""
        if self._row_keys is None:
            self._row_keys = [(p, n) for p, nodes in self.stock.items() for n in nodes]
        return self._row_keys

    def stocked_product(self, product_id: str, node: str) -> dict[str, Any]:
        atp = self.stock[product_id][node][0]
        return {
            "sku": self.products.get(product_id, product_id),
            "product_id": product_id,
            "fulfillment_node_id": node,
            "atp": atp,
            "present_atp": atp,
            "future_atp": 0,
            "on_hand": atp,
            "allocations": 0,
            "safety_stock": 0,
            "compound_id": f"{product_id}|{node}",
        }

    def clear(self) -> None:
        """Forget orders, stock, products and exports; the revision keeps increasing."""
        self.orders.clear()
        self.products.clear()
        self.stock.clear()
        self.product_revision.clear()
        self.exports.clear()
        self._row_keys = None

    # --- orders -------------------------------------------------------------------------

    def inject(self, payload: Any) -> dict[str, Any]:
        """Create the order, or return the first answer again; raise `Rejected` otherwise."""
        validate_order(payload, self.product_catalog())
        external_id: str = payload["external_id"]
        existing = self.orders.get(external_id)
        if existing is not None:
            if existing.payload == payload:
                return existing.response
            raise Rejected(
                DIFFERENT_DATA_STATUS,
                "same_order_injection_with_different_data",
                f"an order with external_id {external_id!r} was already injected "
                "with different data",
            )
        items = [
            {
                "id": str(uuid.uuid4()),
                "external_item_id": item["external_item_id"],
                "product_id": item["product_id"],
            }
            for shipment in payload["shipments"]
            for item in shipment["items"]
        ]
        response = {"id": str(uuid.uuid4()), "external_id": external_id, "items": items}
        self.orders[external_id] = InjectedOrder(external_id, response["id"], payload, response)
        return response

    # --- availability export ------------------------------------------------------------

    def start_export(self, cursor: int | None) -> ExportJob:
        job = ExportJob(id=str(uuid.uuid4()), cursor=cursor)
        self.exports[job.id] = job
        return job

    def poll_export(self, job: ExportJob) -> None:
        """Advance a job by one status read, as the controls say."""
        controls = self.controls
        if job.state != "processing" or controls.export_never_finish:
            return
        job.polls += 1
        if job.polls <= controls.export_processing_polls:
            return
        if controls.export_fail:
            job.state = "failed"
            return
        with _gc_paused():
            job.snapshot = self._export_snapshot(job.cursor)
        job.last_updated_at = self.revision
        if controls.empty_delta_cursor_zero and job.cursor is not None and not job.snapshot:
            job.last_updated_at = 0
        job.format = controls.export_format
        job.state = "finished"
        self._drop_old_snapshots()

    def _export_snapshot(self, cursor: int | None) -> list[tuple[str, str, int, int]]:
        # A changed product is exported with every node, not just the one that changed.
        if cursor is None:
            product_ids: Iterable[str] = self.stock.keys()
        else:
            product_ids = [p for p, rev in self.product_revision.items() if rev > cursor]
        return [
            (product_id, node, entry[0], entry[1])
            for product_id in product_ids
            for node, entry in self.stock.get(product_id, {}).items()
        ]

    def _drop_old_snapshots(self) -> None:
        finished = [j for j in self.exports.values() if j.snapshot is not None]
        for job in finished[:-MAX_RETAINED_EXPORTS]:
            job.snapshot = None
            job.files.clear()

    def export_file(self, job: ExportJob, suffix: str) -> bytes:
        """The downloadable file of a finished job: JSON array, or zip holding it."""
        if suffix not in job.files:
            with _gc_paused():
                data = self._encode_export(job)
            if suffix == "zip":
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                    z.writestr(f"availabilities_{job.id}.json", data)
                data = buffer.getvalue()
            job.files[suffix] = data
        return job.files[suffix]

    def _encode_export(self, job: ExportJob) -> bytes:
        """Rows as a JSON array, written from a template.

        About 4x faster than building 300k nested dicts for json.dumps, which matters
        because the emulator's single event loop also serves the injections of a benchmark.
        """
        assert job.snapshot is not None
        quoted: dict[str, str] = {}

        def q(text: str) -> str:
            value = quoted.get(text)
            if value is None:
                value = quoted[text] = json.dumps(text)
            return value

        identifiers = f'"catalog":{q(self.catalog_name)},"locale":{q(self.catalog_locale)}'
        products = self.products
        rows = [
            f'{{"product_id":{q(product_id)},"fulfillment_node_id":{q(node)},'
            f'"atp":{atp},"present_atp":{atp},"future_atp":0,"revision":{rev},'
            f'"external_identifiers":[{{{identifiers},'
            f'"identifiers":{{"sku":{q(products.get(product_id, product_id))}}}}}]}}'
            for product_id, node, atp, rev in job.snapshot
        ]
        return ("[" + ",".join(rows) + "]").encode()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building hundreds of thousands of small containers.

    None of them form cycles, and the collector's repeated scans of the growing heap
    would otherwise double the time of a bulk seed or a full export.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- sandbox request bodies -------------------------------------------------------------


class ProductSeed(BaseModel):
    product_id: str
    sku: str | None = None


class StockRow(BaseModel):
    product_id: str
    fulfillment_node_id: str
    atp: int
    sku: str | None = None


class BulkSeed(BaseModel):
    n_skus: int = Field(ge=0)
    nodes: list[str] = Field(default_factory=lambda: list(DEFAULT_NODES), min_length=1)


class SeedRequest(BaseModel):
    products: list[ProductSeed] = Field(default_factory=list)
    stock: list[StockRow] = Field(default_factory=list)
    bulk: BulkSeed | None = None
    reset: bool = False


class StockRequest(BaseModel):
    stock: list[StockRow]


def apply_seed(state: NewStoreEmulator, seed: SeedRequest) -> dict[str, int]:
    if seed.reset:
        state.clear()
    state.add_products((p.product_id, p.sku) for p in seed.products)
    state.set_stock(row.model_dump() for row in seed.stock)
    if seed.bulk is not None:
        state.bulk_seed_stock(seed.bulk.n_skus, seed.bulk.nodes)
    return {
        "products": len(state.products),
        "stock_rows": len(state.row_keys()),
        "revision": state.revision,
    }


# --- request helpers --------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: python-multipart is not a dependency, and these forms are tiny.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _auth_failure(state: NewStoreEmulator, request: Request) -> Response | None:
    """None when the bearer token is valid; NewStore answers 403 otherwise (not 401)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(403, "missing_token", "an Authorization: Bearer token is required")
    status = state.token_status(token.strip())
    if status == "valid":
        return None
    if status == "expired":
        return _error(403, "token_expired", "the access token has expired")
    return _error(403, "invalid_token", "the access token is not valid")


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise Rejected(400, "invalid_query_parameter", f"{name} must be an integer >= {minimum}")
    return value


def _token_reply(token: str, ttl_s: float, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"access_token": token, "expires_in": int(ttl_s), "token_type": "Bearer", **extra}
    )


def _job_view(job: ExportJob, request: Request) -> dict[str, Any]:
    view: dict[str, Any] = {"id": job.id, "availability_export_id": job.id, "state": job.state}
    if job.state == "finished":
        base = str(request.base_url).rstrip("/")
        view["link"] = f"{base}{SANDBOX_PREFIX}/exports/{job.id}.{job.format}"
        view["last_updated_at"] = job.last_updated_at
    elif job.state == "failed":
        view["reason"] = "export failed (injected by the sandbox)"
    return view


# --- the app ----------------------------------------------------------------------------


def create_app(
    tenant: str = "sandbox",
    users: dict[str, str] | None = None,
    clients: dict[str, str] | None = None,
    token_ttl_s: int = 72000,
    seed: dict[str, Any] | None = None,
    client_token_ttl_s: int | None = None,
) -> FastAPI:
    """Build an emulator app. `client_token_ttl_s` defaults to `token_ttl_s`."""
    state = NewStoreEmulator(
        tenant,
        users if users is not None else {"sandbox-user": "sandbox-password"},
        clients if clients is not None else {"sandbox-client": "sandbox-secret"},
        token_ttl_s,
        client_token_ttl_s if client_token_ttl_s is not None else token_ttl_s,
    )
    if seed:
        apply_seed(state, SeedRequest.model_validate(seed))
    app = FastAPI(title="NewStore emulator", docs_url=f"{SANDBOX_PREFIX}/docs")
    app.state.emulator = state
    install_controls(app, state.sandbox, error_body)
    _add_token_routes(app, state)
    _add_order_routes(app, state)
    _add_stock_routes(app, state)
    _add_export_routes(app, state)
    _add_sandbox_routes(app, state)
    return app


def _add_token_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.post("/v0/token")
    async def legacy_token(request: Request) -> Response:
        form = await _form(request)
        if form.get("grant_type") != "password":
            return _oauth_error(400, "unsupported_grant_type", "grant_type must be password")
        username = form.get("username", "")
        if username not in state.users or state.users[username] != form.get("password"):
            return _oauth_error(401, "invalid_grant", "Invalid user credentials")
        token = state.issue_token(state.token_ttl_s)
        return _token_reply(
            token, state.token_ttl_s, refresh_token=secrets.token_urlsafe(24), scope=""
        )

    @app.post("/auth/realms/{realm}/protocol/openid-connect/token")
    async def client_credentials_token(realm: str, request: Request) -> Response:
        if realm != state.tenant:
            return JSONResponse({"error": "Realm does not exist"}, status_code=404)
        form = await _form(request)
        basic = _basic_credentials(request)
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        if client_id not in state.clients or state.clients[client_id] != secret:
            return _oauth_error(
                401, "invalid_client", "Invalid client or Invalid client credentials"
            )
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        ttl = state.client_token_ttl_s
        token = state.issue_token(ttl)
        return _token_reply(
            token, ttl, refresh_expires_in=0, scope="profile email", **{"not-before-policy": 0}
        )


def _add_order_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.post("/v0/d/fulfill_order")
    async def fulfill_order(request: Request) -> Response:
        if (denied := _auth_failure(state, request)) is not None:
            return denied
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _error(400, "invalid_request_body", "the request body is not valid JSON")
        try:
            return JSONResponse(state.inject(payload))
        except Rejected as refusal:
            return _error(refusal.status, refusal.error_code, refusal.message)


def _add_stock_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.get("/_/v0/hq/stocked_products")
    async def stocked_products(request: Request) -> Response:
        if (denied := _auth_failure(state, request)) is not None:
            return denied
        max_limit = state.controls.stocked_products_max_limit
        try:
            limit = min(_int_param(request, "limit", max_limit, 1), max_limit)
            offset = _int_param(request, "offset", 0, 0)
        except Rejected as refusal:
            return _error(refusal.status, refusal.error_code, refusal.message)
        keys = state.row_keys()
        items = [state.stocked_product(p, n) for p, n in keys[offset : offset + limit]]
        return JSONResponse(
            {
                "items": items,
                "pagination_info": {"count": len(items), "total": len(keys), "offset": offset},
            }
        )


def _add_export_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    def disabled() -> Response | None:
        if state.controls.export_api_enabled:
            return None
        return _error(404, "not_found", "the availabilities export API is not enabled")

    @app.post("/v0/d/availabilities/bulk")
    async def start_export(request: Request) -> Response:
        if (denied := disabled() or _auth_failure(state, request)) is not None:
            return denied
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _error(400, "invalid_request_body", "the request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_request_body", "the request body must be a JSON object")
        cursor = body.get("last_updated_at")
        if cursor is not None and (type(cursor) is not int or cursor < 0):
            return _error(
                400, "invalid_field_value", "last_updated_at must be a non-negative integer"
            )
        job = state.start_export(cursor)
        return JSONResponse(_job_view(job, request), status_code=201)

    @app.get("/v0/d/availabilities/bulk/{export_id}")
    async def export_status(export_id: str, request: Request) -> Response:
        if (denied := disabled() or _auth_failure(state, request)) is not None:
            return denied
        job = state.exports.get(export_id)
        if job is None:
            return _error(404, "not_found", f"export {export_id} does not exist")
        state.poll_export(job)
        return JSONResponse(_job_view(job, request))

    @app.get(f"{SANDBOX_PREFIX}/exports/{{name}}")
    async def download_export(name: str) -> Response:
        # Stands in for the pre-signed storage URL: no bearer token needed.
        export_id, _, suffix = name.rpartition(".")
        job = state.exports.get(export_id)
        if job is None or job.snapshot is None or suffix not in ("json", "zip"):
            return _error(404, "not_found", f"export file {name} does not exist or expired")
        media = "application/zip" if suffix == "zip" else "application/json"
        return Response(state.export_file(job, suffix), media_type=media)


def _add_sandbox_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.get(f"{SANDBOX_PREFIX}/orders")
    async def list_orders(include_payload: bool = True) -> dict[str, Any]:
        orders = [
            {"external_id": o.external_id, "id": o.id}
            | ({"payload": o.payload} if include_payload else {})
            for o in state.orders.values()
        ]
        return {"count": len(orders), "orders": orders}

    @app.get(f"{SANDBOX_PREFIX}/orders/{{external_id}}")
    async def read_order(external_id: str) -> Response:
        order = state.orders.get(external_id)
        if order is None:
            return _error(404, "not_found", f"no order with external_id {external_id}")
        return JSONResponse(
            {
                "external_id": order.external_id,
                "id": order.id,
                "payload": order.payload,
                "response": order.response,
            }
        )

    @app.post(f"{SANDBOX_PREFIX}/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        return {"expired": state.expire_tokens()}

    @app.post(f"{SANDBOX_PREFIX}/seed")
    async def seed(body: SeedRequest) -> dict[str, int]:
        return apply_seed(state, body)

    @app.post(f"{SANDBOX_PREFIX}/stock")
    async def set_stock(body: StockRequest) -> dict[str, int]:
        changed = state.set_stock(row.model_dump() for row in body.stock)
        return {"changed": changed, "revision": state.revision}

    @app.get(f"{SANDBOX_PREFIX}/state")
    async def summary() -> dict[str, int]:
        return {
            "orders": len(state.orders),
            "products": len(state.products),
            "stock_rows": len(state.row_keys()),
            "revision": state.revision,
            "exports": len(state.exports),
            "tokens": len(state.tokens),
        }

    @app.post(f"{SANDBOX_PREFIX}/reset")
    async def reset() -> dict[str, int]:
        state.clear()
        return {"revision": state.revision}

    @app.get(f"{SANDBOX_PREFIX}/emulator-controls")
    async def read_emulator_controls() -> EmulatorControls:
        return state.controls

    @app.patch(f"{SANDBOX_PREFIX}/emulator-controls")
    async def patch_emulator_controls(changes: dict[str, Any]) -> EmulatorControls:
        try:
            state.controls = EmulatorControls.model_validate(state.controls.model_dump() | changes)
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
        return state.controls
