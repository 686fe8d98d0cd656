"""Cancel in NewStore an order cancelled in commercetools, exactly once, never in a loop.

An `OrderStateChanged` to `Cancelled` (event/triggers.py) comes here:

1. The order's cancellation record (Custom Object `ORDER_CANCELLATIONS_CONTAINER/<order id>`)
   says `cancelled`: done, nothing sent (a duplicate, or whoever learnt first that NewStore
   cancelled the order wrote it).
2. The order is read: still `Cancelled` (a stale message is ignored), and in NewStore — its
   syncInfo names NewStore's order id (`id_type=internal`), or its injection record says
   NewStore already had it (`id_type=external`, the `external_id` injected). An order that
   never reached NewStore has nothing to cancel (acknowledged as ignored), unless its
   injection is still being retried: then the cancellation waits for it (503).
3. NewStore's cancellation status (`GET /v0/orders/{id}/cancel`): `canceled` already means
   the cancellation came from NewStore in the first place (the lifecycle app set
   `Cancelled` after NewStore's `order.cancelled`) or was sent before: nothing is sent back.
   This is the loop rule, and it needs no marker: whatever set `Cancelled`, a cancellation is
   only ever sent to an order that NewStore has not cancelled. `cancelable: false` is a
   refusal.
4. `POST /v0/orders/{id}/cancel` with `{reason}` (SalesOrderCancellationRequest, NewStore's
   Swagger): 200 is cancelled and recorded.

The outcome policy is the injection's: NewStore's 400 (and `cancelable: false`) is refused —
acknowledged and recorded as `failed`, for an operator; any other failure is transient —
recorded as `retrying` and answered 503 so Pub/Sub redelivers, parked as `failed` once its
message is ORDER_PARK_AFTER_S old. A cancellation whose success cannot be recorded is
redelivered; NewStore's status then says `canceled` and the record is written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from connector.http import NotFoundError, UpstreamError
from connector.newstore import NewStoreError
from event.envelope import INVALID_RESOURCE_ID, is_resource_id, preview
from event.handler import (
    PREPARED_TTL_S,
    RECORD_BUDGET_S,
    SUCCESS_NOT_RECORDED,
    WORK_BUDGET_S,
    DeliveryOutcome,
    InjectionResult,
    OrderInjector,
    PermanentFailure,
    Transient,
)
from event.memory import RecentlySeen, SharedWork
from event.records import SUCCESS_STATUSES, OrderRecords, RecordStatus
from event.triggers import CANCELLED

# The outcomes a late duplicate may be answered with from memory (event/memory.py).
SETTLED = frozenset({DeliveryOutcome.CANCELLED, DeliveryOutcome.ALREADY_CANCELLED})
log = structlog.get_logger("event")

# The only answer of createCancellation / showCancellationStatus that refuses the request
# itself (the Swagger's 400 "Bad request"); as for the injection, any other is transient.
REFUSED_STATUSES = frozenset({400})
CANCELLATION_PARKED = "transient_failure_parked"


@dataclass(frozen=True)
class Target:
    """The order in NewStore: its id and the `id_type` that id is."""

    newstore_id: str
    id_type: str  # internal | external


class _Done(Exception):
    """The work ended without a NewStore cancellation: answer this."""

    def __init__(self, result: InjectionResult) -> None:
        super().__init__(result.reason)
        self.result = result


class Canceller:
    """Shares the injector's clients, settings, records and syncInfo reader."""

    def __init__(self, injector: OrderInjector) -> None:
        self.injector = injector
        self.ctp = injector.ctp
        self.newstore = injector.newstore
        self.settings = injector.settings
        self.records = OrderRecords(self.ctp, self.settings.order_cancellations_container)
        self.recent: RecentlySeen[InjectionResult] = RecentlySeen(ttl_s=600.0)
        self.work = SharedWork(
            self.recent,
            lambda result: (
                result.outcome in (DeliveryOutcome.CANCELLED, DeliveryOutcome.ALREADY_CANCELLED)
            ),
        )

    async def cancel(
        self,
        order_id: str,
        message_id: str | None = None,
        published_at: datetime | None = None,
    ) -> InjectionResult:
        """Concurrent deliveries of one cancellation share one piece of work; a late
        duplicate of one settled here shortly before costs nothing."""
        if not is_resource_id(order_id):
            return InjectionResult(
                DeliveryOutcome.IGNORED, preview(order_id), reason=INVALID_RESOURCE_ID
            )
        return await self.work.run(
            order_id, lambda: self._cancel_once(order_id, message_id, published_at)
        )

    async def _cancel_once(
        self, order_id: str, message_id: str | None, published_at: datetime | None
    ) -> InjectionResult:
        context = {"message_id": message_id} if message_id else {}
        transient = Transient(published_at, self.settings.order_park_after_s)
        try:
            async with asyncio.timeout(WORK_BUDGET_S):
                target, outcome = await self._work(order_id, published_at)
        except _Done as done:
            return done.result
        except PermanentFailure as failure:
            return await self._record_failure(order_id, failure.reason, failure.error, context)
        except (UpstreamError, TimeoutError) as error:
            return await self._record_transient(order_id, _error(error), context, transient)
        except Exception as error:  # a bug must not drop the cancellation: retry, then park
            log.exception("unexpected error while cancelling", order_id=order_id)
            return await self._record_transient(order_id, _error(error), context, transient)
        return await self._record_success(order_id, target, outcome, context)

    async def _work(
        self, order_id: str, published_at: datetime | None
    ) -> tuple[Target, DeliveryOutcome]:
        previous = await self.records.get(order_id)
        if previous and previous.get("status") == RecordStatus.CANCELLED:
            raise _Done(_already(order_id, previous.get("newstore_order_id"), "recorded"))
        try:
            order = await self.ctp.get_order(order_id)
        except NotFoundError:
            raise _Done(_ignored(order_id, "order_not_found")) from None
        if order.get("orderState") != CANCELLED:
            raise _Done(_ignored(order_id, f"not_cancelled: orderState {order.get('orderState')}"))
        target = await self._target(order_id, order, published_at)
        try:
            status = await self.newstore.cancellation_status(target.newstore_id, target.id_type)
            if status.get("canceled") is True:
                # NewStore cancelled it itself (the lifecycle app then set Cancelled), or an
                # earlier attempt did: nothing is sent back.
                return target, DeliveryOutcome.ALREADY_CANCELLED
            if status.get("cancelable") is False:
                error = {
                    "service": "newstore",
                    "message": "NewStore says the order is not "
                    f"cancelable (is_safe: {status.get('is_safe')})",
                }
                raise PermanentFailure("not_cancelable", error)
            await self.newstore.cancel_order(
                target.newstore_id, target.id_type, self.settings.order_cancel_reason
            )
        except NewStoreError as error:
            if error.status in REFUSED_STATUSES:
                raise PermanentFailure("newstore_refused", error.as_record()) from None
            error.transient = True
            raise
        return target, DeliveryOutcome.CANCELLED

    async def _target(
        self, order_id: str, order: dict[str, Any], published_at: datetime | None
    ) -> Target:
        synced = self.injector.sync.synced_id(order, await self.injector.sync.channel_id())
        if synced is not None:
            return Target(synced, "internal")
        injection = await self.injector.records.get(order_id) or {}
        status = injection.get("status")
        if status in SUCCESS_STATUSES:
            newstore_id = injection.get("newstore_order_id")
            if isinstance(newstore_id, str) and newstore_id:
                return Target(newstore_id, "internal")
            external_id = injection.get("external_id")
            if isinstance(external_id, str) and external_id:
                return Target(external_id, "external")
        # Not in NewStore. A redelivered injection must read the order again (and find it
        # cancelled) rather than send the payload this process kept.
        self.injector.prepared.forget(order_id)
        if status == RecordStatus.RETRYING and self._young(published_at):
            # An injection is still being retried, maybe on another instance from the payload
            # it kept (for PREPARED_TTL_S): wait for its outcome rather than miss the order it
            # may create. After that, every injection reads the order first, finds it
            # cancelled and sends nothing.
            raise _Done(
                InjectionResult(DeliveryOutcome.RETRY, order_id, reason="injection_pending")
            )
        raise _Done(_ignored(order_id, "not_in_newstore"))

    @staticmethod
    def _young(published_at: datetime | None) -> bool:
        if published_at is None:
            return False
        age = (datetime.now(UTC) - published_at).total_seconds()
        return age < PREPARED_TTL_S + WORK_BUDGET_S

    # --- recording ----------------------------------------------------------------------

    async def _record_success(
        self,
        order_id: str,
        target: Target,
        outcome: DeliveryOutcome,
        context: dict[str, Any],
    ) -> InjectionResult:
        fields = {
            "newstore_order_id": target.newstore_id,
            "id_type": target.id_type,
            "source": "connector" if outcome is DeliveryOutcome.CANCELLED else "newstore",
            **context,
        }
        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                await self.records.write_success(order_id, RecordStatus.CANCELLED, fields)
        except (UpstreamError, TimeoutError) as error:
            log.warning("cancelled, but it could not be recorded", error=str(error))
            return InjectionResult(
                DeliveryOutcome.RETRY,
                order_id,
                newstore_order_id=target.newstore_id,
                reason=SUCCESS_NOT_RECORDED,
                error=_error(error),
            )
        reason = None if outcome is DeliveryOutcome.CANCELLED else "cancelled_in_newstore"
        return InjectionResult(
            outcome, order_id, newstore_order_id=target.newstore_id, reason=reason
        )

    async def _record_failure(
        self, order_id: str, reason: str, error: dict[str, Any], context: dict[str, Any]
    ) -> InjectionResult:
        fields = {"status": RecordStatus.FAILED, "reason": reason, "error": error, **context}

        def fields_for(previous: dict[str, Any], _: int) -> dict[str, Any] | None:
            return None if previous.get("status") == RecordStatus.CANCELLED else fields

        try:
            async with asyncio.timeout(RECORD_BUDGET_S):
                record = await self.records.add_attempt(order_id, fields_for)
        except (UpstreamError, TimeoutError):
            return InjectionResult(DeliveryOutcome.RETRY, order_id, reason=reason, error=error)
        if record.get("status") == RecordStatus.CANCELLED:
            return _already(order_id, record.get("newstore_order_id"), "recorded")
        return InjectionResult(
            DeliveryOutcome.FAILED,
            order_id,
            reason=reason,
            error=error,
            attempts=record["attempts"],
        )

    async def _record_transient(
        self,
        order_id: str,
        error: dict[str, Any],
        context: dict[str, Any],
        transient: Transient,
    ) -> InjectionResult:
        """Every transient failure is counted (cancellations are rare; a storm is paced by
        Pub/Sub's backoff); parked as failed once its message is ORDER_PARK_AFTER_S old."""

        def fields_for(previous: dict[str, Any], attempts: int) -> dict[str, Any] | None:
            if previous.get("status") == RecordStatus.CANCELLED:
                return None
            parked = transient.due(previous)
            return {
                "status": RecordStatus.FAILED if parked else RecordStatus.RETRYING,
                "reason": CANCELLATION_PARKED if parked else "transient_failure",
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
        if record.get("status") == RecordStatus.CANCELLED:
            return _already(order_id, record.get("newstore_order_id"), "recorded")
        outcome = (
            DeliveryOutcome.FAILED
            if record["status"] == RecordStatus.FAILED
            else DeliveryOutcome.RETRY
        )
        return InjectionResult(
            outcome, order_id, reason=record["reason"], error=error, attempts=record["attempts"]
        )


def _ignored(order_id: str, reason: str) -> InjectionResult:
    return InjectionResult(DeliveryOutcome.IGNORED, order_id, reason=reason)


def _already(order_id: str, newstore_id: Any, reason: str) -> InjectionResult:
    return InjectionResult(
        DeliveryOutcome.ALREADY_CANCELLED,
        order_id,
        newstore_order_id=newstore_id if isinstance(newstore_id, str) else None,
        reason=reason,
    )


def _error(error: BaseException) -> dict[str, Any]:
    if isinstance(error, UpstreamError):
        return error.as_record()
    if isinstance(error, TimeoutError):
        return {"message": f"no answer within the {WORK_BUDGET_S:g} s budget"}
    return {"message": f"unexpected {type(error).__name__}"}
