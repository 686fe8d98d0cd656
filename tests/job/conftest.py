"""The job's clients wired to in-process emulators (ASGI transport: real request handling,
no sockets), with fast retries."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.settings import CommercetoolsSettings, NewStoreSettings
from sandbox import commercetools as ctp_emulator
from sandbox import newstore as newstore_emulator

FAST_RETRY = RetryPolicy(max_attempts=4, budget_s=2.0, initial_backoff_s=0.01, max_backoff_s=0.05)
CT_URL = "http://ct.test"
NS_URL = "http://newstore.test"


@pytest.fixture(autouse=True)
def no_inventory_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own INVENTORY_* variables."""
    for name in list(os.environ):
        if name.startswith("INVENTORY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ct_app() -> FastAPI:
    return ctp_emulator.create_app(project_key="sandbox")


@pytest.fixture
def ns_app() -> FastAPI:
    return newstore_emulator.create_app()


@pytest.fixture
def ct_emulator(ct_app: FastAPI) -> ctp_emulator.CommercetoolsEmulator:
    return ct_app.state.emulator  # type: ignore[no-any-return]


@pytest.fixture
def ns_emulator(ns_app: FastAPI) -> newstore_emulator.NewStoreEmulator:
    return ns_app.state.emulator  # type: ignore[no-any-return]


def sandbox_ctp_settings() -> CommercetoolsSettings:
    """The in-process commercetools emulator's API client."""
    return CommercetoolsSettings(
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        project_key="sandbox",
        api_url=CT_URL,
        auth_url=CT_URL,
    )


@pytest.fixture
async def ctp(ct_app: FastAPI) -> AsyncIterator[CommercetoolsClient]:
    settings = sandbox_ctp_settings()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(ct_app))
    async with CommercetoolsClient(settings, http=http, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
async def newstore(ns_app: FastAPI) -> AsyncIterator[NewStoreClient]:
    settings = NewStoreSettings(
        base_url=NS_URL, shop="shop", username="sandbox-user", password="sandbox-password"
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(ns_app))
    async with NewStoreClient(settings, http=http, retry=FAST_RETRY) as client:
        yield client
