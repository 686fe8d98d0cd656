"""The lifecycle app refuses to start without NewStore's api_key, or with a short one."""

from __future__ import annotations

import asyncio

import pytest

from connector.service import StartupRefused
from connector.settings import ConfigError
from lifecycle.app import create_app
from lifecycle.settings import load_lifecycle_settings
from sandbox.stack import LIFECYCLE_API_KEY


def test_the_api_key_is_required_and_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECYCLE_API_KEY", raising=False)
    monkeypatch.chdir("/")  # no .env file
    with pytest.raises(ConfigError, match="LIFECYCLE_API_KEY"):
        load_lifecycle_settings()
    monkeypatch.setenv("LIFECYCLE_API_KEY", "short")
    with pytest.raises(ConfigError, match="LIFECYCLE_API_KEY") as refused:
        load_lifecycle_settings()
    assert "short" not in str(refused.value)  # the value is never printed
    monkeypatch.setenv("LIFECYCLE_API_KEY", LIFECYCLE_API_KEY)
    monkeypatch.setenv("NEW_STORE_EXTERNAL_ID_SOURCE", "orderNumber")
    settings = load_lifecycle_settings()
    assert settings.external_id_source == "orderNumber"
    assert LIFECYCLE_API_KEY not in repr(settings)


def test_the_app_does_not_start_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECYCLE_API_KEY", raising=False)
    monkeypatch.chdir("/")
    for name, value in {
        "CTP_CLIENT_ID": "c",
        "CTP_CLIENT_SECRET": "s",
        "CTP_PROJECT_KEY": "p",
        "CTP_REGION": "europe-west1.gcp",
        "NEW_STORE_BASE_URL": "https://t.p.newstore.net",
        "NEW_STORE_SHOP": "shop",
        "NEW_STORE_USERNAME": "u",
        "NEW_STORE_PASSWORD": "pw",
    }.items():
        monkeypatch.setenv(name, value)
    app = create_app()

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(StartupRefused):  # after one log line per bad variable
        asyncio.run(start())
