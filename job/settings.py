"""Settings of the inventory job (all optional), as `INVENTORY_*` variables.

Kept beside the job rather than in `connector/settings.py`, following its pattern: a
pydantic-settings group, loaded on first use, whose errors name the variable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.settings import _load

PREFIX = "INVENTORY_"


class InventorySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", case_sensitive=False
    )

    # NewStore's field that names the commercetools SKU.
    match_field: Literal["sku", "product_id"] = "sku"
    # Requests in flight per upstream (pages, product look-ups, write batches).
    concurrency: int = Field(16, ge=1, le=256)
    # NewStore calls per second: ~100 for a development tenant, ~200 for production.
    newstore_rate_limit: float = Field(100.0, gt=0, le=10_000)
    # Rows asked per stocked_products page; NewStore may answer fewer (the reply's count
    # is what paging follows).
    newstore_page_size: int = Field(100, ge=1, le=1000)
    # Stop starting new work this long after the run began. Connect ends a job request after
    # 30 min; the margin covers the requests still in flight and the lease release.
    deadline_s: float = Field(25 * 60, gt=0)
    # Lease duration; renewed every third of it, so a crashed run blocks others this long.
    lease_s: float = Field(120.0, ge=5)
    lease_container: str = Field("newstore-connector-jobs", pattern=r"^[-_~.a-zA-Z0-9]+$")
    # How entries are written; graphql batches aliased mutations (measured in docs/inventory.md).
    write_mode: Literal["graphql", "rest"] = "graphql"
    graphql_batch: int = Field(100, ge=1, le=500)
    # Rounds of re-planning after ConcurrentModification / DuplicateField.
    conflict_retries: int = Field(3, ge=0, le=10)


def load_inventory_settings() -> InventorySettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return _load(InventorySettings, PREFIX)
