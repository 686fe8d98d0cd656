"""Inventory settings: defaults, validation naming the variable, and connect.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.settings import ConfigError
from job.settings import InventorySettings, load_inventory_settings

CONNECT_YAML = Path(__file__).resolve().parents[2] / "connect.yaml"


def test_defaults_need_no_variable() -> None:
    settings = load_inventory_settings()
    assert (settings.match_field, settings.write_mode, settings.concurrency) == (
        "sku",
        "graphql",
        16,
    )


def test_the_default_mode_is_auto_with_a_daily_reconciliation() -> None:
    settings = load_inventory_settings()
    assert (settings.sync_mode, settings.full_reconcile_s) == ("auto", 86400)


def test_an_unknown_mode_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_SYNC_MODE", "fast")
    with pytest.raises(ConfigError, match="INVENTORY_SYNC_MODE"):
        load_inventory_settings()


def test_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_MATCH_FIELD", "product_id")
    monkeypatch.setenv("INVENTORY_NEWSTORE_RATE_LIMIT", "200")
    settings = load_inventory_settings()
    assert (settings.match_field, settings.newstore_rate_limit) == ("product_id", 200.0)


def test_an_invalid_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="INVENTORY_CONCURRENCY"):
        load_inventory_settings()


def test_the_job_app_declares_every_inventory_variable() -> None:
    apps = {app["name"]: app for app in yaml.safe_load(CONNECT_YAML.read_text())["deployAs"]}
    declared = {entry["key"] for entry in apps["job"]["configuration"]["standardConfiguration"]}
    expected = {f"INVENTORY_{name.upper()}" for name in InventorySettings.model_fields}
    assert expected - declared == set()
