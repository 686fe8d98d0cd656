"""Durable order outcome records, kept as commercetools Custom Objects.

One object per order (`container/<order id>`), in a container that the connector owns, so
that an operator can find every failure with `newstore-connector orders failed` and replay
it with `newstore-connector orders replay ORDER_ID`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from connector.clock import now_iso
from connector.commercetools import CommercetoolsClient, CommercetoolsError


class RecordStatus(StrEnum):
    INJECTED = "injected"
    ALREADY_INJECTED = "already_injected"
    RETRYING = "retrying"  # transient failures so far; Pub/Sub is redelivering
    FAILED = "failed"  # permanent: acknowledged, waiting for an operator


MAX_VERSION_CONFLICTS = 3
# What a success supersedes: with ORDER_RECORD_SUCCESSES=false it deletes these.
FAILURE_STATUSES = frozenset({RecordStatus.FAILED, RecordStatus.RETRYING})
# What no later failure may overwrite: the order is in NewStore.
SUCCESS_STATUSES = frozenset({RecordStatus.INJECTED, RecordStatus.ALREADY_INJECTED})

# Given the stored record ({} if none) and the new attempt count: the record's fields, or
# None to leave the stored record as it is.
FieldsFor = Callable[[dict[str, Any], int], dict[str, Any] | None]


class OrderRecords:
    def __init__(self, ctp: CommercetoolsClient, container: str) -> None:
        self.ctp = ctp
        self.container = container

    async def get(self, order_id: str) -> dict[str, Any] | None:
        stored = await self.ctp.get_custom_object(self.container, order_id)
        return stored["value"] if stored else None

    async def failed(self, limit: int = 100) -> list[dict[str, Any]]:
        objects = await self.ctp.query_custom_objects(
            self.container, where=[f'value(status = "{RecordStatus.FAILED}")'], limit=limit
        )
        return [o["value"] for o in objects]

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
