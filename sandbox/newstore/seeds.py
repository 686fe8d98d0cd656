"""Seeding of the NewStore emulator: the bodies of the `_sandbox` seed and stock requests
(products, stock rows, a bulk seed), also accepted by `create_app(seed=...)`, and `apply_seed`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from sandbox.newstore.locations import LocationSeed
from sandbox.newstore.state import DEFAULT_NODES, NewStoreEmulator


class ProductSeed(BaseModel):
    product_id: str
    sku: str | None = None


class StockRow(BaseModel):
    product_id: str
    fulfillment_node_id: str
    atp: int = 0
    sku: str | None = None
    remove: bool = False  # the node no longer stocks the product (its row disappears)


class BulkSeed(BaseModel):
    n_skus: int = Field(ge=0)
    nodes: list[str] = Field(default_factory=lambda: list(DEFAULT_NODES), min_length=1)


class SeedRequest(BaseModel):
    products: list[ProductSeed] = Field(default_factory=list)
    stock: list[StockRow] = Field(default_factory=list)
    bulk: BulkSeed | None = None
    locations: list[LocationSeed] = Field(default_factory=list)
    service_levels: list[str] | None = None  # the routing ruleset's sl_levels_priority
    reset: bool = False


class StockRequest(BaseModel):
    stock: list[StockRow]


def apply_seed(state: NewStoreEmulator, seed: SeedRequest) -> dict[str, int]:
    if seed.reset:
        state.clear()
    state.add_products((p.product_id, p.sku) for p in seed.products)
    state.set_stock(row.model_dump() for row in seed.stock)
    if seed.service_levels is not None:
        state.service_levels = list(seed.service_levels)
    if seed.bulk is not None:
        state.bulk_seed_stock(seed.bulk.n_skus, seed.bulk.nodes)
    seed_locations(state, seed.locations)
    return {
        "products": len(state.products),
        "stock_rows": len(state.row_keys()),
        "revision": state.revision,
    }


def seed_locations(state: NewStoreEmulator, locations: list[LocationSeed]) -> int:
    """Set attributes of locations (creating them if no stock row named them yet)."""
    for location in locations:
        fields = location.model_dump(exclude={"id"}, exclude_none=True)
        state.locations.setdefault(location.id, {}).update(fields)
    return len(locations)
