"""Inject one order: fetch -> map -> inject -> record, under the outcome policy.

- injected: NewStore answered 200 -> 200.
- already_injected: NewStore said same_order_injection_with_different_data -> 200.
- ignored: the order id does not look like a commercetools id -> 200, nothing sent anywhere.
- failed: permanent (no such order, unmappable, NewStore 400), or still transient after
  ORDER_MAX_TRANSIENT_ATTEMPTS -> 200, and recorded.
- retry: transient (5xx, 429, 401/403, 404/408/409/425 and any other non-400 answer of
  fulfill_order, a 2xx other than 200, timeouts, network) -> 503, so Pub/Sub redelivers;
  also an injection whose success could not be recorded (the re-injection is idempotent).

Work (order read, mapping, injection) runs within WORK_BUDGET_S; recording the outcome, a
success as much as a failure, gets its own RECORD_BUDGET_S afterwards, so a slow NewStore
answer cannot turn an injected order into a recorded failure.

Acknowledging a permanent failure stops Pub/Sub from looping for 7 days; the record in
commercetools keeps it findable and replayable, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

import structlog
from pydantic import ValidationError

from connector.commercetools import CommercetoolsClient
from connector.http import NotFoundError, UpstreamError
from connector.newstore import ALREADY_INJECTED, NewStoreClient, NewStoreError
from event.envelope import INVALID_RESOURCE_ID, is_resource_id, preview
from event.errors import MappingError
from event.mapping import MappingOptions, map_order, payload_to_json
from event.order import ORDER_EXPANSIONS, Order
from event.records import OrderRecords, RecordStatus
from event.settings import OrderSettings

log = structlog.get_logger("event")

# Pub/Sub's ack deadline is 10 s: the work gets 7 s, recording an outcome up to 2 more.
WORK_BUDGET_S = 7.0
RECORD_BUDGET_S = 2.0
SUCCESS_NOT_RECORDED = "success_not_recorded"


class DeliveryOutcome(StrEnum):
    INJECTED = "injected"
    ALREADY_INJECTED = "already_injected"
    IGNORED = "ignored"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(frozen=True)
class InjectionResult:
    outcome: DeliveryOutcome
    order_id: str
    newstore_order_id: str | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None
    attempts: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.outcome is not DeliveryOutcome.RETRY

    def summary(self) -> dict[str, Any]:
        fields = {
            "outcome": self.outcome.value,
            "order_id": self.order_id,
            "newstore_order_id": self.newstore_order_id,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
        }
        return {k: v for k, v in fields.items() if v is not None}


class RecentSuccesses:
    """Orders this process injected lately, so that Pub/Sub's duplicates are acked for free.

    Bounded in size and age: it only saves requests, correctness never depends on it
    (NewStore's idempotency on `external_id` does).
    """

    def __init__(self, max_orders: int = 10_000, ttl_s: float = 600.0) -> None:
        self.max_orders = max_orders
        self.ttl_s = ttl_s
        self._results: OrderedDict[str, tuple[float, InjectionResult]] = OrderedDict()

    def get(self, order_id: str) -> InjectionResult | None:
        entry = self._results.get(order_id)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def add(self, result: InjectionResult) -> None:
        self._results[result.order_id] = (time.monotonic(), result)
        self._results.move_to_end(result.order_id)
        while len(self._results) > self.max_orders:
            self._results.popitem(last=False)

    def clear(self) -> None:
        self._results.clear()


@dataclass(frozen=True)
class _Injected:
    """What the work established, before it is recorded."""

    outcome: DeliveryOutcome  # INJECTED or ALREADY_INJECTED
    external_id: str
    newstore_order_id: str | None = None


class PermanentFailure(Exception):
    def __init__(self, reason: str, error: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class OrderInjector:
    def __init__(
        self,
        ctp: CommercetoolsClient,
        newstore: NewStoreClient,
        settings: OrderSettings,
        shop: str,
    ) -> None:
        self.ctp = ctp
        self.newstore = newstore
        self.settings = settings
        self.records = OrderRecords(ctp, settings.order_records_container)
        self.options = MappingOptions(
            shop=shop,
            channel_type=settings.new_store_channel_type,
            channel_name=settings.new_store_channel_name,
            default_locale=settings.new_store_default_locale,
            external_id_source=settings.new_store_external_id_source,
        )
        self._in_flight: dict[str, asyncio.Task[InjectionResult]] = {}
        self.recent = RecentSuccesses()

    async def ready(self) -> None:
        await self.ctp.ensure_token()
        await self.newstore.ensure_token()

    async def aclose(self) -> None:
        await self.ctp.aclose()
        await self.newstore.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def inject(self, order_id: str, message_id: str | None = None) -> InjectionResult:
        """Concurrent deliveries of one order in this process share a single injection, and
        a late duplicate of an order injected here shortly before costs no request at all.

        An `order_id` that does not look like a commercetools id (an operator's replay, say:
        the app's envelope has checked its own) is ignored before it reaches any URL."""
        if not is_resource_id(order_id):
            log.warning("not a commercetools id: ignored", resource_id=preview(order_id))
            return InjectionResult(
                DeliveryOutcome.IGNORED, preview(order_id), reason=INVALID_RESOURCE_ID
            )
        done = self.recent.get(order_id)
        if done is not None:
            return done
        task = self._in_flight.get(order_id)
        if task is None:
            task = asyncio.create_task(self._inject_once(order_id, message_id))
            self._in_flight[order_id] = task
            task.add_done_callback(lambda _: self._in_flight.pop(order_id, None))
        result = await asyncio.shield(task)
        if result.outcome in (DeliveryOutcome.INJECTED, DeliveryOutcome.ALREADY_INJECTED):
            self.recent.add(result)
        return result

    async def _inject_once(self, order_id: str, message_id: str | None) -> InjectionResult:
        context = {"message_id": message_id} if message_id else {}
        try:
            async with asyncio.timeout(WORK_BUDGET_S):
                injected = await self._fetch_map_inject(order_id)
        except PermanentFailure as failure:
            return await self._record_permanent(order_id, failure, context)
        except (UpstreamError, TimeoutError) as error:
            return await self._record_transient(order_id, _error_record(error), context)
        except Exception as error:  # a bug must not drop the order: retry, count, then park it
            log.exception("unexpected error", order_id=order_id)
            return await self._record_transient(order_id, _error_record(error), context)
        return await self._record_success(order_id, injected, context)

    async def _fetch_map_inject(self, order_id: str) -> _Injected:
        payload = await self._payload(order_id)
        external_id = str(payload["external_id"])
        try:
            created = await self.newstore.fulfill_order(payload_to_json(payload))
        except NewStoreError as error:
            if error.error_code == ALREADY_INJECTED:
                return _Injected(DeliveryOutcome.ALREADY_INJECTED, external_id)
            if error.transient:
                raise
            raise PermanentFailure("newstore_rejected", error.as_record()) from None
        newstore_id = created.get("id")
        if not isinstance(newstore_id, str):
            log.warning("NewStore created the order but answered no order id", order_id=order_id)
            newstore_id = None
        return _Injected(DeliveryOutcome.INJECTED, external_id, newstore_id)

    async def _payload(self, order_id: str) -> dict[str, Any]:
        try:
            order_json = await self.ctp.get_order(order_id, ORDER_EXPANSIONS)
        except NotFoundError:
            error = {"message": "no such order in commercetools"}
            raise PermanentFailure("order_not_found", error) from None
        try:
            order = Order.model_validate(order_json)
            return map_order(order, self.options).payload
        except ValidationError as error:
            detail = f"{error.error_count()} field error(s), first at {_first_location(error)}"
            raise PermanentFailure("unreadable_order", {"message": detail}) from None
        except MappingError as error:
            raise PermanentFailure(error.reason, {"message": error.message}) from None

    # --- recording ----------------------------------------------------------------------

    async def _record_success(
        self, order_id: str, injected: _Injected, context: dict[str, Any]
    ) -> InjectionResult:
        """Record a success within its own budget. It always supersedes an earlier failed or
        retrying record. If it cannot be recorded the answer is 503, not a recorded failure:
        Pub/Sub redelivers, the injection is repeated (NewStore is idempotent on
        external_id) and the record is tried again."""
        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                if injected.outcome is DeliveryOutcome.INJECTED:
                    return await self._record_injected(order_id, injected, context)
                return await self._record_already_injected(order_id, injected, context)
        except Exception as error:  # UpstreamError, TimeoutError, conflicts, or a bug
            if not isinstance(error, UpstreamError | TimeoutError):
                log.exception("unexpected error while recording a success", order_id=order_id)
            log.warning(
                "injected, but the outcome could not be recorded",
                order_id=order_id,
                error=str(error),
            )
            return InjectionResult(
                DeliveryOutcome.RETRY,
                order_id,
                newstore_order_id=injected.newstore_order_id,
                reason=SUCCESS_NOT_RECORDED,
                error=_error_record(error, RECORD_BUDGET_S),
            )

    async def _record_injected(
        self, order_id: str, injected: _Injected, context: dict[str, Any]
    ) -> InjectionResult:
        newstore_id = injected.newstore_order_id
        if self.settings.order_record_successes:
            # A blind write, one request: it replaces whatever was recorded before.
            fields = {
                "external_id": injected.external_id,
                "newstore_order_id": newstore_id,
                **context,
            }
            await self.records.write_success(order_id, RecordStatus.INJECTED, fields)
        else:
            # Nothing to write, but an earlier failure must not outlive the success.
            await self.records.clear_failure(order_id)
        return InjectionResult(DeliveryOutcome.INJECTED, order_id, newstore_order_id=newstore_id)

    async def _record_already_injected(
        self, order_id: str, injected: _Injected, context: dict[str, Any]
    ) -> InjectionResult:
        previous = await self.records.get(order_id)
        if previous and previous.get("status") == RecordStatus.INJECTED:
            newstore_id = previous.get("newstore_order_id")
            return InjectionResult(
                DeliveryOutcome.ALREADY_INJECTED, order_id, newstore_order_id=newstore_id
            )
        # Recorded in both modes (the order changed after its injection: worth knowing); the
        # write replaces an earlier failed or retrying record.
        fields = {"external_id": injected.external_id, **context}
        await self.records.write_success(order_id, RecordStatus.ALREADY_INJECTED, fields)
        return InjectionResult(DeliveryOutcome.ALREADY_INJECTED, order_id)

    async def _record_permanent(
        self, order_id: str, failure: PermanentFailure, context: dict[str, Any]
    ) -> InjectionResult:
        fields = {
            "status": RecordStatus.FAILED,
            "reason": failure.reason,
            "error": failure.error,
            **context,
        }
        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                record = await self.records.add_attempt(order_id, lambda _: fields)
        except (UpstreamError, TimeoutError) as error:
            # Without a record an ack would lose the order: let Pub/Sub redeliver instead.
            log.warning("could not record a permanent failure", order_id=order_id, error=str(error))
            return InjectionResult(
                DeliveryOutcome.RETRY, order_id, reason=failure.reason, error=failure.error
            )
        return InjectionResult(
            DeliveryOutcome.FAILED,
            order_id,
            reason=failure.reason,
            error=failure.error,
            attempts=record["attempts"],
        )

    async def _record_transient(
        self, order_id: str, error: dict[str, Any], context: dict[str, Any]
    ) -> InjectionResult:
        """Count the attempt; past the limit, park the order as failed and stop the loop."""
        limit = self.settings.order_max_transient_attempts

        def fields_for(attempts: int) -> dict[str, Any]:
            exhausted = attempts >= limit
            return {
                "status": RecordStatus.FAILED if exhausted else RecordStatus.RETRYING,
                "reason": "transient_attempts_exhausted" if exhausted else "transient_failure",
                "error": error,
                **context,
            }

        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                record = await self.records.add_attempt(order_id, fields_for)
        except (UpstreamError, TimeoutError):
            return InjectionResult(
                DeliveryOutcome.RETRY, order_id, reason="transient_failure", error=error
            )
        outcome = (
            DeliveryOutcome.FAILED
            if record["status"] == RecordStatus.FAILED
            else DeliveryOutcome.RETRY
        )
        return InjectionResult(
            outcome, order_id, reason=record["reason"], error=error, attempts=record["attempts"]
        )


def _error_record(error: BaseException, budget_s: float = WORK_BUDGET_S) -> dict[str, Any]:
    if isinstance(error, UpstreamError):
        return error.as_record()
    if isinstance(error, TimeoutError):
        return {"message": f"no answer within the {budget_s:g} s budget"}
    return {"message": f"unexpected {type(error).__name__}"}


def _first_location(error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False)[0]
    return ".".join(str(part) for part in first["loc"]) or "(root)"
