"""Configuration: clear errors that name the variable, and secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.settings import ConfigError, Settings

BASE_ENV = {
    "CTP_CLIENT_ID": "id",
    "CTP_CLIENT_SECRET": "very-secret-ctp",
    "CTP_PROJECT_KEY": "shop",
    "CTP_REGION": "europe-west1.gcp",
    "NEW_STORE_BASE_URL": "https://tenant.p.newstore.net",
    "NEW_STORE_SHOP": "storefront",
    "NEW_STORE_USERNAME": "user",
    "NEW_STORE_PASSWORD": "very-secret-ns",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(BASE_ENV)


def test_hosts_follow_the_region(env: dict[str, str]) -> None:
    settings = Settings().validate_all()
    assert settings.commercetools.api_base == "https://api.europe-west1.gcp.commercetools.com"
    assert settings.commercetools.auth_base == "https://auth.europe-west1.gcp.commercetools.com"


def test_url_overrides_win(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTP_API_URL", "http://127.0.0.1:9000/")
    monkeypatch.setenv("CTP_AUTH_URL", "http://127.0.0.1:9001")
    settings = Settings().commercetools
    assert (settings.api_base, settings.auth_base) == (
        "http://127.0.0.1:9000",
        "http://127.0.0.1:9001",
    )


def test_missing_variable_is_named(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTP_PROJECT_KEY")
    with pytest.raises(ConfigError, match="CTP_PROJECT_KEY: Field required"):
        Settings().validate_all()


def test_unknown_region_is_named(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTP_REGION", "mars-north1.gcp")
    with pytest.raises(ConfigError, match="CTP_REGION"):
        Settings().validate_all()


def test_newstore_needs_one_complete_auth_flow(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEW_STORE_PASSWORD")
    with pytest.raises(ConfigError, match="NEW_STORE_USERNAME and NEW_STORE_PASSWORD"):
        Settings().validate_all()
    for name, value in {
        "NEW_STORE_CLIENT_ID": "app",
        "NEW_STORE_CLIENT_SECRET": "s",
        "NEW_STORE_TOKEN_URL": "https://id.p.newstore.net/auth/realms/t/protocol/openid-connect/token",
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings().newstore.uses_client_credentials


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in BASE_ENV.items()))
    monkeypatch.chdir(tmp_path)
    assert Settings().validate_all().newstore.shop == "storefront"


def test_secrets_never_print(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings().validate_all()
    shown = repr(settings.commercetools) + str(settings.newstore)
    assert "very-secret" not in shown
    monkeypatch.setenv("CTP_REGION", "nowhere")
    with pytest.raises(ConfigError) as raised:
        Settings().validate_all()
    assert "very-secret" not in str(raised.value)
