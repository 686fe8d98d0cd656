"""Shared basics of the commercetools emulator: the `Json` alias for the plain-dict bodies it
reads and writes, timestamps in the API's format, and new resource ids. Every other module of
the package may import this one; it imports none of them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())
