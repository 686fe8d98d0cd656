"""Durable order outcome records, kept as commercetools Custom Objects.

One object per order (`container/<order id>`), in a container that the connector owns, so
that an operator can find every failure with `newstore-connector orders failed` and replay
it with `newstore-connector orders replay ORDER_ID`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from connector.clock import now_iso
from connector.commercetools import NEWSTORE_CHANNEL_KEY, CommercetoolsClient, CommercetoolsError
from connector.order_records import PARKED_STATUS, RETRYING_STATUS

log = structlog.get_logger("event")


class RecordStatus(StrEnum):
    INJECTED = "injected"
    ALREADY_INJECTED = "already_injected"
    CANCELLED = "cancelled"  # a cancellation record: NewStore has cancelled the order
    # the two the job's watchdog counts, named once in connector/order_records.py
    RETRYING = RETRYING_STATUS  # transient failures so far; Pub/Sub is redelivering
    FAILED = PARKED_STATUS  # permanent: acknowledged, waiting for an operator
    DISMISSED = "dismissed"  # an operator said why it needs nothing more (`orders dismiss`)


MAX_VERSION_CONFLICTS = 3
# What a success supersedes: with ORDER_RECORD_SUCCESSES=false it deletes these.
FAILURE_STATUSES = frozenset({RecordStatus.FAILED, RecordStatus.RETRYING})
# What no later failure may overwrite: the order is in NewStore.
SUCCESS_STATUSES = frozenset({RecordStatus.INJECTED, RecordStatus.ALREADY_INJECTED})
# How long the absence of the `newstore` channel is believed before it is looked up again.
CHANNEL_ABSENT_RECHECK_S = 60.0
MAX_SYNC_CONFLICTS = 3

# Given the stored record ({} if none) and the new attempt count: the record's fields, or
# None to leave the stored record as it is.
FieldsFor = Callable[[dict[str, Any], int], dict[str, Any] | None]

# commercetools' most results per query page: "Within a query, up to 500 elements can be
# fetched" (docs.commercetools.com/api/limits, "Queries").
MAX_PAGE = 500


@dataclass(frozen=True)
class RecordPage:
    records: list[dict[str, Any]]
    # The key to pass as `after` for the next page; None when this page was the last.
    next_after: str | None


class NotDismissable(Exception):
    """The order has no record, or one that is not a failure; the message says which."""


class OrderRecords:
    def __init__(self, ctp: CommercetoolsClient, container: str) -> None:
        self.ctp = ctp
        self.container = container

    async def get(self, order_id: str) -> dict[str, Any] | None:
        stored = await self.ctp.get_custom_object(self.container, order_id)
        return stored["value"] if stored else None

    async def page(
        self, statuses: Sequence[str], limit: int = 100, after: str | None = None
    ) -> RecordPage:
        """One page of records in these statuses (every record when empty), by key, after
        the key `after`.

        Keyset paging (`key > after`, sorted by key) rather than offsets: it goes past
        commercetools' 10,000 offset limit, and records that change status between pages
        (a replay heals them) shift no other record out of the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        names = ", ".join(f'"{_quoted(status)}"' for status in statuses)
        where = [f"value(status in ({names}))"] if statuses else []
        if after is not None:
            where.append(f'key > "{_quoted(after)}"')
        objects = await self.ctp.query_custom_objects(self.container, where=where, limit=limit)
        last = str(objects[-1]["key"]) if len(objects) == limit else None
        return RecordPage([o["value"] for o in objects], last)

    async def dismiss(self, order_id: str, reason: str) -> dict[str, Any]:
        """Mark a failed or retrying record dismissed, keeping the reason, the record's other
        fields and the status it had; a later delivery of the order still records anew."""
        for _ in range(MAX_VERSION_CONFLICTS):
            stored = await self.ctp.get_custom_object(self.container, order_id)
            if stored is None:
                raise NotDismissable(f"no record for order {order_id}")
            previous = stored["value"]
            if previous.get("status") not in FAILURE_STATUSES:
                status = previous.get("status")
                raise NotDismissable(f"order {order_id} is {status}, not failed or retrying")
            value = {
                **previous,
                "status": RecordStatus.DISMISSED,
                "dismissed_from": previous.get("status"),
                "dismissed_reason": reason,
                "dismissed_at": now_iso(),
                "updated_at": now_iso(),
            }
            try:
                await self.ctp.put_custom_object(self.container, order_id, value, stored["version"])
                return value
            except CommercetoolsError as error:
                if "ConcurrentModification" not in error.codes:
                    raise
        raise RuntimeError(f"record {order_id}: too many concurrent updates")

    async def failed(self, limit: int = 100, sync: OrderSync | None = None) -> list[dict[str, Any]]:
        """The first page of failed records; with `sync`, without the superseded ones."""
        records = (await self.page([RecordStatus.FAILED], limit)).records
        return records if sync is None else await self.drop_superseded(records, sync)

    async def drop_superseded(
        self, records: list[dict[str, Any]], sync: OrderSync
    ) -> list[dict[str, Any]]:
        """The failure records whose order does not carry NewStore's order id in its syncInfo.
        One that does was injected later (by another instance, or after a restart, which did
        not know of the record): it is superseded, and deleted."""
        listed = []
        for record in records:
            if await sync.injected_as(str(record.get("order_id"))) is not None:
                await self.clear_failure(str(record["order_id"]))
                continue
            listed.append(record)
        return listed

    async def write_success(
        self, order_id: str, status: RecordStatus, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """A blind write: one request on the hot path, whatever was recorded before."""
        value = {"order_id": order_id, "status": status, **fields, "updated_at": now_iso()}
        await self.ctp.put_custom_object(self.container, order_id, value)
        return value

    async def clear_failure(self, order_id: str) -> bool:
        """Delete the order's failed or retrying record, if it has one; say whether it did.

        How a success supersedes a failure when successes are not recorded. commercetools
        deletes a Custom Object by container and key, optionally version, with no condition
        on its value, and the failure may have been written by another instance: so this
        reads the record first (one request; most orders have none), and deletes only when
        there is a failure to clear. The delete names the version it read, so a record
        rewritten in between (by another instance's success) is read again, not deleted."""
        for _ in range(MAX_VERSION_CONFLICTS):
            stored = await self.ctp.get_custom_object(self.container, order_id)
            value = stored.get("value") if stored else None
            if not isinstance(value, dict) or value.get("status") not in FAILURE_STATUSES:
                return False
            assert stored is not None
            try:
                await self.ctp.delete_custom_object(self.container, order_id, stored["version"])
                return True
            except CommercetoolsError as error:
                if "ConcurrentModification" not in error.codes:
                    raise
        raise RuntimeError(f"record {order_id}: too many concurrent updates")

    async def add_attempt(self, order_id: str, fields_for: FieldsFor) -> dict[str, Any]:
        """Count one more failed attempt; read-modify-write, safe against concurrent writers.

        `fields_for(previous, attempts)` gives the record's fields (status included) from
        what is stored, so that a caller can change its verdict (park an order that has
        failed for too long), or None to keep the stored record (a success stands); the
        answer is the record as it is afterwards.
        """
        for _ in range(MAX_VERSION_CONFLICTS):
            stored = await self.ctp.get_custom_object(self.container, order_id)
            previous = stored["value"] if stored else {}
            attempts = int(previous.get("attempts", 0)) + 1
            fields = fields_for(previous, attempts)
            if fields is None:
                return dict(previous)
            value = {
                "order_id": order_id,
                "attempts": attempts,
                **fields,  # may count attempts this process saw but did not write
                "first_failed_at": previous.get("first_failed_at") or now_iso(),
                "updated_at": now_iso(),
            }
            version = stored["version"] if stored else 0
            try:
                await self.ctp.put_custom_object(self.container, order_id, value, version)
                return value
            except CommercetoolsError as error:
                if "ConcurrentModification" not in error.codes:
                    raise
        raise RuntimeError(f"record {order_id}: too many concurrent updates")


def _quoted(text: str) -> str:
    """A value inside a double-quoted predicate string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class OrderSync:
    """An order's own outcome: NewStore's order id in its syncInfo, under the `newstore`
    Channel (`updateSyncInfo {channel, externalId, syncedAt}`, OrderUpdateSyncInfoAction in
    the commercetools OpenAPI; docs.commercetools.com/api/projects/orders#update-syncinfo).

    Merchants see it in the Merchant Center, and any instance that reads the order knows it is
    in NewStore without asking NewStore. The channel's id (syncInfo entries name their channel
    by id) is looked up once per process and cached."""

    def __init__(self, ctp: CommercetoolsClient, key: str = NEWSTORE_CHANNEL_KEY) -> None:
        self.ctp = ctp
        self.key = key
        self._channel_id: str | None = None
        self._absent_since: float | None = None
        self.clock: Callable[[], float] = time.monotonic

    async def channel_id(self) -> str | None:
        """The channel's id; None while it does not exist (post-deploy creates it), looked up
        again after CHANNEL_ABSENT_RECHECK_S."""
        if self._channel_id is not None:
            return self._channel_id
        absent = self._absent_since
        if absent is not None and self.clock() - absent < CHANNEL_ABSENT_RECHECK_S:
            return None
        channel = await self.ctp.get_channel(self.key)
        if channel is None:
            self._absent_since = self.clock()
            log.error(
                "no commercetools channel for NewStore: run post-deploy; successes are "
                "recorded as Custom Objects meanwhile",
                channel_key=self.key,
            )
            return None
        self._channel_id, self._absent_since = str(channel["id"]), None
        return self._channel_id

    @staticmethod
    def synced_id(order: dict[str, Any], channel_id: str | None) -> str | None:
        """NewStore's order id from the order's syncInfo entry of the channel, if any."""
        if channel_id is None:
            return None
        for entry in order.get("syncInfo") or []:
            if not isinstance(entry, dict):
                continue
            channel = entry.get("channel")
            external = entry.get("externalId")
            if isinstance(channel, dict) and channel.get("id") == channel_id and external:
                return str(external)
        return None

    async def injected_as(self, order_id: str) -> str | None:
        """Read the order: NewStore's order id if its syncInfo has one (None if the order is
        gone)."""
        channel_id = await self.channel_id()
        if channel_id is None:
            return None
        try:
            order = await self.ctp.get_order(order_id)
        except CommercetoolsError as error:
            if error.status == 404:
                return None
            raise
        return self.synced_id(order, channel_id)

    async def write(self, order_id: str, version: int, newstore_order_id: str) -> None:
        """One request: `updateSyncInfo` at the version the order was read at. A concurrent
        change of the order (409) is retried at the `currentVersion` the error names, a
        bounded number of times."""
        action = {
            "action": "updateSyncInfo",
            "channel": {"typeId": "channel", "key": self.key},
            "externalId": newstore_order_id,
            "syncedAt": now_iso(),
        }
        for _ in range(MAX_SYNC_CONFLICTS):
            try:
                await self.ctp.update_order(order_id, version, [action])
                return
            except CommercetoolsError as error:
                current = _current_version(error)
                if current is None:
                    raise
                version = current
        raise RuntimeError(f"order {order_id}: too many concurrent updates")


def _current_version(error: CommercetoolsError) -> int | None:
    for item in error.errors:
        if item.get("code") == "ConcurrentModification":
            current = item.get("currentVersion")
            return current if isinstance(current, int) else None
    return None
