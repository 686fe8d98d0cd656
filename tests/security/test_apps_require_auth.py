"""Both real apps refuse an unauthenticated caller once auth is configured."""

from __future__ import annotations

import httpx
import pytest

from event.app import create_app as create_event_app
from job.app import create_app as create_job_app
from sandbox.server import serve_in_thread
from sandbox.stack import Stack, running_stack

TOKEN = "a-shared-bearer-token-of-at-least-32-chars"


@pytest.fixture
def stack() -> Stack:
    with running_stack(with_event_app=False) as running:
        yield running


@pytest.mark.parametrize(
    ("factory", "path"), [(create_event_app, "/event"), (create_job_app, "/job")]
)
def test_work_endpoint_needs_the_token(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, factory, path: str
) -> None:
    monkeypatch.setenv("AUTH_BEARER_TOKEN", TOKEN)
    with serve_in_thread(factory(stack.settings())) as url:
        missing = httpx.post(f"{url}{path}", json={})
        wrong = httpx.post(f"{url}{path}", json={}, headers={"Authorization": "Bearer nope"})
        health = httpx.get(f"{url}/health")
        right = httpx.post(
            f"{url}{path}", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )

    assert (missing.status_code, wrong.status_code, health.status_code) == (401, 403, 200)
    assert TOKEN not in missing.text + wrong.text
    assert right.status_code not in (401, 403)
