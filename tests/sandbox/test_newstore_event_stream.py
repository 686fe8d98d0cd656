"""The NewStore emulator's Event Stream: registration, bearer api_key, interruption on a
non-2xx answer, restart, temporary integrations replaying a window, duplicates, reordering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.newstore import create_app
from tests.sandbox.test_newstore_emulator import BASE, bearer

API = "/api/v1/org/integrations/eventstream"
KEY = "k" * 40


class Receiver:
    """A callback endpoint that records what it got and answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/events")
        async def events(request: Request) -> Response:
            self.received.append(
                {"auth": request.headers.get("authorization"), "body": await request.json()}
            )
            return Response(status_code=self.status)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def app(receiver: Receiver) -> FastAPI:
    app = create_app(controls={"rate_limits": False})
    stream = app.state.emulator.stream
    stream.client_factory = lambda timeout: httpx.AsyncClient(
        transport=httpx.ASGITransport(receiver.app), base_url="http://receiver", timeout=timeout
    )
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        c.headers.update(await bearer(c))
        yield c


def registration(**extra: Any) -> dict[str, Any]:
    return {
        "id": "connector",
        "callback_parameters": {"callback_url": "http://receiver/events", "api_key": KEY},
        **extra,
    }


async def emit(client: httpx.AsyncClient, name: str, **payload: Any) -> dict[str, Any]:
    reply = await client.post("/_sandbox/stream/events", json={"name": name, "payload": payload})
    return reply.json()


async def deliver(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.post("/_sandbox/stream/deliver")).json()


async def test_registered_integration_gets_events_with_the_bearer_api_key(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await emit(client, "order.created", id="before")  # before registration: not sent
    created = await client.post(API, json=registration())
    assert created.status_code == 201
    assert created.json()["status"] == "running"
    assert (await client.post(API, json=registration())).status_code == 409
    event = await emit(client, "order.completed", id="o-1")
    assert await deliver(client) == {"delivered": 1, "failed": 0}
    [got] = receiver.received
    assert got["auth"] == f"Bearer {KEY}"
    body = got["body"]
    assert set(body) >= {"tenant", "name", "published_at", "payload"}
    assert (body["name"], body["payload"]["id"]) == ("order.completed", "o-1")
    assert body["idempotency_key"] == event["idempotency_key"]
    assert await deliver(client) == {"delivered": 0, "failed": 0}  # acknowledged once
    listing = (await client.get(API)).json()["integrations"]
    assert [i["id"] for i in listing] == ["connector"]
    no_token = await client.get(API, headers={"Authorization": ""})
    assert no_token.status_code == 403


async def test_a_non_2xx_answer_stops_the_stream_until_started_again(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post(API, json=registration())
    for n in range(3):
        await emit(client, "order.completed", id=f"o-{n}")
    receiver.status = 500
    assert await deliver(client) == {"delivered": 0, "failed": 1}
    status = (await client.get(f"{API}/connector")).json()["status"]
    assert status == "stopped"
    assert await deliver(client) == {"delivered": 0, "failed": 0}  # stopped: nothing sent
    assert len(receiver.received) == 1
    receiver.status = 200
    started = await client.post(f"{API}/connector/_start")
    assert started.json()["status"] == "running"
    assert await deliver(client) == {"delivered": 3, "failed": 0}
    ids = [r["body"]["payload"]["id"] for r in receiver.received]
    assert ids == ["o-0", "o-0", "o-1", "o-2"]  # the failed one again, nothing lost
    await client.post(f"{API}/connector/_stop")
    await emit(client, "order.completed", id="o-3")
    assert await deliver(client) == {"delivered": 0, "failed": 0}
    assert (await client.delete(f"{API}/connector")).status_code == 204
    assert (await client.get(f"{API}/connector")).status_code == 404


async def test_a_temporary_integration_replays_its_window_then_stops(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    stream = app.state.emulator.stream
    stream.publish("order.completed", {"id": "old"}, "2026-01-01T10:00:00Z")
    stream.publish("order.completed", {"id": "in-window"}, "2026-01-02T10:00:00Z")
    stream.publish("order.completed", {"id": "late"}, "2026-01-04T10:00:00Z")
    replay = registration(
        id="replay", starts_at="2026-01-02T00:00:00Z", ends_at="2026-01-03T00:00:00Z"
    )
    created = await client.post(API, json=replay)
    assert created.json()["integration_type"] == "temporary"
    assert await deliver(client) == {"delivered": 1, "failed": 0}
    assert [r["body"]["payload"]["id"] for r in receiver.received] == ["in-window"]
    assert (await client.get(f"{API}/replay")).json()["status"] == "stopped"


async def test_filters_duplicates_and_reordering(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    filters = [{"entity": "order", "events": ["order.completed", "order.cancelled"]}]
    await client.post(API, json=registration(filter_conditions=filters))
    await client.patch("/_sandbox/stream", json={"duplicate_rate": 1.0, "reorder": True, "seed": 3})
    for n in range(6):
        await emit(client, "order.completed", id=f"o-{n}")
    await emit(client, "order.opened", id="ignored")
    await deliver(client)
    await deliver(client)  # the duplicates come in a later pass
    ids = [r["body"]["payload"]["id"] for r in receiver.received]
    assert sorted(set(ids)) == [f"o-{n}" for n in range(6)]
    assert len(ids) == 12  # each twice
    assert ids[:6] != [f"o-{n}" for n in range(6)]  # reordered (seeded, so stable)
