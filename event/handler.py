"""Inject one order: fetch -> map -> inject -> record, under the outcome policy.

- injected: NewStore answered 200 -> 200.
- already_injected: NewStore said same_order_injection_with_different_data -> 200.
- ignored: the order id does not look like a commercetools id -> 200, nothing sent anywhere;
  or the order is not eligible yet under ORDER_INJECT_WHEN (`event/triggers.py`) -> 200,
  after the order read, nothing sent to NewStore.
- failed: permanent (no such order, unmappable, outside NewStore's published contract,
  NewStore 400), or still transient once its message is ORDER_PARK_AFTER_S old -> 200, and
  recorded.
- retry: transient (5xx, 429, 401/403, 404/408/409/425 and any other non-400 answer of
  fulfill_order, a 2xx other than 200, timeouts, network, no slot under the client-side
  rate limit within the budget) -> 503, so Pub/Sub redelivers; also an injection whose
  success could not be recorded (the re-injection is idempotent).

Transient failures are cheap to repeat: the first one of an order in this process is
recorded, then at most one every TRANSIENT_RECORD_EVERY_S, and the order's payload is kept
for the redeliveries, so a storm costs about one NewStore call per delivery and nothing
in commercetools; a delivery that cannot get a rate-limit slot in time costs nothing at all.
No recorded success is ever overwritten by a later failure.

The order carries its own outcome: an injection writes NewStore's order id into the
order's syncInfo (the `newstore` channel), one request, and that is the success's record
(with ORDER_RECORD_SUCCESSES=true a Custom Object is written as well). A late duplicate, on
any instance, finds it in the order it reads and is answered `already_injected` without a
NewStore request. A failure record that this process wrote is deleted by the success; one
written elsewhere is superseded when it is read (`OrderRecords.failed`, `orders show`).

Work (order read, mapping, injection) runs within WORK_BUDGET_S; recording the outcome, a
success as much as a failure, gets its own RECORD_BUDGET_S afterwards, so a slow NewStore
answer cannot turn an injected order into a recorded failure.

Acknowledging a permanent failure stops Pub/Sub from looping for 7 days; the record in
commercetools keeps it findable and replayable, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

import structlog
from pydantic import ValidationError

from connector.commercetools import CommercetoolsClient
from connector.http import NotFoundError, UpstreamError
from connector.newstore import ALREADY_INJECTED, NewStoreClient, NewStoreError
from connector.ratelimit import RateGate, Throttled, call_deadline
from event.contract import check_payload
from event.envelope import INVALID_RESOURCE_ID, is_resource_id, parse_publish_time, preview
from event.errors import MappingError
from event.mapping import MappingOptions, map_order, payload_to_json
from event.memory import RecentlySeen, SharedWork
from event.order import ORDER_EXPANSIONS, Order
from event.records import SUCCESS_STATUSES, OrderRecords, OrderSync, RecordStatus
from event.settings import OrderSettings
from event.triggers import ineligible

log = structlog.get_logger("event")

# Pub/Sub's ack deadline is 10 s: the work gets 7 s, recording an outcome up to 2 more.
WORK_BUDGET_S = 7.0
RECORD_BUDGET_S = 2.0
SUCCESS_NOT_RECORDED = "success_not_recorded"
PARKED = "transient_failure_parked"
# After a recorded transient failure, this process records the same order's next ones at most
# this often; the attempts in between are counted in memory and added with the next write.
TRANSIENT_RECORD_EVERY_S = 300.0
# How long an order's payload is kept for the redeliveries after a transient failure.
PREPARED_TTL_S = 600.0


class DeliveryOutcome(StrEnum):
    INJECTED = "injected"
    ALREADY_INJECTED = "already_injected"
    IGNORED = "ignored"
    FAILED = "failed"
    RETRY = "retry"
    # A cancellation's (event/cancellation.py): sent to NewStore, or NewStore had it already.
    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already_cancelled"


# The outcomes a late duplicate may be answered with from memory (event/memory.py).
SETTLED = frozenset({DeliveryOutcome.INJECTED, DeliveryOutcome.ALREADY_INJECTED})


@dataclass(frozen=True)
class InjectionResult:
    outcome: DeliveryOutcome
    order_id: str
    newstore_order_id: str | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None
    attempts: int | None = None
    omitted: tuple[str, ...] = ()

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
            "omitted": list(self.omitted) or None,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class PreparedOrder:
    """The payload to inject, and what the mapping and the contract left out of it."""

    payload: dict[str, Any]
    omitted: tuple[str, ...] = ()
    # The order's version when it was read: the syncInfo write names it.
    version: int | None = None


@dataclass(frozen=True)
class _Injected:
    """What the work established, before it is recorded."""

    outcome: DeliveryOutcome  # INJECTED or ALREADY_INJECTED
    external_id: str | None
    newstore_order_id: str | None = None
    omitted: tuple[str, ...] = ()
    version: int | None = None
    # The order's syncInfo already said so: nothing was sent, nothing is to be written.
    synced: bool = False


class NotEligible(Exception):
    """The order may not be injected yet (ORDER_INJECT_WHEN): acknowledged as ignored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        inject_gate: RateGate | None = None,
    ) -> None:
        self.ctp = ctp
        self.newstore = newstore
        self.settings = settings
        self.records = OrderRecords(ctp, settings.order_records_container)
        self.sync = OrderSync(ctp)
        self.options = MappingOptions(
            shop=shop,
            channel_type=settings.new_store_channel_type,
            channel_name=settings.new_store_channel_name,
            default_locale=settings.new_store_default_locale,
            external_id_source=settings.new_store_external_id_source,
            product_id_source=settings.new_store_product_id_source,
        )
        # The client-side limit of fulfill_order; its hooks are on the NewStore client.
        self.inject_gate = inject_gate
        self.recent: RecentlySeen[InjectionResult] = RecentlySeen(ttl_s=600.0)
        self.work = SharedWork(
            self.recent,
            lambda result: (
                result.outcome in (DeliveryOutcome.INJECTED, DeliveryOutcome.ALREADY_INJECTED)
            ),
        )
        self.prepared: RecentlySeen[PreparedOrder] = RecentlySeen(ttl_s=PREPARED_TTL_S)
        # Per order: when this process last recorded a transient failure, and the attempts
        # it has seen since without writing them.
        self.unrecorded: RecentlySeen[tuple[float, int]] = RecentlySeen(ttl_s=3600.0)
        # The orders whose failure this process recorded (failed or retrying): their success
        # deletes the record. Others' records are superseded when read (OrderRecords.failed).
        self.failure_recorded: RecentlySeen[bool] = RecentlySeen(ttl_s=86400.0)
        self.clock: Callable[[], float] = time.monotonic

    async def ready(self) -> None:
        await self.ctp.check_ready()
        await self.newstore.check_ready()

    async def aclose(self) -> None:
        await self.ctp.aclose()
        await self.newstore.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def inject(
        self,
        order_id: str,
        message_id: str | None = None,
        published_at: datetime | None = None,
    ) -> InjectionResult:
        """Concurrent deliveries of one order in this process share a single injection, and
        a late duplicate of an order injected here shortly before costs no request at all.

        An `order_id` that does not look like a commercetools id (an operator's replay, say:
        the app's envelope has checked its own) is ignored before it reaches any URL.

        `published_at`, the message's publish time, dates a transient failure for parking;
        without it (a replay) the order's first recorded failure does."""
        if not is_resource_id(order_id):
            log.warning("not a commercetools id: ignored", resource_id=preview(order_id))
            return InjectionResult(
                DeliveryOutcome.IGNORED, preview(order_id), reason=INVALID_RESOURCE_ID
            )
        return await self.work.run(
            order_id, lambda: self._inject_once(order_id, message_id, published_at)
        )

    async def _inject_once(
        self, order_id: str, message_id: str | None, published_at: datetime | None
    ) -> InjectionResult:
        context = {"message_id": message_id} if message_id else {}
        transient = Transient(published_at, self.settings.order_park_after_s)
        try:
            self._check_for_a_slot()
            async with asyncio.timeout(WORK_BUDGET_S):
                with call_deadline(WORK_BUDGET_S):
                    injected = await self._fetch_map_inject(order_id)
        except NotEligible as not_yet:
            self.unrecorded.forget(order_id)
            if self.failure_recorded.get(order_id):  # a failure recorded here is moot
                self.failure_recorded.forget(order_id)
                with contextlib.suppress(UpstreamError, RuntimeError):
                    await self.records.clear_failure(order_id)
            return InjectionResult(DeliveryOutcome.IGNORED, order_id, reason=not_yet.reason)
        except PermanentFailure as failure:
            self.prepared.forget(order_id)
            return await self._record_permanent(order_id, failure, context)
        except Throttled as error:
            if not transient.due_now():
                # Nothing reached NewStore: not worth a commercetools write either.
                return InjectionResult(
                    DeliveryOutcome.RETRY, order_id, reason="rate_limited", error=error.as_record()
                )
            return await self._record_transient(order_id, error.as_record(), context, transient)
        except (UpstreamError, TimeoutError) as error:
            return await self._record_transient(order_id, _error_record(error), context, transient)
        except Exception as error:  # a bug must not drop the order: retry, count, then park it
            log.exception("unexpected error", order_id=order_id)
            return await self._record_transient(order_id, _error_record(error), context, transient)
        self.prepared.forget(order_id)
        # A failure this process recorded for the order: the success deletes it.
        recorded_failure = bool(self.failure_recorded.get(order_id))
        self.failure_recorded.forget(order_id)
        self.unrecorded.forget(order_id)
        return await self._record_success(order_id, injected, context, recorded_failure)

    def _check_for_a_slot(self) -> None:
        """Refuse at once, before reading the order, when fulfill_order's next slot under
        the client-side rate limit lies beyond the work budget: the delivery could only time
        out, and Pub/Sub's backoff spreads the load better than a queue here."""
        if self.inject_gate is not None:
            wait = self.inject_gate.next_wait()
            if wait > WORK_BUDGET_S:
                self.inject_gate.refused += 1
                raise Throttled("newstore", wait)

    async def _fetch_map_inject(self, order_id: str) -> _Injected:
        prepared = self.prepared.get(order_id)
        if prepared is None:
            order_json = await self._read(order_id)
            synced = self.sync.synced_id(order_json, await self.sync.channel_id())
            if synced is not None:  # in NewStore already: the order says so
                return _Injected(DeliveryOutcome.ALREADY_INJECTED, None, synced, synced=True)
            reason = ineligible(order_json, self.settings.order_inject_when)
            if reason is not None:
                raise NotEligible(reason)
            prepared = self._map(order_json)
            # Kept until the outcome is settled: a redelivery after a transient failure sends
            # the same payload again without reading the order again.
            self.prepared.add(order_id, prepared)
        payload, omitted = prepared.payload, prepared.omitted
        external_id = str(payload["external_id"])
        try:
            created = await self.newstore.fulfill_order(payload_to_json(payload))
        except NewStoreError as error:
            if error.error_code == ALREADY_INJECTED:
                return _Injected(DeliveryOutcome.ALREADY_INJECTED, external_id, omitted=omitted)
            if error.transient:
                raise
            raise PermanentFailure("newstore_rejected", error.as_record()) from None
        newstore_id = created.get("id")
        if not isinstance(newstore_id, str):
            log.warning("NewStore created the order but answered no order id", order_id=order_id)
            newstore_id = None
        return _Injected(
            DeliveryOutcome.INJECTED, external_id, newstore_id, omitted, prepared.version
        )

    async def _read(self, order_id: str) -> dict[str, Any]:
        try:
            return await self.ctp.get_order(order_id, ORDER_EXPANSIONS)
        except NotFoundError:
            error = {"message": "no such order in commercetools"}
            raise PermanentFailure("order_not_found", error) from None

    def _map(self, order_json: dict[str, Any]) -> PreparedOrder:
        """The payload of the order as read (pure: mapping and contract check)."""
        order_id = order_json.get("id")
        version = order_json.get("version")
        try:
            order = Order.model_validate(order_json)
            mapped = map_order(order, self.options)
            # Checked against NewStore's published contract before any request: an optional
            # value that breaks it is left out (and listed), a required one fails the order.
            checked = check_payload(mapped.payload)
        except ValidationError as error:
            detail = f"{error.error_count()} field error(s), first at {_first_location(error)}"
            raise PermanentFailure("unreadable_order", {"message": detail}) from None
        except MappingError as error:
            raise PermanentFailure(error.reason, {"message": error.message}) from None
        omitted = mapped.omitted + checked.omitted
        if omitted:
            log.warning("fields left out of the payload", order_id=order_id, omitted=omitted)
        return PreparedOrder(
            checked.payload, omitted, version if isinstance(version, int) else None
        )

    # --- recording ----------------------------------------------------------------------

    async def _record_success(
        self,
        order_id: str,
        injected: _Injected,
        context: dict[str, Any],
        recorded_failure: bool = False,
    ) -> InjectionResult:
        """Record a success within its own budget. It always supersedes an earlier failed or
        retrying record. If it cannot be recorded the answer is 503, not a recorded failure:
        Pub/Sub redelivers, the injection is repeated (NewStore is idempotent on
        external_id) and the record is tried again."""
        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                if injected.synced:
                    if recorded_failure:
                        await self.records.clear_failure(order_id)
                    return InjectionResult(
                        DeliveryOutcome.ALREADY_INJECTED,
                        order_id,
                        newstore_order_id=injected.newstore_order_id,
                        reason="synced",
                    )
                if injected.outcome is DeliveryOutcome.INJECTED:
                    return await self._record_injected(
                        order_id, injected, context, recorded_failure
                    )
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
        self,
        order_id: str,
        injected: _Injected,
        context: dict[str, Any],
        recorded_failure: bool,
    ) -> InjectionResult:
        """The syncInfo write is the success's record, and written last: a success is only
        answered once the order says it is in NewStore. Without the channel (post-deploy not
        run) or without NewStore's order id, the success is a Custom Object record instead.

        An order that went in with values left out of its payload (docs/mapping.md) gets the
        record too, whatever ORDER_RECORD_SUCCESSES says, so that an operator can see what was
        dropped (`orders show`, `orders list --status all`): one more request, for those
        orders only; a complete order stays at three."""
        newstore_id = injected.newstore_order_id
        on_the_order = (
            newstore_id is not None
            and injected.version is not None
            and await self.sync.channel_id() is not None
        )
        record = self.settings.order_record_successes or bool(injected.omitted)
        if record or not on_the_order:
            # A blind write, one request: it replaces whatever was recorded before.
            fields = {
                "external_id": injected.external_id,
                "newstore_order_id": newstore_id,
                **_omitted(injected.omitted),
                **context,
            }
            await self.records.write_success(order_id, RecordStatus.INJECTED, fields)
        elif recorded_failure:
            # The failure this process recorded must not outlive the success. Best effort:
            # should the delete fail, the record is superseded when read (the order's
            # syncInfo says injected), so the success is not held back for it.
            try:
                await self.records.clear_failure(order_id)
            except (UpstreamError, RuntimeError) as error:
                log.warning("could not delete a superseded failure", error=str(error))
        if on_the_order:
            assert newstore_id is not None and injected.version is not None
            # One request: the order now says it is in NewStore, for every instance.
            await self.sync.write(order_id, injected.version, newstore_id)
        return InjectionResult(
            DeliveryOutcome.INJECTED,
            order_id,
            newstore_order_id=newstore_id,
            omitted=injected.omitted,
        )

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
        fields = {"external_id": injected.external_id, **_omitted(injected.omitted), **context}
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

        def fields_for(previous: dict[str, Any], _: int) -> dict[str, Any] | None:
            return None if previous.get("status") in SUCCESS_STATUSES else fields

        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                record = await self.records.add_attempt(order_id, fields_for)
            if record.get("status") not in SUCCESS_STATUSES:
                self.failure_recorded.add(order_id, True)
        except (UpstreamError, TimeoutError) as error:
            # Without a record an ack would lose the order: let Pub/Sub redeliver instead.
            log.warning("could not record a permanent failure", order_id=order_id, error=str(error))
            return InjectionResult(
                DeliveryOutcome.RETRY, order_id, reason=failure.reason, error=failure.error
            )
        if record.get("status") in SUCCESS_STATUSES:
            return _already_recorded(order_id, record)
        return InjectionResult(
            DeliveryOutcome.FAILED,
            order_id,
            reason=failure.reason,
            error=failure.error,
            attempts=record["attempts"],
        )

    async def _record_transient(
        self,
        order_id: str,
        error: dict[str, Any],
        context: dict[str, Any],
        transient: Transient,
    ) -> InjectionResult:
        """Answer 503 so that Pub/Sub redelivers, recording the failure only when it is new
        in this process or TRANSIENT_RECORD_EVERY_S old; park the order as failed (recorded,
        acknowledged) once it has failed for ORDER_PARK_AFTER_S."""
        written_at, skipped = self.unrecorded.get(order_id) or (None, 0)
        recent = written_at is not None and self.clock() - written_at < TRANSIENT_RECORD_EVERY_S
        if recent and not transient.due_now():
            assert written_at is not None
            # Counted now, written with the next record of this order.
            self.unrecorded.add(order_id, (written_at, skipped + 1))
            return InjectionResult(
                DeliveryOutcome.RETRY, order_id, reason="transient_failure", error=error
            )

        def fields_for(previous: dict[str, Any], attempts: int) -> dict[str, Any] | None:
            if previous.get("status") in SUCCESS_STATUSES:
                return None  # already in NewStore: a late failure changes nothing
            parked = transient.due(previous)
            return {
                "status": RecordStatus.FAILED if parked else RecordStatus.RETRYING,
                "reason": PARKED if parked else "transient_failure",
                "error": error,
                "attempts": attempts + skipped,
                **context,
            }

        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                record = await self.records.add_attempt(order_id, fields_for)
            if record.get("status") not in SUCCESS_STATUSES:
                self.failure_recorded.add(order_id, True)
        except (UpstreamError, TimeoutError):
            return InjectionResult(
                DeliveryOutcome.RETRY, order_id, reason="transient_failure", error=error
            )
        if record.get("status") in SUCCESS_STATUSES:
            return _already_recorded(order_id, record)
        if record["status"] == RecordStatus.FAILED:
            self.unrecorded.forget(order_id)
            self.prepared.forget(order_id)
            return InjectionResult(
                DeliveryOutcome.FAILED,
                order_id,
                reason=record["reason"],
                error=error,
                attempts=record["attempts"],
            )
        self.unrecorded.add(order_id, (self.clock(), 0))
        return InjectionResult(
            DeliveryOutcome.RETRY,
            order_id,
            reason=record["reason"],
            error=error,
            attempts=record["attempts"],
        )


@dataclass(frozen=True)
class Transient:
    """When a transiently failing order is parked: once its message is `park_after_s` old,
    or, without a publish time (a replay), once its first recorded failure is."""

    published_at: datetime | None
    park_after_s: float
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def due_now(self) -> bool:
        """Known from the message alone (no record needed)."""
        return self.published_at is not None and self._age(self.published_at) >= self.park_after_s

    def due(self, previous: dict[str, Any]) -> bool:
        since = self.published_at or parse_publish_time(previous.get("first_failed_at"))
        return since is not None and self._age(since) >= self.park_after_s

    def _age(self, since: datetime) -> float:
        return (self.now - since).total_seconds()


def _already_recorded(order_id: str, record: dict[str, Any]) -> InjectionResult:
    """The record says the order is in NewStore: acknowledge, whatever this attempt met."""
    return InjectionResult(
        DeliveryOutcome.ALREADY_INJECTED,
        order_id,
        newstore_order_id=record.get("newstore_order_id"),
    )


def _omitted(omitted: tuple[str, ...]) -> dict[str, Any]:
    return {"omitted": list(omitted)} if omitted else {}


def _error_record(error: BaseException, budget_s: float = WORK_BUDGET_S) -> dict[str, Any]:
    if isinstance(error, UpstreamError):
        return error.as_record()
    if isinstance(error, TimeoutError):
        return {"message": f"no answer within the {budget_s:g} s budget"}
    return {"message": f"unexpected {type(error).__name__}"}


def _first_location(error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False)[0]
    return ".".join(str(part) for part in first["loc"]) or "(root)"
