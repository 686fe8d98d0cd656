"""The state object of the NewStore emulator: one `NewStoreEmulator` holds all mutable state of
one emulated tenant (tokens, injected orders, products, stock with its revisions, export jobs,
its rate limits) and the operations the routes call, with the `EmulatorControls` behaviour
switches. Nothing in it awaits, so concurrent identical injections cannot create two orders.
"""

from __future__ import annotations

import gc
import math
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from sandbox.controls import RateAlgorithm, SandboxState
from sandbox.newstore.errors import Rejected
from sandbox.newstore.exports import ExportJob, ProductRows, encode_export, zip_export
from sandbox.newstore.lifecycle import Lifecycle
from sandbox.newstore.limits import DEVELOPMENT_TENANT_RATE, FULFILL_ORDER_RATE, NewStoreLimits
from sandbox.newstore.stream import EventStream
from sandbox.newstore.validation import validate_order

# Not documented: NewStore's guide only says injection answers 200 or 400, so a
# different payload for a known external_id is answered 400 like other refusals.
DIFFERENT_DATA_STATUS = 400
# Not documented for stocked_products; larger limits are clamped (count tells the truth).
STOCKED_PRODUCTS_MAX_LIMIT = 100
DEFAULT_NODES = ("DC01", "STORE01", "STORE02")
# Finished exports whose files are kept downloadable; older links answer 404 (expired).
MAX_RETAINED_EXPORTS = 8


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
        description="a delta export with no rows reports last_updated_at 0 and no link, as "
        "NewStore's own integration code expects; off: the current revision and a link",
    )
    export_zip_extras: bool = Field(
        False,
        description="a zip export also holds what archivers add: a __MACOSX/ resource fork, "
        "a .DS_Store and a directory entry",
    )
    # assumption: NewStore's Availabilities Export page does not say what a global delta
    # holds for a changed product; its note that only a channel export re-exports "the whole
    # channel ... and not just the updated ATP of the location" suggests the changed rows.
    export_delta_rows: Literal["changed", "product"] = Field(
        "changed",
        description="what a delta holds for a changed product: only its (product, node) rows "
        "that changed (a node removed from the product as a row with ATP 0: assumption, the "
        "docs are silent), or every node it has now (a removed node is simply absent)",
    )
    stocked_products_max_limit: int = Field(STOCKED_PRODUCTS_MAX_LIMIT, ge=1)
    stocked_products_delete_after_pages: int | None = Field(
        None,
        ge=1,
        description="once this many stocked_products pages were served, delete the first "
        "stock row (every later row moves one place down), once: stock that disappears "
        "while it is read",
    )
    # NewStore's documented rate limits and the readings the emulator assumes where the
    # documentation is silent: sandbox/newstore/limits.py.
    rate_limits: bool = Field(
        True, description="enforce the limits below (429 with Retry-After); false: none"
    )
    tenant_rate_limit: float | None = Field(
        DEVELOPMENT_TENANT_RATE,
        gt=0,
        description="calls/s of the whole tenant, every endpoint: 100 for a development "
        "tenant, 200 for production (docs.newstore.com/docs/rate-limits); null: none",
    )
    fulfill_order_rate_limit: float | None = Field(
        FULFILL_ORDER_RATE,
        gt=0,
        description="requests/s of POST /v0/d/fulfill_order (its Swagger description); null: none",
    )
    rate_limit_algorithm: RateAlgorithm = Field(
        "token_bucket",
        description="token_bucket: rate x window requests may arrive at once, refilled "
        "continuously; fixed_window: at most rate x window per window of the clock",
    )
    rate_limit_window_s: float = Field(
        1.0, gt=0, description="the bucket's depth, or the window's length, in seconds"
    )
    rate_limit_retry_after_s: float | None = Field(
        None,
        ge=0,
        description="Retry-After of a 429; null: the seconds until the request would have "
        "been admitted, rounded up to a whole second",
    )


@dataclass(slots=True)
class InjectedOrder:
    external_id: str
    id: str
    payload: dict[str, Any]
    response: dict[str, Any]


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
        # The rate limits' clock: a test may replace it to count 429s without timing them.
        self.clock: Callable[[], float] = time.monotonic
        self.limits = NewStoreLimits(lambda: self.controls, lambda: self.clock())
        self.catalog_name = "storefront-catalog-en"
        self.catalog_locale = "en-us"
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.orders: dict[str, InjectedOrder] = {}
        self.products: dict[str, str] = {}  # product_id -> sku
        # The routing ruleset's `sl_levels_priority` (sandbox/newstore/catalog_api.py);
        # None: the tenant has no ruleset.
        self.service_levels: list[str] | None = None
        self.stock: dict[str, dict[str, list[int]]] = {}  # product_id -> node -> [atp, rev]
        self.product_revision: dict[str, int] = {}  # last revision any node's ATP changed
        self.removed: dict[str, dict[str, int]] = {}  # product_id -> node -> rev of removal
        # Location API (sandbox/newstore/locations.py): every node ever stocked, and what
        # the sandbox set on some of them (enabled, type, name)
        self.nodes_seen: set[str] = set()
        self.locations: dict[str, dict[str, Any]] = {}
        self.revision = 0
        self.exports: dict[str, ExportJob] = {}
        self._row_keys: list[tuple[str, str]] | None = None
        # After injection: the orders' lifecycle (sandbox.newstore.lifecycle) and the events
        # it emits (sandbox.newstore.stream).
        self.stream = EventStream(tenant)
        self.lifecycle = Lifecycle(tenant, self.stream.publish)
        self.stock_pages_served = 0

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
            self.nodes_seen.add(node)
            if row.get("remove"):  # the location no longer stocks the product
                if entry is None:
                    continue
                del nodes[node]
                self.removed.setdefault(product_id, {})[node] = rev
                self._row_keys = None
            elif entry is None:
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
        self.nodes_seen.update(nodes)
        with _gc_paused():
            for i in range(first, first + n_skus):
                product_id = f"P{i:07d}"
                products[product_id] = f"SKU-{i:07d}"
                stock[product_id] = {node: [(7 * i + offset) % 23, rev] for node, offset in spread}
                revisions[product_id] = rev
        self._row_keys = None
        return n_skus * len(nodes)

    def delete_stock_row(self, product_id: str, node: str) -> None:
        """Remove one (product, node) row, as when a location stops stocking a product."""
        del self.stock[product_id][node]
        self.revision += 1
        self.product_revision[product_id] = self.revision
        self._row_keys = None

    def stock_page_served(self) -> None:
        """Count a stocked_products page; delete a row after the configured one."""
        self.stock_pages_served += 1
        if self.stock_pages_served == self.controls.stocked_products_delete_after_pages:
            keys = self.row_keys()
            if keys:
                self.delete_stock_row(*keys[0])

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
        self.removed.clear()
        self.nodes_seen.clear()
        self.locations.clear()
        self.exports.clear()
        self._row_keys = None
        self.lifecycle.clear()
        self.stream.clear()
        self.stock_pages_served = 0

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
        order_id = str(uuid.uuid4())
        response = {"id": order_id, "external_id": external_id, "items": items}
        self.orders[external_id] = InjectedOrder(external_id, order_id, payload, response)
        self.lifecycle.register(payload, response)
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
        # The file is built here, once: the rows are frozen at the revision reported with them.
        with _gc_paused():
            job.files["json"], job.rows = encode_export(
                self._export_rows(job.cursor), self.products, self.catalog_name, self.catalog_locale
            )
        job.last_updated_at = self.revision
        if controls.empty_delta_cursor_zero and job.cursor is not None and not job.rows:
            job.last_updated_at = 0
        job.format = controls.export_format
        job.state = "finished"
        self._drop_old_files()

    def _export_rows(self, cursor: int | None) -> Iterable[ProductRows]:
        stock = self.stock
        if cursor is None:
            return ((product_id, nodes.items()) for product_id, nodes in stock.items())
        product_ids = [p for p, rev in self.product_revision.items() if rev > cursor]
        if self.controls.export_delta_rows == "product":
            # A changed product with every node it has now, not just the one that changed.
            return ((product_id, stock.get(product_id, {}).items()) for product_id in product_ids)
        # Only the (product, node) rows that changed after the cursor; a removed one with
        # ATP 0 (assumption: the Availabilities Export page is silent on removals).
        changed = []
        for product_id in product_ids:
            nodes = stock.get(product_id, {})
            rows = [
                (node, (entry[0], entry[1])) for node, entry in nodes.items() if entry[1] > cursor
            ]
            for node, rev in self.removed.get(product_id, {}).items():
                if rev > cursor and node not in nodes:
                    rows.append((node, (0, rev)))
            changed.append((product_id, rows))
        return changed

    def _drop_old_files(self) -> None:
        finished = [j for j in self.exports.values() if "json" in j.files]
        for job in finished[:-MAX_RETAINED_EXPORTS]:
            job.files.clear()

    def export_file(self, job: ExportJob, suffix: str) -> bytes | bytearray:
        """The downloadable file of a finished job: JSON array, or zip holding it."""
        if suffix not in job.files:
            job.files[suffix] = zip_export(
                job, job.files["json"], extras=self.controls.export_zip_extras
            )
        return job.files[suffix]


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
