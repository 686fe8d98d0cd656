"""The NewStore emulator's Event Stream: the log of every event the tenant emitted.

(Registration and delivery to integrations build on this log.)
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


class EventStream:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.log: list[Json] = []

    def publish(self, name: str, payload: Json) -> None:
        self.log.append({"name": name, "payload": payload})

    def clear(self) -> None:
        self.log.clear()
