"""The receiver's work for one delivery from NewStore: check the api_key, apply the event
within `LIFECYCLE_APPLY_BUDGET_S`, or keep it in the inbox; the answer's status tells
NewStore whether to go on (2xx) or to stop the stream and keep the event (5xx, only when
even the inbox write failed).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from connector.commercetools import CommercetoolsClient
from connector.http import UpstreamError
from connector.newstore import NewStoreClient
from connector.settings import Settings
from lifecycle.apply import Deferred, LifecycleApplier
from lifecycle.events import HANDLED, parse_event
from lifecycle.inbox import Inbox
from lifecycle.settings import LifecycleSettings

log = structlog.get_logger("lifecycle")
Json = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Receipt:
    status: int
    body: Json


class LifecycleReceiver:
    def __init__(
        self, ctp: CommercetoolsClient, newstore: NewStoreClient, settings: LifecycleSettings
    ) -> None:
        self.ctp = ctp
        self.newstore = newstore
        self.settings = settings
        self.applier = LifecycleApplier(ctp, newstore, settings)
        self.inbox = Inbox(ctp, settings.inbox_container, settings.inbox_max_attempts)
        # Digests have one length: compare_digest's time says nothing about the key's.
        self._background: set[asyncio.Future[Any]] = set()
        self._key_digest = hashlib.sha256(settings.api_key.get_secret_value().encode()).digest()

    def authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._key_digest)

    async def receive(self, body: Any) -> Receipt:
        event = parse_event(body)
        if event is None:
            log.warning("not an event stream event: acknowledged and ignored")
            return Receipt(200, {"outcome": "ignored", "reason": "not_an_event"})
        fields = {"event_name": event.name, "idempotency_key": event.idempotency_key}
        if event.name not in HANDLED:
            log.info("event ignored", **fields)
            return Receipt(200, {"outcome": "ignored", "event": event.name})
        try:
            result = await self._within(self.applier.apply(event), self.settings.apply_budget_s)
        except (Deferred, UpstreamError, TimeoutError) as problem:
            reason = problem.reason if isinstance(problem, Deferred) else type(problem).__name__
            return await self._keep(event, reason, fields)
        except Exception as bug:
            log.error(
                "event not applied: unexpected error", **fields, error_type=type(bug).__name__
            )
            return await self._keep(event, f"unexpected_{type(bug).__name__}", fields)
        log.info("lifecycle event", **fields, **result.summary())
        return Receipt(200, {"event": event.name, **result.summary()})

    async def _keep(self, event: Any, reason: str, fields: Json) -> Receipt:
        try:
            await self._within(self.inbox.put(event, reason), self.settings.inbox_write_budget_s)
        except (UpstreamError, TimeoutError) as error:
            # Nowhere to keep it: 5xx stops the stream, and NewStore keeps the event.
            log.error("event not stored: inbox unavailable", **fields, error=str(error)[:200])
            return Receipt(503, {"outcome": "failed", "reason": "inbox_unavailable"})
        log.warning("event queued in the inbox", **fields, reason=reason)
        return Receipt(200, {"event": event.name, "outcome": "queued", "reason": reason})

    async def _within(self, work: Coroutine[Any, Any, T], budget_s: float) -> T:
        """The result of `work`, or TimeoutError after `budget_s`; the work is never
        cancelled (a cancelled request can leave its pooled connection unusable): it goes on
        in the background, and whatever it still changes is idempotent."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=budget_s)
        if not done:
            self._background.add(task)
            task.add_done_callback(self._finished)
            raise TimeoutError
        return task.result()

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("late work failed", error_type=type(task.exception()).__name__)

    async def ready(self) -> None:
        await self.ctp.ensure_token()
        await self.newstore.ensure_token()

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        await self.ctp.aclose()
        await self.newstore.aclose()


def build_receiver(settings: Settings, lifecycle: LifecycleSettings) -> LifecycleReceiver:
    return LifecycleReceiver(
        CommercetoolsClient(settings.commercetools), NewStoreClient(settings.newstore), lifecycle
    )
