"""Errors of the order path that no retry can fix."""

from __future__ import annotations


class MappingError(Exception):
    """The order cannot become a valid NewStore payload: a permanent failure.

    `reason` is a short stable code (e.g. `missing_sku`) that operators can filter on.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
