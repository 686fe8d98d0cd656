"""The incremental sync's cursor, kept in a commercetools Custom Object.

`{last_updated_at, full_reconciled_at, failing}` in
`<INVENTORY_LEASE_CONTAINER>/inventory-cursor`: the export cursor up to which every change
has been attempted, when the last full export was applied (wall-clock time: runs may be on
different machines), and the SKUs whose write failed, retried by every run (`job.failing`).

Rules (pure functions, so that they are tested apart from any I/O):
- no cursor, or a full export older than the reconciliation period: a full export;
  otherwise a delta since the cursor;
- the cursor moves only after every write of the export was attempted, its failures kept in
  `failing` by the same write (the caller decides),
  and never backwards: NewStore may report 0 for an empty delta, and taking it would turn
  the next delta into an export of everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from connector.commercetools import CommercetoolsClient, CommercetoolsError
from job import failing as failing_skus
from job.failing import FailingSku

log = structlog.get_logger("job")

CURSOR_KEY = "inventory-cursor"


@dataclass(frozen=True)
class CursorState:
    last_updated_at: int | None = None
    full_reconciled_at: datetime | None = None
    version: int = 0  # of the Custom Object; 0 while it does not exist
    failing: dict[str, FailingSku] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportChoice:
    cursor: int | None  # None: a full export
    reason: str


def choose_export(state: CursorState, now: datetime, full_reconcile_s: float) -> ExportChoice:
    if state.last_updated_at is None:
        return ExportChoice(None, "full export: no cursor yet")
    last_full = state.full_reconciled_at
    if last_full is None or (now - last_full).total_seconds() >= full_reconcile_s:
        since = last_full.isoformat() if last_full else "never"
        return ExportChoice(None, f"full export: reconciliation due (last full: {since})")
    return ExportChoice(state.last_updated_at, f"delta since cursor {state.last_updated_at}")


def advanced(state: CursorState, exported: int | None, full: bool, now: datetime) -> CursorState:
    """The state once an export's changes are all applied: the larger cursor, and for a
    full export the time of this reconciliation."""
    cursor = state.last_updated_at
    if exported is not None and (cursor is None or exported > cursor):
        cursor = exported
    reconciled = now if full else state.full_reconciled_at
    return replace(state, last_updated_at=cursor, full_reconciled_at=reconciled)


def to_value(state: CursorState) -> dict[str, Any]:
    reconciled = state.full_reconciled_at
    return {
        "last_updated_at": state.last_updated_at,
        "full_reconciled_at": reconciled.isoformat() if reconciled else None,
        "failing": failing_skus.to_value(state.failing),
    }


def from_stored(stored: dict[str, Any] | None) -> CursorState:
    """The state in a stored Custom Object; what cannot be read counts as absent (the next
    run then does a full export, which is always safe)."""
    if stored is None:
        return CursorState()
    value = stored.get("value")
    if not isinstance(value, dict):
        value = {}
    cursor = value.get("last_updated_at")
    if not isinstance(cursor, int) or isinstance(cursor, bool):
        cursor = None
    return CursorState(
        cursor,
        _parse_time(value.get("full_reconciled_at")),
        int(stored["version"]),
        failing_skus.from_value(value.get("failing")),
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class CursorStore:
    def __init__(self, ctp: CommercetoolsClient, container: str, key: str = CURSOR_KEY) -> None:
        self.ctp = ctp
        self.container = container
        self.key = key

    async def load(self) -> CursorState:
        return from_stored(await self.ctp.get_custom_object(self.container, self.key))

    async def save(self, state: CursorState) -> bool:
        """Write at the version it was read at; False when another writer got there first
        (its cursor stands: the next run starts from it, or from ours, both safe)."""
        try:
            await self.ctp.put_custom_object(
                self.container, self.key, to_value(state), state.version
            )
        except CommercetoolsError as error:
            if "ConcurrentModification" not in error.codes:
                raise
            log.warning("cursor changed by another run: not overwritten", key=self.key)
            return False
        return True
