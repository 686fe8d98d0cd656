"""Shared basics of the commercetools emulator: the `Json` alias for the plain-dict bodies it
reads and writes, timestamps in the API's format, new resource ids, and the JSON decoding of
request bodies. Every other module of
the package may import this one; it imports none of them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

Json = dict[str, Any]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def json_loads(raw: bytes | str) -> Any:
    """What `json.loads` gives, and its error for what it refuses.

    msgspec decodes the large bodies (custom-object values, GraphQL requests) several times
    faster; whatever it refuses (malformed JSON, but also NaN, a BOM or a lone surrogate,
    which json.loads accepts) goes to json.loads, so nothing accepted or refused changes."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return json.loads(raw)
