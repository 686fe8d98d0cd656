"""Readiness that says whether both APIs answer, one JSON line per failure, and `dry_run`.

Against the sandbox over real HTTP; requests are counted at the emulators.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI

import connector.service
from connector.settings import CommercetoolsSettings, Settings
from event.app import create_app as create_event_app
from job.app import create_app as create_job_app
from job.settings import InventorySettings
from sandbox.server import free_port, serve_in_thread
from sandbox.stack import PROJECT_KEY, Stack
from tests.job.conftest import no_inventory_variables


def counters(url: str) -> dict[str, int]:
    by_endpoint: dict[str, int] = httpx.get(f"{url}/_sandbox/counters").json()["by_endpoint"]
    return by_endpoint


def probes(stack: Stack) -> int:
    return counters(stack.ctp_url).get(f"GET /{PROJECT_KEY}", 0)


@pytest.fixture
def event_app(stack: Stack) -> Iterator[str]:
    with serve_in_thread(create_event_app(stack.settings())) as url:
        yield url


def test_not_ready_while_the_commercetools_api_refuses_connections(stack: Stack) -> None:
    """The auth host hands out tokens, the API host is down: not ready, and it says where."""
    good = stack.settings()
    closed = free_port()
    api_down = CommercetoolsSettings(
        client_id=good.commercetools.client_id,
        client_secret=good.commercetools.client_secret,
        project_key=PROJECT_KEY,
        api_url=f"http://127.0.0.1:{closed}",
        auth_url=stack.ctp_url,
    )
    with serve_in_thread(create_event_app(Settings(api_down, good.newstore))) as url:
        answer = httpx.get(f"{url}/ready")

    assert answer.status_code == 503
    assert answer.json()["error"] == f"commercetools: connection refused by 127.0.0.1:{closed}"


def test_not_ready_once_commercetools_fails_although_a_token_is_cached(
    stack: Stack, event_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert httpx.get(f"{event_app}/ready").status_code == 200  # the token is cached now
    monkeypatch.setattr(connector.service, "READY_CACHE_S", 0.0)
    httpx.put(f"{stack.ctp_url}/_sandbox/controls", json={"fault_rate": 1.0})

    answer = httpx.get(f"{event_app}/ready")

    assert answer.status_code == 503
    assert answer.json()["error"].startswith("commercetools: ")
    assert "503" in answer.json()["error"]


def test_ready_is_cached_so_probes_cost_the_upstreams_nothing(stack: Stack, event_app: str) -> None:
    answers = [httpx.get(f"{event_app}/ready").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert probes(stack) == 1  # one GET of the API host for five probes


async def test_an_unexpected_exception_is_one_json_line_and_a_503() -> None:
    """Not re-raised (ASGITransport would raise it, as uvicorn would print it)."""

    class Worker:
        async def ready(self) -> None: ...

        async def aclose(self) -> None: ...

    app: FastAPI = connector.service.service_app("t", Worker, "/work", pubsub_push=False)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    transport = httpx.ASGITransport(app, raise_app_exceptions=True)
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/boom")

    assert answer.status_code == 503
    assert answer.json() == {"status": "error", "error": "internal_error"}
    errors = [line for line in logs if line["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["event"] == "unexpected error" and errors[0]["error_type"] == "RuntimeError"
    assert isinstance(errors[0]["exc_info"], RuntimeError)  # rendered as the `exception` field


@pytest.mark.usefixtures(no_inventory_variables.__name__)
def test_post_job_dry_run_writes_nothing_and_unknown_parameters_are_refused(
    stack: Stack,
) -> None:
    stack.ctp.seed({"products": [{"masterVariant": {"id": 1, "sku": "SKU-DRY"}}]})
    app = create_job_app(stack.settings(), InventorySettings(sync_mode="full"))
    with serve_in_thread(app) as url:
        refused = [
            httpx.post(f"{url}/job", params=params, timeout=60)
            for params in ({"dry_run": "maybe"}, {"dryrun": "true"})
        ]
        before = counters(stack.newstore_url)
        dry = httpx.post(f"{url}/job", params={"dry_run": "true"}, timeout=60)
        entries = len(stack.ctp.collections["inventory-entry"].items)

    assert [r.status_code for r in refused] == [400, 400]
    assert before == {}  # a refused request reads nothing either
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "dry_run"
    assert entries == 0  # planned, not written
    assert json.loads(dry.text)["planned"]["creates"] + dry.json()["planned"]["updates"] > 0
