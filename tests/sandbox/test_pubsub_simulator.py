"""The Pub/Sub simulator pushes like Pub/Sub: envelope, ack codes, backoff, dead letters."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.pubsub import PubSubSimulator, create_app
from sandbox.server import serve_in_thread

TOPIC = "projects/p/topics/orders"
SUBSCRIPTION = "projects/p/subscriptions/orders-push"

# --- a loopback push receiver -----------------------------------------------------------


@dataclass
class Push:
    key: str
    envelope: dict[str, Any]
    started: float
    finished: float = 0.0


@dataclass
class Receiver:
    """Answers each push from a per-message script; records every push it gets.

    A script entry is a status, or `(delay_s, status)`; the last entry repeats.
    """

    url: str = ""
    scripts: dict[str, list[int | tuple[float, int]]] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.scripts.clear()
            self.pushes.clear()

    def by_key(self, key: str) -> list[Push]:
        with self.lock:
            return [p for p in self.pushes if p.key == key]

    async def handle(self, request: Request) -> Response:
        envelope = await request.json()
        key = json.loads(base64.b64decode(envelope["message"].get("data", "")) or "{}").get("key")
        push = Push(str(key), envelope, time.monotonic())
        with self.lock:
            seen = sum(1 for p in self.pushes if p.key == push.key)
            self.pushes.append(push)
            script = self.scripts.get(push.key, [204])
        entry = script[min(seen, len(script) - 1)]
        delay, status = entry if isinstance(entry, tuple) else (0.0, entry)
        if delay:
            await asyncio.sleep(delay)
        push.finished = time.monotonic()
        return Response(status_code=status)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/push", receiver.handle, methods=["POST"])])
    with serve_in_thread(app) as base_url:
        receiver.url = f"{base_url}/push"
        yield receiver


@pytest.fixture(autouse=True)
def _fresh_receiver(receiver: Receiver) -> None:
    receiver.reset()


# --- the simulator under test -----------------------------------------------------------


def data(key: str, **extra: Any) -> str:
    return base64.b64encode(json.dumps({"key": key, **extra}).encode()).decode()


@dataclass
class Sim:
    app: FastAPI
    client: httpx.AsyncClient
    simulator: PubSubSimulator
    receiver: Receiver

    async def subscribe(self, name: str = SUBSCRIPTION, topic: str = TOPIC, **extra: Any) -> None:
        project, _, sub = name.removeprefix("projects/").partition("/subscriptions/")
        if topic not in self.simulator.topics:
            assert (await self.client.put(f"/v1/{topic}")).status_code == 200
        body = {"topic": topic, "pushConfig": {"pushEndpoint": self.receiver.url}, **extra}
        reply = await self.client.put(f"/v1/projects/{project}/subscriptions/{sub}", json=body)
        assert reply.status_code == 200, reply.json()

    async def publish(self, *keys: str, topic: str = TOPIC) -> list[str]:
        messages = [{"data": data(k), "attributes": {"k": k}} for k in keys]
        reply = await self.client.post(f"/v1/{topic}:publish", json={"messages": messages})
        assert reply.status_code == 200, reply.json()
        return reply.json()["messageIds"]


def sim_fixture(**settings: Any) -> Any:
    @pytest.fixture
    async def fixture(receiver: Receiver) -> AsyncIterator[Sim]:
        app = create_app(**({"min_backoff_s": 0.02, "max_backoff_s": 0.1} | settings))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://pubsub.sandbox"
        ) as client:
            yield Sim(app, client, app.state.simulator, receiver)
        await app.state.simulator.aclose()

    return fixture


sim = sim_fixture()
duplicating_sim = sim_fixture(duplicate_rate=1.0, random_seed=7)


# --- REST shapes ------------------------------------------------------------------------


async def test_rest_shapes_and_errors(sim: Sim) -> None:
    await sim.subscribe(ackDeadlineSeconds=20, retryPolicy={"minimumBackoff": "1s"})
    resource = (await sim.client.get(f"/v1/{SUBSCRIPTION}")).json()
    assert resource["topic"] == TOPIC
    assert resource["pushConfig"]["pushEndpoint"] == sim.receiver.url
    assert resource["retryPolicy"] == {"minimumBackoff": "1s"}

    again = await sim.client.put(f"/v1/{SUBSCRIPTION}", json={"topic": TOPIC})
    assert again.status_code == 409
    assert again.json()["error"]["status"] == "ALREADY_EXISTS"
    unknown = await sim.client.post(
        "/v1/projects/p/topics/nope:publish", json={"messages": [{"data": data("x")}]}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == "NOT_FOUND"
    bad = await sim.client.post(f"/v1/{TOPIC}:publish", json={"messages": [{"data": "%%%"}]})
    assert bad.status_code == 400
    empty = await sim.client.post(f"/v1/{TOPIC}:publish", json={"messages": []})
    assert empty.status_code == 400


async def test_push_envelope_has_the_real_fields(sim: Sim) -> None:
    await sim.subscribe()
    (message_id,) = await sim.publish("env")
    await sim.simulator.wait_idle(5)
    (push,) = sim.receiver.by_key("env")
    envelope = push.envelope
    assert envelope["subscription"] == SUBSCRIPTION
    assert "deliveryAttempt" not in envelope  # only with a dead-letter policy
    message = envelope["message"]
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"]
    assert message["publishTime"].endswith("Z")
    assert message["attributes"] == {"k": "env"}
    assert json.loads(base64.b64decode(message["data"])) == {"key": "env"}
    report = (await sim.client.get("/_sandbox/deliveries")).json()
    assert report["published"] == 1 and report["acked"] == 1 and report["nacked"] == 0
    assert report["attempts_by_message"] == {message_id: 1}


# --- ack codes, redelivery, dead letters ------------------------------------------------


async def test_only_the_documented_codes_ack(sim: Sim) -> None:
    await sim.subscribe()
    acking = [200, 201, 202, 204]
    nacking = [203, 301, 400, 404, 409, 429, 500, 503]
    for status in acking + nacking:
        sim.receiver.scripts[f"s{status}"] = [status, 204]
    await sim.publish(*(f"s{status}" for status in acking + nacking))
    await sim.simulator.wait_idle(5)
    for status in acking:
        assert len(sim.receiver.by_key(f"s{status}")) == 1, status
    for status in nacking:
        assert len(sim.receiver.by_key(f"s{status}")) == 2, status
    report = sim.simulator.deliveries()
    assert report["acked"] == len(acking) + len(nacking)
    assert report["nacked"] == len(nacking)


async def test_redelivery_backs_off_exponentially(sim: Sim) -> None:
    await sim.subscribe(retryPolicy={"minimumBackoff": "0.05s", "maximumBackoff": "0.2s"})
    sim.receiver.scripts["flaky"] = [500, 500, 500, 500, 204]
    await sim.publish("flaky")
    await sim.simulator.wait_idle(5)
    pushes = sim.receiver.by_key("flaky")
    assert len(pushes) == 5
    gaps = [b.started - a.started for a, b in itertools.pairwise(pushes)]
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True):
        assert expected * 0.9 <= gap < expected + 0.15, gaps


async def test_dead_letter_after_max_delivery_attempts(sim: Sim) -> None:
    dead_letters = "projects/p/topics/orders-dlq"
    policy = {"deadLetterTopic": dead_letters, "maxDeliveryAttempts": 3}
    await sim.subscribe(deadLetterPolicy=policy)
    await sim.subscribe("projects/p/subscriptions/dlq-push", topic=dead_letters)
    sim.receiver.scripts["poison"] = [500, 500, 500, 204]
    (message_id,) = await sim.publish("poison")
    await sim.simulator.wait_idle(5)

    pushes = sim.receiver.by_key("poison")
    original = [p for p in pushes if p.envelope["subscription"] == SUBSCRIPTION]
    assert [p.envelope["deliveryAttempt"] for p in original] == [1, 2, 3]
    (dead,) = sim.simulator.deliveries()["dead_lettered"]
    assert dead["messageId"] == message_id
    assert dead["subscription"] == SUBSCRIPTION
    assert dead["attempts"] == 3 and dead["last_status"] == 500
    assert dead["data"] == data("poison")
    # republished on the dead-letter topic, where its own subscription acks it
    (forwarded,) = [p for p in pushes if p.envelope["subscription"].endswith("dlq-push")]
    attributes = forwarded.envelope["message"]["attributes"]
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "3"


async def test_without_policy_gives_up_after_default_attempts(sim: Sim) -> None:
    await sim.subscribe()
    sim.receiver.scripts["always-bad"] = [400]
    await sim.publish("always-bad")
    await sim.simulator.wait_idle(5)
    assert len(sim.receiver.by_key("always-bad")) == 5
    (dead,) = (await sim.client.get("/_sandbox/deliveries")).json()["dead_lettered"]
    assert dead["attempts"] == 5 and dead["deadLetterTopic"] is None


async def test_connection_error_is_a_nack() -> None:
    app = create_app(min_backoff_s=0.01, max_backoff_s=0.01, default_max_attempts=2)
    simulator: PubSubSimulator = app.state.simulator
    try:
        simulator.create_topic(TOPIC)
        simulator.create_subscription(
            SUBSCRIPTION,
            {"topic": TOPIC, "pushConfig": {"pushEndpoint": "http://127.0.0.1:9/closed"}},
        )
        simulator.publish(TOPIC, [{"data": data("nobody")}])
        await simulator.wait_idle(5)
        (dead,) = simulator.deliveries()["dead_lettered"]
        assert dead["last_status"] == "connection_error" and dead["attempts"] == 2
    finally:
        await simulator.aclose()


# --- at-least-once, deadlines, concurrency ----------------------------------------------


async def test_duplicates_are_pushed_concurrently(duplicating_sim: Sim) -> None:
    sim = duplicating_sim
    await sim.subscribe()
    for key in ("d1", "d2", "d3"):
        sim.receiver.scripts[key] = [(0.1, 204)]
    ids = await sim.publish("d1", "d2", "d3")
    await sim.simulator.wait_idle(5)
    for key, message_id in zip(("d1", "d2", "d3"), ids, strict=True):
        first, second = sim.receiver.by_key(key)
        assert first.envelope["message"]["messageId"] == second.envelope["message"]["messageId"]
        assert first.envelope["message"]["messageId"] == message_id
        assert second.started < first.finished  # overlapping, not one after the other
    report = sim.simulator.deliveries()
    assert report["duplicates"] == 3 and report["acked"] == 3 and report["pushes"] == 6


async def test_ack_deadline_expiry_redelivers_while_first_push_runs(sim: Sim) -> None:
    await sim.subscribe(ackDeadlineSeconds=0.2, retryPolicy={"minimumBackoff": "0.01s"})
    sim.receiver.scripts["slow"] = [(0.6, 204), 204]
    await sim.publish("slow")
    await sim.simulator.wait_idle(5)
    first, second = sim.receiver.by_key("slow")
    for _ in range(100):  # the abandoned first push is still sleeping in the receiver
        if first.finished:
            break
        await asyncio.sleep(0.02)
    assert second.started < first.finished
    report = sim.simulator.deliveries()
    assert report["outcomes"] == {"timeout": 1, "204": 1}
    assert report["acked"] == 1 and report["nacked"] == 1


async def test_messages_are_pushed_concurrently(sim: Sim) -> None:
    await sim.subscribe()
    keys = [f"c{n}" for n in range(40)]
    for key in keys:
        sim.receiver.scripts[key] = [(0.2, 204)]
    started = time.monotonic()
    await sim.publish(*keys)
    await sim.simulator.wait_idle(5)
    assert time.monotonic() - started < 1.5  # 40 x 0.2 s one after the other would be 8 s
    assert sim.simulator.deliveries()["acked"] == 40


async def test_wait_idle_times_out_while_a_redelivery_is_scheduled(sim: Sim) -> None:
    await sim.subscribe(retryPolicy={"minimumBackoff": "30s"})
    sim.receiver.scripts["later"] = [500]
    await sim.publish("later")
    with pytest.raises(TimeoutError):
        await sim.simulator.wait_idle(0.3)
    assert sim.simulator.deliveries()["scheduled"] == 1
    reply = await sim.client.get("/_sandbox/wait-idle", params={"timeout_s": 0.05})
    assert reply.status_code == 504


async def test_controls_change_at_run_time(sim: Sim) -> None:
    reply = await sim.client.put("/_sandbox/controls", json={"duplicate_rate": 1.0})
    assert reply.json()["duplicate_rate"] == 1.0
    assert reply.json()["min_backoff_s"] == 0.02  # left as it was
    await sim.subscribe()
    await sim.publish("twice")
    await sim.simulator.wait_idle(5)
    assert len(sim.receiver.by_key("twice")) == 2
    # a new concurrency bound swaps the HTTP client; delivery goes on
    await sim.client.put("/_sandbox/controls", json={"max_concurrent_pushes": 2})
    await sim.publish("after-resize")
    await sim.simulator.wait_idle(5)
    assert len(sim.receiver.by_key("after-resize")) == 2
    bad = await sim.client.put("/_sandbox/controls", json={"duplicate_rate": 2})
    assert bad.status_code == 422
