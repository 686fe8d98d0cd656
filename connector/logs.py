"""Structured JSON logs, one object per line, with Cloud Logging's field names.

The standard library's loggers (uvicorn's, httpx's) go through the same renderer, so even
a server's start-up and shutdown lines are JSON, and a traceback is a field of one line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_configured = False


def _cloud_logging_names(
    _: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["severity"] = event.pop("level", method).upper()
    event["message"] = event.pop("event", "")
    return event


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Idempotent: the apps, the CLI and the tests may all call it. `stream`: stdout unless
    given (the CLI logs to stderr, so that its stdout stays data)."""
    global _configured
    if _configured:
        return
    _configured = True
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", key="time"),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _cloud_logging_names,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would print text
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at INFO; the delivery line says what matters.
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
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )


TRACE_FIELD = "logging.googleapis.com/trace"


class TraceContext:
    """Pure ASGI middleware: every log line of a request carries Cloud Logging's trace field.

    Cloud Run and Pub/Sub send `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`; Cloud Logging
    groups lines whose `logging.googleapis.com/trace` is `projects/PROJECT/traces/TRACE_ID`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get(
            "CONNECT_GCP_PROJECT_ID"
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        trace = _trace_id(scope) if scope["type"] == "http" else None
        if trace is None:
            await self.app(scope, receive, send)
            return
        value = f"projects/{self.project}/traces/{trace}" if self.project else trace
        with structlog.contextvars.bound_contextvars(**{TRACE_FIELD: value}):
            await self.app(scope, receive, send)


def _trace_id(scope: Any) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-cloud-trace-context":
            trace = value.decode("latin-1").split("/", 1)[0].strip()
            return trace if trace.isalnum() and len(trace) <= 64 else None
    return None
