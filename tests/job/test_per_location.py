"""Per-store stock (`INVENTORY_CHANNELS`): NewStore locations as commercetools supply
channels, one entry per (SKU, channel), through both emulators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, load_settings_group
from job.export import PollPolicy
from job.locations import Location, parse_location_map, plan_channels
from job.settings import InventorySettings
from job.sync import InventorySync, JobClients, Status
from sandbox.commercetools import CommercetoolsEmulator
from sandbox.newstore import NewStoreEmulator

FAST_POLLS = PollPolicy(timeout_s=5.0, first_s=0.001, max_s=0.01)


def make_sync(ctp: CommercetoolsClient, newstore: NewStoreClient, **settings: Any) -> InventorySync:
    inventory = InventorySettings(**{"concurrency": 4, **settings})
    return InventorySync(JobClients(ctp, newstore), inventory, polls=FAST_POLLS)


def channels(emulator: CommercetoolsEmulator) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in emulator.collections["channel"].items.values()}


def per_store(emulator: CommercetoolsEmulator) -> dict[tuple[str, str | None], int]:
    """(sku, channel key or None) -> quantityOnStock of every entry."""
    keys = {c["id"]: c["key"] for c in emulator.collections["channel"].items.values()}
    out: dict[tuple[str, str | None], int] = {}
    for entry in emulator.collections["inventory-entry"].items.values():
        channel = entry.get("supplyChannel")
        out[(entry["sku"], keys[channel["id"]] if channel else None)] = entry["quantityOnStock"]
    return out


def stock(emulator: NewStoreEmulator, rows: list[tuple[str, str, int]], **extra: Any) -> None:
    emulator.set_stock(
        {"product_id": f"P-{sku}", "sku": sku, "fulfillment_node_id": node, "atp": atp, **extra}
        for sku, node, atp in rows
    )


@pytest.fixture(autouse=True)
def catalog(ns_emulator: NewStoreEmulator, ct_emulator: CommercetoolsEmulator) -> None:
    ns_emulator.clear()
    stock(
        ns_emulator,
        [
            ("A", "DC01", 3),
            ("A", "US01", 4),
            ("A", "US02", -2),  # oversold at one store
            ("B", "DC01", 5),
            ("B", "US02", 1),
            ("C", "US01", 9),  # C is no commercetools product
        ],
    )
    products = [{"masterVariant": {"id": 1, "sku": sku}} for sku in ("A", "B")]
    ct_emulator.seed({"products": products})


@pytest.mark.parametrize("sync_mode", ["full", "incremental"])
async def test_each_location_becomes_a_supply_channel_with_its_own_entries(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
    sync_mode: str,
) -> None:
    sync = make_sync(ctp, newstore, channels="both", sync_mode=sync_mode)
    report = await sync.run()
    assert report.status is Status.OK, report.error
    assert sorted(channels(ct_emulator)) == ["DC01", "US01", "US02"]
    for key, channel in channels(ct_emulator).items():
        assert channel["roles"] == ["InventorySupply"] and channel["name"] == {"en": key}
    assert per_store(ct_emulator) == {
        ("A", None): 5,
        ("A", "DC01"): 3,
        ("A", "US01"): 4,
        ("A", "US02"): 0,  # -2 clamped
        ("B", None): 6,
        ("B", "DC01"): 5,
        ("B", "US02"): 1,
    }
    assert report.skipped_no_product == 2  # C: aggregate and US01
    again = await sync.run()
    assert (again.created, again.updated) == (0, 0)  # converged

    # A store sells out; a store stops stocking B (per-store 0, not the stale 1)
    stock(ns_emulator, [("A", "US01", 0)])
    stock(ns_emulator, [("B", "US02", 0)], remove=True)
    changed = await sync.run()
    assert changed.status is Status.OK
    assert per_store(ct_emulator)[("A", "US01")] == 0
    assert per_store(ct_emulator)[("A", None)] == 1
    assert per_store(ct_emulator)[("B", "US02")] == 0
    assert per_store(ct_emulator)[("B", None)] == 5


async def test_per_location_only_leaves_the_channel_less_entry_alone(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    ct_emulator.seed({"inventory": [{"sku": "A", "quantityOnStock": 77}]})
    report = await make_sync(ctp, newstore, channels="per-location", sync_mode="full").run()
    assert report.status is Status.OK
    held = per_store(ct_emulator)
    assert held[("A", None)] == 77  # not written in per-location mode
    assert held[("A", "US01")] == 4


async def test_two_locations_mapped_onto_one_channel_are_summed_and_renamed(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    mapping = {
        "exclude": ["DC01"],
        "channels": {"US01": {"key": "nyc", "name": "New York"}, "US02": "nyc"},
    }
    sync = make_sync(
        ctp, newstore, channels="per-location", sync_mode="full", location_map=json.dumps(mapping)
    )
    report = await sync.run()
    assert report.status is Status.OK
    assert sorted(channels(ct_emulator)) == ["nyc"]
    assert channels(ct_emulator)["nyc"]["name"] == {"en": "New York"}
    assert per_store(ct_emulator) == {("A", "nyc"): 2, ("B", "nyc"): 1}  # 4 - 2; 1
    summary = report.summary()["channels"]
    assert summary == {"synced": {"nyc": ["US01", "US02"]}, "skipped": {"excluded": ["DC01"]}}


async def test_a_disabled_location_is_not_synced(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    ns_emulator.locations["US02"] = {"is_enabled": False}
    report = await make_sync(ctp, newstore, channels="per-location", sync_mode="full").run()
    assert sorted(channels(ct_emulator)) == ["DC01", "US01"]
    assert not any(key == "US02" for _, key in per_store(ct_emulator))
    assert report.summary()["channels"]["skipped"] == {"disabled": ["US02"]}
    assert ns_emulator.sandbox.counters["GET /v0/d/locations"] == 1


async def test_an_existing_channel_is_renamed_and_given_the_role_not_duplicated(
    ctp: CommercetoolsClient,
    newstore: NewStoreClient,
    ns_emulator: NewStoreEmulator,
    ct_emulator: CommercetoolsEmulator,
) -> None:
    ct_emulator.seed(
        {"channels": [{"key": "US01", "roles": ["ProductDistribution"], "name": {"de": "Alt"}}]}
    )
    ns_emulator.locations["US01"] = {"name": "Union Square"}
    await make_sync(ctp, newstore, channels="per-location", sync_mode="full").run()
    channel = channels(ct_emulator)["US01"]
    assert channel["roles"] == ["ProductDistribution", "InventorySupply"]
    assert channel["name"] == {"de": "Alt", "en": "Union Square"}
    assert len(channels(ct_emulator)) == 3


async def test_a_dry_run_creates_no_channel(
    ctp: CommercetoolsClient, newstore: NewStoreClient, ct_emulator: CommercetoolsEmulator
) -> None:
    report = await make_sync(ctp, newstore, channels="both", sync_mode="full").run(dry_run=True)
    assert report.status is Status.DRY_RUN
    assert channels(ct_emulator) == {} and per_store(ct_emulator) == {}


# --- the mapping, pure ----------------------------------------------------------------------


def test_the_mapping_includes_excludes_renames_and_merges() -> None:
    locations = [
        Location("US01", True, "Union Square"),
        Location("US02", True),
        Location("US03", False),
        Location("DC01", True),
        Location("X.1", True),
    ]
    mapping = parse_location_map(
        json.dumps(
            {
                "include": ["US01", "US02", "US03", "X.1"],
                "channels": {"US02": {"key": "US01"}, "X.1": {"key": "x-1", "name": "Outlet"}},
            }
        )
    )
    planned = plan_channels(locations, mapping)
    assert [(s.key, s.name, sorted(s.nodes)) for s in planned.specs] == [
        ("US01", "Union Square", ["US01", "US02"]),
        ("x-1", "Outlet", ["X.1"]),
    ]
    assert (planned.skipped_disabled, planned.skipped_excluded) == (["US03"], ["DC01"])
    # without a map, an id that is no valid channel key is left out, and said so
    assert plan_channels(locations, parse_location_map("")).skipped_invalid == ["X.1"]


def test_the_mapping_can_be_a_file(tmp_path: Path) -> None:
    path = tmp_path / "locations.json"
    path.write_text(json.dumps({"exclude": ["DC01"]}))
    assert parse_location_map(f"@{path}").exclude == {"DC01"}


@pytest.mark.parametrize(
    "text",
    ['{"channels": {"US01": {"key": "a b"}}}', '{"include": "US01"}', "[1]", "{not json", "@/nope"],
)
def test_a_wrong_mapping_is_a_configuration_error_naming_the_variable(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTORY_LOCATION_MAP", text)
    with pytest.raises(ConfigError, match="INVENTORY_LOCATION_MAP"):
        load_settings_group(InventorySettings, "INVENTORY_")
