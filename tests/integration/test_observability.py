"""Readiness and log correlation, as an operator and Cloud Logging see them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI

from connector.logs import TRACE_FIELD, TraceContext
from connector.settings import NewStoreSettings, Settings
from event.app import create_app
from sandbox.server import serve_in_thread
from sandbox.stack import Stack


def test_ready_once_tokens_can_be_obtained(stack: Stack, event: httpx.Client) -> None:
    assert event.get("/ready").json() == {"status": "ready"}


@pytest.fixture
def misconfigured_event_app(stack: Stack) -> Iterator[str]:
    good = stack.settings()
    wrong = NewStoreSettings(
        base_url=stack.newstore_url, shop="s", username="sandbox-user", password="not-it-1234"
    )
    with serve_in_thread(create_app(Settings(good.commercetools, wrong))) as url:
        yield url


def test_not_ready_when_newstore_refuses_the_credentials(misconfigured_event_app: str) -> None:
    answer = httpx.get(f"{misconfigured_event_app}/ready")

    assert answer.status_code == 503
    assert "token request refused" in answer.json()["error"]
    assert "not-it-1234" not in answer.text
    assert httpx.get(f"{misconfigured_event_app}/health").status_code == 200


async def test_trace_header_is_on_every_log_line_of_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "shop-prod")
    app = FastAPI()

    @app.get("/context")
    async def context() -> dict[str, object]:
        return dict(structlog.contextvars.get_contextvars())

    traced = TraceContext(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(traced), base_url="http://t") as c:
        seen = (await c.get("/context", headers={"X-Cloud-Trace-Context": "abc123/1;o=1"})).json()
        plain = (await c.get("/context")).json()

    assert seen == {TRACE_FIELD: "projects/shop-prod/traces/abc123"}
    assert plain == {}
