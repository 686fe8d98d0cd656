"""Shared fixtures: settings pointing at fake hosts, without touching the real environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.settings import CommercetoolsSettings, NewStoreSettings
from event.settings import OrderSettings

CTP_API = "https://api.test.commercetools.invalid"
CTP_AUTH = "https://auth.test.commercetools.invalid"
NS_BASE = "https://tenant.test.newstore.invalid"
CTP_SECRET = "ctp-secret-value-0123456789"
NS_PASSWORD = "ns-password-value-0123456789"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own CTP_*/NEW_STORE_* variables or .env file."""

    for name in list(os.environ):
        if name.startswith(
            ("CTP_", "NEW_STORE_", "ORDER_", "CONNECT_", "AUTH_", "HTTP_", "INVENTORY_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ctp_settings() -> CommercetoolsSettings:
    return CommercetoolsSettings(
        client_id="ctp-client",
        client_secret=CTP_SECRET,
        project_key="shop",
        api_url=CTP_API,
        auth_url=CTP_AUTH,
    )


@pytest.fixture
def ns_settings() -> NewStoreSettings:
    return NewStoreSettings(
        base_url=NS_BASE, shop="storefront", username="ns-user", password=NS_PASSWORD
    )


@pytest.fixture
def order_settings() -> OrderSettings:
    return OrderSettings()
