"""Google Cloud Pub/Sub push simulator: topics, push subscriptions, at-least-once delivery.

A FastAPI app (`create_app`) speaking the Pub/Sub REST shapes the connector's tooling uses
(create topic / subscription, publish), that pushes every message to the subscription's
endpoint over real HTTP with the real envelope, and behaves like the service where it
matters to a push consumer:

- only 102, 200, 201, 202 and 204 ack; any other status, a connection error, or no answer
  within the ack deadline is a nack;
- a nack is redelivered after an exponential backoff (min..max, doubling), until the
  maximum number of delivery attempts, then the message is dead-lettered;
- messages are pushed concurrently, in no particular order, and at a configurable rate an
  extra copy of a delivery is pushed at the same time (at-least-once);
- a push that outlives the ack deadline is redelivered while the first one still runs.

State lives in `app.state.simulator` (a `PubSubSimulator`); `await simulator.wait_idle()`
returns once nothing is in flight or waiting for redelivery.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import random
import time
from base64 import b64decode
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.controls import SANDBOX_PREFIX

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
RETENTION = "604800s"  # the default 7 days, only echoed back
PUSH_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
_GRPC_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}

PushOutcome = int | str  # an HTTP status, or "timeout" / "connection_error"


class SimulatorControls(BaseModel):
    """Run-time settings; a subscription's own retry/dead-letter policy takes precedence."""

    duplicate_rate: float = Field(0.0, ge=0, le=1, description="share of pushes sent twice")
    min_backoff_s: float = Field(10.0, ge=0)
    max_backoff_s: float = Field(600.0, ge=0)
    ack_deadline_s: float = Field(10.0, gt=0)
    default_max_attempts: int = Field(
        5, ge=1, description="attempts before giving up when no dead-letter policy is set"
    )
    # httpcore's pool does O(open requests x connections) work per request, so a
    # moderate bound is cheaper in CPU than a large one; raise it for slow endpoints.
    max_concurrent_pushes: int = Field(32, ge=1, description="HTTP requests open at once")
    random_seed: int | None = None


class ApiError(Exception):
    """A Pub/Sub API error, answered in Google's error shape."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        status = _GRPC_STATUS.get(self.code, "UNKNOWN")
        body = {"error": {"code": self.code, "message": self.message, "status": status}}
        return JSONResponse(body, status_code=self.code)


@dataclass(slots=True)
class Subscription:
    name: str  # projects/{project}/subscriptions/{sub}
    topic: str  # projects/{project}/topics/{topic}
    push_endpoint: str
    resource: dict[str, Any]  # as created, returned by GET
    ack_deadline_s: float | None = None
    min_backoff_s: float | None = None
    max_backoff_s: float | None = None
    max_delivery_attempts: int | None = None  # set only with a dead-letter policy
    dead_letter_topic: str | None = None


@dataclass(slots=True)
class Message:
    message_id: str
    data: str  # base64, as published
    attributes: dict[str, str]
    publish_time: str


@dataclass
class DeliveryStats:
    published: int = 0
    acked: int = 0
    nacked: int = 0
    duplicates: int = 0
    pushes: int = 0
    in_flight: int = 0
    scheduled: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    attempts_by_message: Counter[str] = field(default_factory=Counter)
    dead_lettered: list[dict[str, Any]] = field(default_factory=list)


def parse_duration(value: Any, what: str) -> float:
    """`"10s"` / `"0.5s"` (protobuf Duration JSON) or a plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError as error:
            raise ApiError(400, f"Invalid duration for {what}: {value!r}") from error
    else:
        raise ApiError(400, f"Invalid duration for {what}: {value!r}")
    if seconds < 0:
        raise ApiError(400, f"Negative duration for {what}")
    return seconds


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PubSubSimulator:
    """Topics, subscriptions, delivery tasks and counters of one simulated project set."""

    def __init__(self, controls: SimulatorControls) -> None:
        self.controls = controls
        self.topics: set[str] = set()
        self.subscriptions: dict[str, Subscription] = {}
        self.stats = DeliveryStats()
        self._random = random.Random(controls.random_seed)
        self._next_id = 4_000_000_000_000
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._client_size = 0
        self._retired: list[httpx.AsyncClient] = []  # replaced clients, closed by aclose

    # --- resources ----------------------------------------------------------------------

    def set_controls(self, changes: dict[str, Any]) -> SimulatorControls:
        """Merge changes into the controls; pydantic's ValidationError if they are invalid."""
        merged = SimulatorControls.model_validate(self.controls.model_dump() | changes)
        if "random_seed" in changes:
            self._random = random.Random(merged.random_seed)
        self.controls = merged
        return merged

    def create_topic(self, name: str) -> dict[str, Any]:
        if name in self.topics:
            raise ApiError(409, f"Resource already exists in the project (resource={name}).")
        self.topics.add(name)
        return {"name": name}

    def create_subscription(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name in self.subscriptions:
            raise ApiError(409, f"Resource already exists in the project (resource={name}).")
        topic = body.get("topic")
        if not isinstance(topic, str) or topic not in self.topics:
            raise ApiError(404, f"Resource not found (resource={topic}).")
        endpoint = (body.get("pushConfig") or {}).get("pushEndpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ApiError(
                400,
                "The simulator supports push subscriptions only: "
                "pushConfig.pushEndpoint must be an http(s) URL.",
            )
        subscription = Subscription(name=name, topic=topic, push_endpoint=endpoint, resource={})
        self._apply_policies(subscription, body)
        subscription.resource = {
            "name": name,
            "topic": topic,
            "pushConfig": {"pushEndpoint": endpoint},
            "ackDeadlineSeconds": body.get("ackDeadlineSeconds") or self.controls.ack_deadline_s,
            "messageRetentionDuration": RETENTION,
            "state": "ACTIVE",
            **{k: body[k] for k in ("retryPolicy", "deadLetterPolicy") if k in body},
        }
        self.subscriptions[name] = subscription
        return subscription.resource

    def _apply_policies(self, subscription: Subscription, body: dict[str, Any]) -> None:
        # Real limits (ack deadline 10..600 s, 5..100 attempts) are not enforced, so that
        # tests can run with tiny values.
        if body.get("ackDeadlineSeconds"):
            deadline = parse_duration(body["ackDeadlineSeconds"], "ackDeadlineSeconds")
            subscription.ack_deadline_s = deadline or None
        retry = body.get("retryPolicy") or {}
        dead_letter = body.get("deadLetterPolicy")
        if not isinstance(retry, dict) or not isinstance(dead_letter, dict | None):
            raise ApiError(400, "retryPolicy and deadLetterPolicy must be objects")
        if "minimumBackoff" in retry:
            subscription.min_backoff_s = parse_duration(retry["minimumBackoff"], "minimumBackoff")
        if "maximumBackoff" in retry:
            subscription.max_backoff_s = parse_duration(retry["maximumBackoff"], "maximumBackoff")
        if dead_letter is not None:
            attempts = dead_letter.get("maxDeliveryAttempts") or 5  # 0 means the default, 5
            if type(attempts) is not int or attempts < 1:
                raise ApiError(400, "deadLetterPolicy.maxDeliveryAttempts must be an integer")
            subscription.max_delivery_attempts = attempts
            subscription.dead_letter_topic = dead_letter.get("deadLetterTopic")

    def delete_subscription(self, name: str) -> None:
        if self.subscriptions.pop(name, None) is None:
            raise ApiError(404, f"Resource not found (resource={name}).")

    # --- publishing ---------------------------------------------------------------------

    def publish(self, topic: str, messages: Any) -> list[str]:
        """Accept a publish request's `messages` and start pushing them.

        Must be called on the event loop that runs the simulator.
        """
        if topic not in self.topics:
            raise ApiError(404, f"Resource not found (resource={topic}).")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "The request must contain at least one message.")
        accepted = [self._message(raw) for raw in messages]
        for message in accepted:
            self.stats.published += 1
            for subscription in list(self.subscriptions.values()):
                if subscription.topic == topic:
                    self._spawn(self._deliver(subscription, message))
        return [m.message_id for m in accepted]

    def _message(self, raw: Any) -> Message:
        if not isinstance(raw, dict):
            raise ApiError(400, "A message must be an object.")
        data = raw.get("data") or ""
        attributes = raw.get("attributes") or {}
        if not isinstance(data, str):
            raise ApiError(400, "message.data must be a base64 string.")
        try:
            b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ApiError(400, "message.data is not valid base64.") from error
        if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
        ):
            raise ApiError(400, "message.attributes must map strings to strings.")
        if not data and not attributes:
            raise ApiError(400, "A message must have data or attributes.")
        self._next_id += 1
        return Message(str(self._next_id), data, dict(attributes), _now_rfc3339())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # a strong reference, or the task may be collected
        task.add_done_callback(self._tasks.discard)

    # --- delivery -----------------------------------------------------------------------

    async def _deliver(self, subscription: Subscription, message: Message) -> None:
        """Push until acked, or until the attempts run out (then dead-letter)."""
        attempt = 0
        while subscription.name in self.subscriptions:
            attempt += 1
            self.stats.attempts_by_message[message.message_id] += 1
            outcome, acked = await self._attempt(subscription, message, attempt)
            if acked:
                self.stats.acked += 1
                return
            self.stats.nacked += 1
            if attempt >= self._max_attempts(subscription):
                self._dead_letter(subscription, message, attempt, outcome)
                return
            self.stats.scheduled += 1
            try:
                await asyncio.sleep(self._backoff(subscription, attempt))
            finally:
                self.stats.scheduled -= 1

    def _max_attempts(self, subscription: Subscription) -> int:
        return subscription.max_delivery_attempts or self.controls.default_max_attempts

    def _backoff(self, subscription: Subscription, failed_attempts: int) -> float:
        low = self.controls.min_backoff_s
        high = self.controls.max_backoff_s
        if subscription.min_backoff_s is not None:
            low = subscription.min_backoff_s
        if subscription.max_backoff_s is not None:
            high = subscription.max_backoff_s
        return float(min(high, low * 2 ** (failed_attempts - 1)))

    async def _attempt(
        self, subscription: Subscription, message: Message, attempt: int
    ) -> tuple[PushOutcome, bool]:
        """One delivery attempt, maybe pushed twice at once; acked if any copy acked."""
        body = json.dumps(self._envelope(subscription, message, attempt)).encode()
        if self._random.random() < self.controls.duplicate_rate:
            self.stats.duplicates += 1
            first, second = await asyncio.gather(
                self._push(subscription, body), self._push(subscription, body)
            )
            acked = first in ACK_STATUSES or second in ACK_STATUSES
            return first, acked
        outcome = await self._push(subscription, body)
        return outcome, outcome in ACK_STATUSES

    @staticmethod
    def _envelope(subscription: Subscription, message: Message, attempt: int) -> dict[str, Any]:
        # Empty data / attributes are left out, as protobuf JSON does for empty fields.
        pushed: dict[str, Any] = {}
        if message.data:
            pushed["data"] = message.data
        if message.attributes:
            pushed["attributes"] = message.attributes
        pushed |= {
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": message.publish_time,
            "publish_time": message.publish_time,
        }
        envelope: dict[str, Any] = {"message": pushed, "subscription": subscription.name}
        if subscription.max_delivery_attempts is not None:
            envelope["deliveryAttempt"] = attempt  # only sent with a dead-letter policy
        return envelope

    async def _push(self, subscription: Subscription, body: bytes) -> PushOutcome:
        client, slots = self._http()
        deadline = subscription.ack_deadline_s or self.controls.ack_deadline_s
        async with slots:  # waiting for a slot does not count against the ack deadline
            self.stats.in_flight += 1
            self.stats.pushes += 1
            try:
                async with asyncio.timeout(deadline):
                    response = await client.post(subscription.push_endpoint, content=body)
                outcome: PushOutcome = response.status_code
            except (TimeoutError, httpx.TimeoutException):
                outcome = "timeout"
            except httpx.HTTPError:
                outcome = "connection_error"
            finally:
                self.stats.in_flight -= 1
        self.stats.outcomes[str(outcome)] += 1
        return outcome

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """One pooled client for every push, created on the loop that pushes.

        A new `max_concurrent_pushes` swaps in a new client and semaphore; pushes already
        under way finish on the old one.
        """
        size = self.controls.max_concurrent_pushes
        if self._client is None or self._slots is None or self._client_size != size:
            if self._client is not None:
                self._retired.append(self._client)
            self._client_size = size
            self._client = httpx.AsyncClient(
                timeout=None,  # the ack deadline bounds each push as a whole instead
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                headers={"content-type": "application/json", "user-agent": PUSH_USER_AGENT},
                trust_env=False,  # loopback endpoints must not go through a proxy
            )
            self._slots = asyncio.Semaphore(size)
        return self._client, self._slots

    def _dead_letter(
        self, subscription: Subscription, message: Message, attempts: int, last: PushOutcome
    ) -> None:
        self.stats.dead_lettered.append(
            {
                "messageId": message.message_id,
                "subscription": subscription.name,
                "attempts": attempts,
                "last_status": last,
                "data": message.data,
                "attributes": message.attributes,
                "deadLetterTopic": subscription.dead_letter_topic,
            }
        )
        topic = subscription.dead_letter_topic
        if topic in self.topics:
            attributes = message.attributes | {
                "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
                "CloudPubSubDeadLetterSourceSubscription": subscription.name.rsplit("/", 1)[-1],
            }
            self.publish(topic, [{"data": message.data, "attributes": attributes}])

    # --- introspection ------------------------------------------------------------------

    def idle(self) -> bool:
        return not self._tasks

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Return once nothing is in flight or scheduled; TimeoutError after `timeout_s`.

        Polls rather than waiting on an Event, so that it works from any event loop or
        thread (the simulator may be served by uvicorn in another thread).
        """
        deadline = time.monotonic() + timeout_s
        while not self.idle():
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Pub/Sub simulator not idle after {timeout_s}s: "
                    f"{self.stats.in_flight} in flight, {self.stats.scheduled} scheduled"
                )
            await asyncio.sleep(0.005)

    def deliveries(self, details: bool = True) -> dict[str, Any]:
        stats = self.stats
        report: dict[str, Any] = {
            "published": stats.published,
            "acked": stats.acked,
            "nacked": stats.nacked,
            "in_flight": stats.in_flight,
            "scheduled": stats.scheduled,
            "duplicates": stats.duplicates,
            "pushes": stats.pushes,
            "outcomes": dict(stats.outcomes),
            "dead_lettered": list(stats.dead_lettered),
        }
        if details:
            report["attempts_by_message"] = dict(stats.attempts_by_message)
        return report

    def reset_stats(self) -> None:
        in_flight, scheduled = self.stats.in_flight, self.stats.scheduled
        self.stats = DeliveryStats(in_flight=in_flight, scheduled=scheduled)

    async def aclose(self) -> None:
        """Stop every delivery and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in [*self._retired, self._client]:
            if client is not None:
                await client.aclose()
        self._client, self._slots, self._retired = None, None, []


# --- the app ----------------------------------------------------------------------------


def create_app(
    default_max_attempts: int = 5,
    min_backoff_s: float = 10.0,
    max_backoff_s: float = 600.0,
    ack_deadline_s: float = 10.0,
    duplicate_rate: float = 0.0,
    random_seed: int | None = None,
    max_concurrent_pushes: int = 32,
) -> FastAPI:
    simulator = PubSubSimulator(
        SimulatorControls(
            duplicate_rate=duplicate_rate,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
            ack_deadline_s=ack_deadline_s,
            default_max_attempts=default_max_attempts,
            random_seed=random_seed,
            max_concurrent_pushes=max_concurrent_pushes,
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await simulator.aclose()

    app = FastAPI(title="Pub/Sub push simulator", lifespan=lifespan)
    app.state.simulator = simulator
    _add_api_routes(app, simulator)
    _add_sandbox_routes(app, simulator)
    return app


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise ApiError(400, "Invalid JSON payload received.") from error
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _add_api_routes(app: FastAPI, simulator: PubSubSimulator) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> Response:
        return error.response()

    @app.put("/v1/projects/{project}/topics/{topic}")
    async def create_topic(project: str, topic: str) -> dict[str, Any]:
        return simulator.create_topic(f"projects/{project}/topics/{topic}")

    @app.post("/v1/projects/{project}/topics/{topic}:publish")
    async def publish(project: str, topic: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        ids = simulator.publish(f"projects/{project}/topics/{topic}", body.get("messages"))
        return {"messageIds": ids}

    @app.put("/v1/projects/{project}/subscriptions/{sub}")
    async def create_subscription(project: str, sub: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        return simulator.create_subscription(f"projects/{project}/subscriptions/{sub}", body)

    @app.get("/v1/projects/{project}/subscriptions/{sub}")
    async def read_subscription(project: str, sub: str) -> dict[str, Any]:
        name = f"projects/{project}/subscriptions/{sub}"
        if name not in simulator.subscriptions:
            raise ApiError(404, f"Resource not found (resource={name}).")
        return simulator.subscriptions[name].resource

    @app.delete("/v1/projects/{project}/subscriptions/{sub}")
    async def delete_subscription(project: str, sub: str) -> dict[str, Any]:
        simulator.delete_subscription(f"projects/{project}/subscriptions/{sub}")
        return {}


def _add_sandbox_routes(app: FastAPI, simulator: PubSubSimulator) -> None:
    @app.get(f"{SANDBOX_PREFIX}/deliveries")
    async def deliveries(details: bool = True) -> dict[str, Any]:
        return simulator.deliveries(details)

    @app.get(f"{SANDBOX_PREFIX}/controls")
    async def read_controls() -> SimulatorControls:
        return simulator.controls

    @app.api_route(f"{SANDBOX_PREFIX}/controls", methods=["PUT", "PATCH"])
    async def write_controls(changes: dict[str, Any]) -> SimulatorControls:
        # merges: fields left out keep their current value
        try:
            return simulator.set_controls(changes)
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error

    @app.get(f"{SANDBOX_PREFIX}/wait-idle")
    async def wait_idle(timeout_s: float = 10.0) -> Response:
        try:
            await simulator.wait_idle(timeout_s)
        except TimeoutError as error:
            return JSONResponse({"idle": False, "detail": str(error)}, status_code=504)
        return JSONResponse({"idle": True})

    @app.post(f"{SANDBOX_PREFIX}/reset")
    async def reset() -> dict[str, Any]:
        simulator.reset_stats()
        return simulator.deliveries()
