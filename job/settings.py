"""Settings of the inventory job (all optional), as `INVENTORY_*` variables.

Kept beside the job rather than in `connector/settings.py`, following its pattern: a
pydantic-settings group, loaded on first use, whose errors name the variable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.settings import ConfigError, load_settings_group
from job.locations import parse_location_map

PREFIX = "INVENTORY_"
SyncMode = Literal["full", "incremental", "auto"]
ChannelsMode = Literal["aggregate", "per-location", "both"]


class InventorySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", case_sensitive=False
    )

    # full: read every stock row each run. incremental: NewStore's Availabilities Export API,
    # only what changed since a cursor (a 404/403 from it is an error). auto (the default):
    # incremental, or full with a warning while the export API answers 404/403, so that a
    # tenant without it keeps syncing. Why this default: docs/inventory.md, "Modes".
    sync_mode: SyncMode = "auto"
    # Incremental: a full export instead of a delta once the last full one is this old, to
    # heal drift that no delta shows (entries edited in commercetools, products created later).
    full_reconcile_s: float = Field(24 * 3600, ge=0)
    # Incremental: give up on an export still not finished this long after it started.
    export_timeout_s: float = Field(600.0, gt=0)
    # What names the commercetools SKU: `sku` (a stock row's `sku`; in an export, the row's
    # external_identifiers[].identifiers.sku) or NewStore's `product_id`.
    match_field: Literal["sku", "product_id"] = "sku"
    # Requests in flight per upstream (pages, product look-ups, write batches).
    concurrency: int = Field(16, ge=1, le=256)
    # NewStore calls per second. The tenant's budget (~100/s in development, ~200/s in
    # production, docs.newstore.net "API rate limiting") is shared with order injection and
    # every other client of the tenant, so the job takes a quarter of a development tenant's
    # by default: docs/inventory.md, "Sizing the NewStore rate".
    newstore_rate_limit: float = Field(25.0, gt=0, le=10_000)
    # Rows asked per stocked_products page; NewStore may answer fewer (the reply's count
    # is what paging follows).
    newstore_page_size: int = Field(100, ge=1, le=1000)
    # Stop starting new work this long after the run began. Connect ends a job request after
    # 30 min; the margin covers the requests still in flight and the lease release.
    deadline_s: float = Field(25 * 60, gt=0)
    # Lease duration; renewed every third of it, so a crashed run blocks others this long.
    # At least 4.5 times the longest write (125 s: job/sync.py LONGEST_CALL_S), so that a
    # renewal may stall that long and the lease stays trusted (job/lease.py).
    lease_s: float = Field(600.0, ge=5)
    lease_container: str = Field("newstore-connector-jobs", pattern=r"^[-_~.a-zA-Z0-9]+$")
    # How entries are written; graphql batches aliased mutations (measured in docs/inventory.md).
    write_mode: Literal["graphql", "rest"] = "graphql"
    graphql_batch: int = Field(100, ge=1, le=500)
    # Rounds of re-planning after ConcurrentModification / DuplicateField.
    conflict_retries: int = Field(3, ge=0, le=10)
    # Incremental: what a delta export holds for a changed product. `changed` (default, the
    # reading NewStore's Availabilities Export page suggests): only the (product, node) rows
    # that changed, merged into the kept per-node state; `product`: every node of it, so its
    # rows replace the kept state (a node gone from the product is dropped at once).
    # Totals are right under both with `changed`: job/nodes.py, docs/inventory.md.
    delta_rows: Literal["changed", "product"] = "changed"
    # Where stock goes: `aggregate` (the channel-less entry, every node summed: the seed's
    # behaviour), `per-location` (one InventorySupply channel per NewStore location, one
    # entry per SKU and channel) or `both`. docs/inventory.md, "Per-store stock".
    channels: ChannelsMode = "aggregate"
    # Per-location: which NewStore locations become which channels. JSON, or `@<path>` to a
    # JSON file: {"include": [ids], "exclude": [ids], "channels": {"<location id>":
    # {"key": "<channel key>", "name": "<channel name>"}}}. Several locations with one key
    # share one channel (their ATP is summed). Empty: every enabled location, key = its id.
    location_map: str = ""
    # Per-location: the language of the channel names written (a channel's name is a
    # LocalizedString; other languages already there are kept).
    channel_locale: str = Field("en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")

    @field_validator("location_map")
    @classmethod
    def _valid_map(cls, value: str) -> str:
        try:
            parse_location_map(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return value


def load_inventory_settings() -> InventorySettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return load_settings_group(InventorySettings, PREFIX)
