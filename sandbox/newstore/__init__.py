"""In-memory NewStore API emulator: tokens, Order Injection, stocked products, ATP export.

A FastAPI app (`create_app`) that answers the NewStore endpoints the connector uses, with
the behaviour that matters to it: real validation of injected orders (field names in the
messages, money decimals per currency, shipment and item limits), idempotency on
`external_id`, 403 on expired tokens, offset paging of stock, the Availabilities
Export API with its integer `last_updated_at` cursor, and NewStore's documented rate
limits (20 requests/s on `fulfill_order`, 100 calls/s for the tenant; 429 with
`Retry-After` beyond them; on by default, see `limits`). State lives in
`app.state.emulator` (a `NewStoreEmulator`) and is also reachable under `/_sandbox/`.

Everything runs on one event loop and no handler awaits between reading and writing the
state, so concurrent identical injections cannot create two orders.

The modules, from the bottom up: `errors`, `validation` (`validate_order`), `exports` (export
jobs and their files), `limits` (the rate limits and the assumptions behind them),
`lifecycle` (an injected order's items, fulfillment requests, shipments, cancellation and
returns, and the events they emit), `stream` (the Event Stream), `state`
(`NewStoreEmulator`), `seeds` (seed request bodies), `order_routes` (the order, cancel and
fulfillment request endpoints, and the lifecycle control) and `routes` (`create_app`). This
package re-exports their public names.
"""

from sandbox.newstore.errors import Rejected, error_body, error_response, oauth_error
from sandbox.newstore.exports import ExportJob, encode_export, zip_export
from sandbox.newstore.limits import (
    DEVELOPMENT_TENANT_RATE,
    FULFILL_ORDER_RATE,
    PRODUCTION_TENANT_RATE,
    NewStoreLimits,
)
from sandbox.newstore.routes import create_app
from sandbox.newstore.seeds import (
    BulkSeed,
    ProductSeed,
    SeedRequest,
    StockRequest,
    StockRow,
    apply_seed,
)
from sandbox.newstore.state import (
    DEFAULT_NODES,
    DIFFERENT_DATA_STATUS,
    MAX_RETAINED_EXPORTS,
    STOCKED_PRODUCTS_MAX_LIMIT,
    EmulatorControls,
    InjectedOrder,
    NewStoreEmulator,
)
from sandbox.newstore.validation import (
    CHANNEL_TYPES,
    CONSTRAINTS,
    CURRENCIES,
    CURRENCY_DECIMALS,
    DISCOUNT_TYPES,
    MAX_ADDRESS_LINE,
    MAX_CHANNEL_NAME,
    MAX_EXTERNAL_ID,
    MAX_ITEMS_PER_SHIPMENT,
    MAX_SHIPMENTS,
    NOT_TWO_DECIMALS,
    PAYMENT_TYPES,
    PRICE_METHODS,
    validate_order,
)

__all__ = [
    "CHANNEL_TYPES",
    "CONSTRAINTS",
    "CURRENCIES",
    "CURRENCY_DECIMALS",
    "DEFAULT_NODES",
    "DEVELOPMENT_TENANT_RATE",
    "DIFFERENT_DATA_STATUS",
    "DISCOUNT_TYPES",
    "FULFILL_ORDER_RATE",
    "MAX_ADDRESS_LINE",
    "MAX_CHANNEL_NAME",
    "MAX_EXTERNAL_ID",
    "MAX_ITEMS_PER_SHIPMENT",
    "MAX_RETAINED_EXPORTS",
    "MAX_SHIPMENTS",
    "NOT_TWO_DECIMALS",
    "PAYMENT_TYPES",
    "PRICE_METHODS",
    "PRODUCTION_TENANT_RATE",
    "STOCKED_PRODUCTS_MAX_LIMIT",
    "BulkSeed",
    "EmulatorControls",
    "ExportJob",
    "InjectedOrder",
    "NewStoreEmulator",
    "NewStoreLimits",
    "ProductSeed",
    "Rejected",
    "SeedRequest",
    "StockRequest",
    "StockRow",
    "apply_seed",
    "create_app",
    "encode_export",
    "error_body",
    "error_response",
    "oauth_error",
    "validate_order",
    "zip_export",
]
