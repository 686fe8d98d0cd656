"""Applying one NewStore event to its commercetools order: read NewStore's view of the order
(and, for a shipment, its fulfillment requests), read the commercetools order, plan
(`lifecycle.plan`, pure), write with the order's version, and on `409
ConcurrentModification` read again and re-plan, a bounded number of times.

Steady state: one commercetools read and at most one update per event (none when the event
changes nothing, e.g. a duplicate). `order.items_cancelled` also reads and writes the
order's lifecycle record (a Custom Object), which holds the cancelled units per line item.

An event that cannot be applied now raises `Deferred` (the receiver puts it in the inbox,
the job drains it): the order unknown to NewStore or commercetools (yet), an upstream down,
conflicts beyond the bound.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from connector.commercetools import CommercetoolsClient, CommercetoolsError
from connector.http import UpstreamError
from connector.newstore import NewStoreClient
from lifecycle import upstream
from lifecycle.customization import StateMapping, state_mapping
from lifecycle.events import HANDLED, LifecycleEvent
from lifecycle.plan import NewStoreView, Plan, needs_shipments, needs_statuses, plan_event
from lifecycle.settings import LifecycleSettings

log = structlog.get_logger("lifecycle")
Json = dict[str, Any]
A = TypeVar("A")
B = TypeVar("B")
IDENTITY_CACHE_SIZE = 10_000


class Deferred(Exception):
    """The event cannot be applied now; `reason` says why (safe to log and store)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied | unchanged | ignored
    order_id: str | None = None
    actions: tuple[str, ...] = ()
    version: int | None = None

    def summary(self) -> Json:
        body: Json = {"outcome": self.outcome}
        if self.order_id:
            body["order_id"] = self.order_id
        if self.actions:
            body["actions"] = list(self.actions)
        return body


class LifecycleApplier:
    def __init__(
        self,
        ctp: CommercetoolsClient,
        newstore: NewStoreClient,
        settings: LifecycleSettings,
        mapping: StateMapping | None = None,
    ) -> None:
        self.ctp = ctp
        self.newstore = newstore
        self.settings = settings
        self.mapping = mapping or state_mapping()
        # NewStore order id -> (external id, NewStore item id -> line item id); immutable.
        self._identities: OrderedDict[str, tuple[str, dict[str, str]]] = OrderedDict()

    async def apply(self, event: LifecycleEvent) -> Applied:
        if event.name not in HANDLED:
            return Applied("ignored")
        order_uuid = event.order_uuid
        if order_uuid is None:
            return Applied("ignored")  # nothing to apply it to; logged by the caller
        view, order = await self._read(event, order_uuid)
        for attempt in range(self.settings.conflict_retries + 1):
            plan = plan_event(event, order, view, self.mapping)
            if plan.cancelled_units:
                await self._record_cancellations(order["id"], plan)
            if not plan.actions:
                return Applied("unchanged", order["id"], version=order["version"])
            try:
                updated = await self.ctp.update_order(order["id"], order["version"], plan.actions)
            except CommercetoolsError as error:
                if "ConcurrentModification" not in error.codes:
                    raise _deferred_or_raise(error) from None
                log.info("order changed meanwhile", order_id=order["id"], attempt=attempt + 1)
                order = await self._ct_order(view.external_id)
                continue
            except UpstreamError as error:
                raise _deferred_or_raise(error) from None
            names = tuple(a["action"] for a in plan.actions)
            return Applied("applied", updated["id"], names, updated.get("version"))
        raise Deferred("conflict", f"order {order['id']} kept changing")

    async def _read(self, event: LifecycleEvent, order_uuid: str) -> tuple[NewStoreView, Json]:
        """NewStore's view and the commercetools order, with as few round trips as the
        event allows: an order's ids (its external id, which NewStore item is which line
        item) never change, so they are remembered; with them known, the commercetools read
        runs alongside NewStore's, or alone when the plan needs no current NewStore state."""
        known = self._identities.get(order_uuid)
        if known is None:
            view = await self._newstore_view(event, order_uuid)
            self._remember(order_uuid, view)
            return view, await self._ct_order(view.external_id)
        self._identities.move_to_end(order_uuid)
        external_id, line_of = known
        if not (needs_statuses(event) or needs_shipments(event)):
            return NewStoreView(external_id, line_of, {}), await self._ct_order(external_id)
        return await _both(self._newstore_view(event, order_uuid), self._ct_order(external_id))

    def _remember(self, order_uuid: str, view: NewStoreView) -> None:
        self._identities[order_uuid] = (view.external_id, dict(view.line_of))
        while len(self._identities) > IDENTITY_CACHE_SIZE:
            self._identities.popitem(last=False)

    async def _newstore_view(self, event: LifecycleEvent, order_uuid: str) -> NewStoreView:
        try:
            if needs_shipments(event):
                detail, requests = await _both(
                    upstream.get_ns_order(self.newstore, order_uuid),
                    upstream.get_fulfillment_requests(self.newstore, order_uuid),
                )
            else:
                detail, requests = await upstream.get_ns_order(self.newstore, order_uuid), None
        except UpstreamError as error:
            if error.status == 404:
                raise Deferred("newstore_order_unknown", order_uuid) from None
            raise _deferred_or_raise(error) from None
        view = NewStoreView.from_answers(detail, requests)
        if not view.external_id:
            raise Deferred("newstore_order_without_external_id", order_uuid)
        return view

    async def _ct_order(self, external_id: str) -> Json:
        try:
            return await upstream.get_ct_order(
                self.ctp, external_id, self.settings.external_id_source
            )
        except UpstreamError as error:
            if error.status == 404:
                # Not injected from this project (yet): the inbox retries it.
                raise Deferred("order_not_in_commercetools", external_id) from None
            raise _deferred_or_raise(error) from None

    async def _record_cancellations(self, order_id: str, plan: Plan) -> None:
        """The order's lifecycle record: cancelled units per line item (NewStore's current
        count, so rewriting it with the same numbers is harmless)."""
        container = self.settings.records_container
        try:
            current = await self.ctp.get_custom_object(container, order_id)
            value = dict((current or {}).get("value") or {})
            if value.get("cancelled_units") == plan.cancelled_units:
                return
            value["cancelled_units"] = plan.cancelled_units
            version = current["version"] if current else 0
            await self.ctp.put_custom_object(container, order_id, value, version=version)
        except UpstreamError as error:
            raise _deferred_or_raise(error) from None


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both at once; the first failure is raised once both are done (none left running)."""
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in (one, two):
        if isinstance(outcome, BaseException):
            raise outcome
    return one, two  # type: ignore[return-value]


def _deferred_or_raise(error: UpstreamError) -> Deferred:
    """Any upstream failure defers the event: it is kept in the inbox and retried."""
    status = f"HTTP {error.status}" if error.status else "network"
    return Deferred(f"{error.service}_unavailable", f"{status}: {str(error)[:200]}")
