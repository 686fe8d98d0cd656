"""Pub/Sub publishing for the commercetools emulator: which messages and changes a subscription
asks for, and the `Publisher` that delivers the notifications to Google Cloud Pub/Sub
destinations in background tasks (or only keeps them, for tests), retrying like the platform.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque

import httpx

from sandbox.commercetools.common import Json, now_iso


class Publisher:
    """Delivers notifications to Google Cloud Pub/Sub destinations, off the request path.

    With no `pubsub_url` the messages are only kept in `published` (for tests); otherwise each
    is POSTed to `{pubsub_url}/v1/projects/{projectId}/topics/{topic}:publish` in a background
    task, retried a few times like the real platform retries a failing destination."""

    def __init__(
        self,
        pubsub_url: str | None,
        timeout_s: float = 5.0,
        max_in_flight: int = 64,
        attempts: int = 5,
    ) -> None:
        self.pubsub_url = pubsub_url.rstrip("/") if pubsub_url else None
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.attempts = attempts
        self.published: deque[Json] = deque(maxlen=100_000)
        self.delivered = 0
        self.failed = 0
        self.not_delivered = 0  # destinations the sandbox stores but does not deliver to
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def publish(self, destination: Json, payload: Json) -> None:
        if destination.get("type") != "GoogleCloudPubSub":
            self.not_delivered += 1
            return
        record: Json = {
            "projectId": destination.get("projectId"),
            "topic": destination.get("topic"),
            "data": payload,
            "attributes": {},
            "publishedAt": now_iso(),
        }
        if self.pubsub_url is None:
            record["status"] = "stored"
            self.published.append(record)
            return
        task = asyncio.get_running_loop().create_task(self._deliver(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: Json) -> None:
        url = (
            f"{self.pubsub_url}/v1/projects/{record['projectId']}/topics/{record['topic']}:publish"
        )
        data = json.dumps(record["data"], separators=(",", ":")).encode()
        body = {"messages": [{"data": base64.b64encode(data).decode(), "attributes": {}}]}
        client, slots = self._client_for_loop()
        async with slots:
            for attempt in range(self.attempts):
                if record.get("permanent"):
                    break
                if attempt:
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                if await self._post(client, url, body, record):
                    self.delivered += 1
                    self.published.append(record)
                    return
        record["status"] = "failed"
        self.failed += 1
        self.published.append(record)

    @staticmethod
    async def _post(client: httpx.AsyncClient, url: str, body: Json, record: Json) -> bool:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            record["lastError"] = repr(exc)
            return False
        if response.status_code >= 300:
            record["lastError"] = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                record["permanent"] = True  # e.g. a missing topic: retrying cannot help
            return False
        record["status"] = "delivered"
        try:
            record["messageIds"] = response.json().get("messageIds", [])
        except ValueError:
            record["messageIds"] = []
        return True

    def _client_for_loop(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        # Tests may run the app on several event loops; a client belongs to one loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._slots is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            self._slots = asyncio.Semaphore(self.max_in_flight)
            self._loop = loop
        return self._client, self._slots

    async def drain(self) -> None:
        """Wait for the deliveries scheduled so far (not for those scheduled meanwhile, so that
        it returns under a continuous load too)."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    def clear(self) -> None:
        self.published.clear()
        self.delivered = self.failed = self.not_delivered = 0


def wants_message(subscription: Json, resource_type: str, message_type: str) -> bool:
    for item in subscription.get("messages") or []:
        if item.get("resourceTypeId") == resource_type:
            types = item.get("types") or []
            if not types or message_type in types:
                return True
    return False


def wants_change(subscription: Json, resource_type: str) -> bool:
    return any(item.get("resourceTypeId") == resource_type for item in subscription["changes"])
