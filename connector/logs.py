"""Structured JSON logs, one object per line, with Cloud Logging's field names."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def _cloud_logging_names(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event["severity"] = event.pop("level", method).upper()
    event["message"] = event.pop("event", "")
    return event


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: the apps, the CLI and the tests may all call it."""
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(stream=sys.stdout, level=level, format="%(message)s")
    # httpx logs every request at INFO, as plain text; the delivery line says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", key="time"),
            structlog.processors.format_exc_info,
            _cloud_logging_names,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
