"""NewStore Event Stream events as the receiver reads them.

Body (docs.newstore.net /api/webhooks/stream_webhook_sink_hook): `tenant`, `name`,
`published_at` and the event's `payload`. The idempotency key is "only unique per event":
the inbox and the logs key events by name + key. Where the body carries no
`idempotency_key`, a key is derived from the payload (id, logical timestamp), so that a
redelivery of the same event still maps to the same inbox entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

ORDER_EVENTS = ("order.completed", "order.cancelled", "order.items_cancelled")
FULFILLMENT_EVENTS = (
    "fulfillment_request.items_ready_for_handover",
    "fulfillment_request.items_completed",
)
RETURN_EVENTS = ("return.processed",)
HANDLED = frozenset((*ORDER_EVENTS, *FULFILLMENT_EVENTS, *RETURN_EVENTS))
_UNSAFE = re.compile(r"[^-_~.a-zA-Z0-9]")


@dataclass(frozen=True)
class LifecycleEvent:
    name: str
    idempotency_key: str
    published_at: str | None
    payload: dict[str, Any]
    body: dict[str, Any]

    @property
    def order_uuid(self) -> str | None:
        """NewStore's id of the order the event is about."""
        key = "id" if self.name.startswith("order.") else "order_id"
        value = self.payload.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def inbox_key(self) -> str:
        """A Custom Object key (`[-_~.a-zA-Z0-9]`, at most 256) unique across events."""
        raw = f"{self.name}.{self.idempotency_key}"
        safe = _UNSAFE.sub("_", raw)
        if safe != raw or len(safe) > 200:
            digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
            safe = f"{safe[:180]}.{digest}"
        return safe

    def item_ids(self) -> list[str]:
        items = self.payload.get("items")
        if not isinstance(items, list):
            return []
        return [str(i["id"]) for i in items if isinstance(i, dict) and i.get("id")]


def parse_event(body: Any) -> LifecycleEvent | None:
    """None when the body is not an event at all (no name or payload)."""
    if not isinstance(body, dict):
        return None
    name, payload = body.get("name"), body.get("payload")
    if not isinstance(name, str) or not isinstance(payload, dict):
        return None
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not key:
        basis = json.dumps(
            [payload.get("id"), payload.get("logical_timestamp"), body.get("published_at")],
            sort_keys=True,
        )
        key = hashlib.sha256(basis.encode()).hexdigest()[:32]
    published = body.get("published_at")
    return LifecycleEvent(
        name, key, published if isinstance(published, str) else None, payload, body
    )
