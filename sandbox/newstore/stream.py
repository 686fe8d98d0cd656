"""The NewStore emulator's Event Stream: the log of every event the tenant emitted, the
integrations registered through the event stream configuration API, and their delivery.

What the docs say, and the emulator does (docs.newstore.net /api/webhooks/stream_webhook_sink_hook
and /api/integration/eventstream-graphql/stream_webhook_sink_api):
- an event is POSTed as JSON `{tenant, name, published_at, payload}` to the integration's
  `callback_parameters.callback_url`, with `Authorization: Bearer <api_key>` when an api_key
  is registered;
- delivery is at least once and in no particular order (duplicates and reordering are
  switched on with the stream controls);
- "the response code you send back decides whether the whole stream should be interrupted":
  any answer but 2xx (or no answer) interrupts the integration, whose status becomes
  `stopped`; the failed event and everything after it wait until it is started again;
- registering starts the integration; `_start` and `_stop` change its status; at most 25
  integrations may be registered; an `ends_at` makes it `temporary`: it receives the events
  emitted between `starts_at` and `ends_at`, then stops by itself.

Assumptions where the pages are silent (each marked below): the idempotency key's place in
the body, the format of `filter_conditions`, the answer codes of the configuration API.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field

from sandbox.newstore.errors import Rejected

Json = dict[str, Any]
MAX_INTEGRATIONS = 25  # "At most 25 integrations can be registered" (configuration API page)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise Rejected(400, "bad_request", f"{name} must be an RFC 3339 date-time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(400, "bad_request", f"{name} must be an RFC 3339 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class StreamControls(BaseModel):
    """How the emulator delivers (sandbox only)."""

    auto_deliver: bool = Field(
        False,
        description="deliver in a background task (the stack and the demo turn it on); "
        "false: only on POST /_sandbox/stream/deliver, for deterministic tests",
    )
    interval_s: float = Field(0.05, gt=0, description="pause between background delivery passes")
    duplicate_rate: float = Field(
        0.0, ge=0, le=1, description="share of acknowledged events delivered once more later"
    )
    reorder: bool = Field(False, description="shuffle each delivery pass's pending events")
    seed: int = Field(0, description="seed of the duplicate and reorder choices")
    timeout_s: float = Field(5.0, gt=0, description="how long a callback may take to answer")


@dataclass
class Integration:
    id: str
    callback_url: str
    api_key: str | None
    filter_conditions: list[Json] | None
    integration_type: str
    starts_at: datetime | None
    ends_at: datetime | None
    status: str = "running"
    acked: set[int] = field(default_factory=set)
    redeliver: list[int] = field(default_factory=list)  # duplicates still to send
    last_error: str | None = None

    def view(self) -> Json:
        body: Json = {"id": self.id, "status": self.status}
        body["integration_type"] = self.integration_type
        if self.starts_at is not None:
            body["starts_at"] = _iso(self.starts_at)
        if self.ends_at is not None:
            body["ends_at"] = _iso(self.ends_at)
        params: Json = {"callback_url": self.callback_url}
        if self.api_key is not None:
            params["api_key"] = self.api_key  # the docs' samples show it in the listing
        body["callback_parameters"] = params
        if self.filter_conditions is not None:
            body["filter_conditions"] = self.filter_conditions
        return body

    def wants(self, event: Json, published: datetime) -> bool:
        if self.starts_at is not None and published < self.starts_at:
            return False
        if self.ends_at is not None and published > self.ends_at:
            return False
        if self.filter_conditions is None:
            return True
        # assumption: `filter_conditions` is a list of `{"entity": ..., "events": [...]}`; an
        # entry without `events` lets every event of its entity through (the page links an
        # entity model but shows no example).
        entity = event["name"].split(".", 1)[0]
        for condition in self.filter_conditions:
            if condition.get("entity") not in (None, entity):
                continue
            events = condition.get("events")
            if not events or event["name"] in events:
                return True
        return False


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Delivery:
    integration: str
    name: str
    idempotency_key: str
    status: int | None
    error: str | None = None

    def view(self) -> Json:
        return {
            "integration": self.integration,
            "name": self.name,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "error": self.error,
        }


class EventStream:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.log: list[Json] = []
        self._published: list[datetime] = []
        self.integrations: dict[str, Integration] = {}
        self.controls = StreamControls()
        self.deliveries: list[Delivery] = []
        self._random = random.Random(0)
        # Tests may route callbacks to an in-process app: a factory of the httpx client.
        self.client_factory: Callable[[float], httpx.AsyncClient] = lambda timeout: (
            httpx.AsyncClient(timeout=timeout)
        )
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None

    # --- the log --------------------------------------------------------------------

    def publish(self, name: str, payload: Json, published_at: str | None = None) -> Json:
        when = published_at or now_iso()
        event = {
            "tenant": self.tenant,
            "name": name,
            "published_at": when,
            "payload": payload,
            # assumption: the page says each event carries an idempotency key, unique per
            # event name, without showing where; the emulator sends it at the top level.
            "idempotency_key": str(uuid.uuid4()),
        }
        self.log.append(event)
        self._published.append(parse_time(when, "published_at"))
        if self._wake is not None:
            self._wake.set()
        return event

    def clear(self) -> None:
        self.log.clear()
        self._published.clear()
        self.deliveries.clear()
        for integration in self.integrations.values():
            integration.acked.clear()
            integration.redeliver.clear()

    # --- the configuration API ------------------------------------------------------

    def register(self, body: Any) -> Integration:
        if not isinstance(body, dict):
            raise Rejected(400, "bad_request", "the body must be a JSON object")
        integration_id = body.get("id")
        if not isinstance(integration_id, str) or not integration_id:
            raise Rejected(400, "bad_request", "id is required")
        if integration_id in self.integrations:
            # assumption: the configuration API's answer to a second registration of the
            # same id is not documented; 409 like other NewStore conflicts.
            raise Rejected(409, "conflict", f"integration {integration_id} already exists")
        if len(self.integrations) >= MAX_INTEGRATIONS:
            raise Rejected(400, "bad_request", f"at most {MAX_INTEGRATIONS} integrations")
        params = body.get("callback_parameters")
        if not isinstance(params, dict) or not isinstance(params.get("callback_url"), str):
            raise Rejected(400, "bad_request", "callback_parameters.callback_url is required")
        api_key = params.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise Rejected(400, "bad_request", "callback_parameters.api_key must be a string")
        filters = body.get("filter_conditions")
        if filters is not None and (
            not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters)
        ):
            raise Rejected(400, "bad_request", "filter_conditions must be a list of objects")
        starts_at = parse_time(body["starts_at"], "starts_at") if body.get("starts_at") else None
        ends_at = parse_time(body["ends_at"], "ends_at") if body.get("ends_at") else None
        if starts_at and ends_at and ends_at < starts_at:
            raise Rejected(400, "bad_request", "ends_at is before starts_at")
        integration = Integration(
            id=integration_id,
            callback_url=params["callback_url"],
            api_key=api_key,
            filter_conditions=filters,
            integration_type="temporary" if ends_at else "permanent",
            starts_at=starts_at,
            ends_at=ends_at,
        )
        if starts_at is None:
            # assumption: without starts_at an integration receives what is emitted from now.
            integration.acked.update(range(len(self.log)))
        self.integrations[integration_id] = integration
        self._kick()
        return integration

    def get(self, integration_id: str) -> Integration:
        integration = self.integrations.get(integration_id)
        if integration is None:
            raise Rejected(404, "not_found", f"integration {integration_id} does not exist")
        return integration

    def delete(self, integration_id: str) -> None:
        self.get(integration_id)
        del self.integrations[integration_id]

    def set_status(self, integration_id: str, status: str) -> Integration:
        integration = self.get(integration_id)
        integration.status = status
        if status == "running":
            integration.last_error = None
            self._kick()
        return integration

    # --- delivery -------------------------------------------------------------------

    def pending(self, integration: Integration) -> list[int]:
        return [
            index
            for index, event in enumerate(self.log)
            if index not in integration.acked and integration.wants(event, self._published[index])
        ]

    async def deliver(self) -> Json:
        """One delivery pass over every running integration; returns what it did."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        sent = failed = 0
        async with self._lock:
            for integration in list(self.integrations.values()):
                if integration.status != "running":
                    continue
                ok, bad = await self._deliver_to(integration)
                sent, failed = sent + ok, failed + bad
        return {"delivered": sent, "failed": failed}

    async def _deliver_to(self, integration: Integration) -> tuple[int, int]:
        queue = self.pending(integration)
        if self.controls.reorder:
            self._random.shuffle(queue)
        duplicates, integration.redeliver = integration.redeliver, []
        for index in duplicates:  # a duplicate lands anywhere in the pass
            queue.insert(self._random.randint(0, len(queue)), index)
        sent = 0
        async with self.client_factory(self.controls.timeout_s) as client:
            for position, index in enumerate(queue):
                if not await self._post(client, integration, self.log[index]):
                    integration.status = "stopped"  # the stream is interrupted
                    # what was not sent yet stays pending (or due again, for duplicates)
                    due = [i for i in queue[position:] if i in integration.acked]
                    integration.redeliver.extend(due)
                    return sent, 1
                sent += 1
                first_time = index not in integration.acked
                integration.acked.add(index)
                if first_time and self._random.random() < self.controls.duplicate_rate:
                    integration.redeliver.append(index)
        if integration.integration_type == "temporary" and not self.pending(integration):
            integration.status = "stopped"  # "automatically stopped" after its last event
        return sent, 0

    async def _post(self, client: httpx.AsyncClient, integration: Integration, event: Json) -> bool:
        headers = {"Content-Type": "application/json"}
        if integration.api_key is not None:
            headers["Authorization"] = f"Bearer {integration.api_key}"
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(integration.callback_url, json=event, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self.deliveries.append(
            Delivery(integration.id, event["name"], event["idempotency_key"], status, error)
        )
        if status is not None and 200 <= status < 300:
            return True
        integration.last_error = error or f"HTTP {status}"
        return False

    # --- the background deliverer ---------------------------------------------------

    def _kick(self) -> None:
        if not self.controls.auto_deliver:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while self.controls.auto_deliver:
            self._wake.clear()
            await self.deliver()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.controls.interval_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def set_controls(self, controls: StreamControls) -> None:
        self.controls = controls
        self._random = random.Random(controls.seed)
        if controls.auto_deliver:
            self._kick()
