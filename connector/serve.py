"""Serving an app the way a container platform wants it (`cli.serve` and the apps' scripts).

No uvicorn access log (Cloud Run logs every request already), uvicorn's other lines as JSON
like ours, no `server` header, and a graceful shutdown shorter than Cloud
Run's 10 s between SIGTERM and SIGKILL, so in-flight deliveries finish and are acknowledged.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from starlette.types import ASGIApp

from connector.logs import configure_logging

DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_S = 8


def choose_port(environ: dict[str, str]) -> int:
    raw = environ.get("PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        print("PORT must be a TCP port number", file=sys.stderr)
        raise SystemExit(2)
    return int(raw)


def serve_app(app: ASGIApp, environ: dict[str, str] | None = None) -> None:
    """Serve `app` on $PORT (default 8080) on all interfaces."""
    environ = dict(os.environ) if environ is None else environ
    configure_logging()
    uvicorn.run(
        app,
        host="0.0.0.0",  # the container's interface, reached through the platform's proxy
        port=choose_port(environ),
        access_log=False,
        log_config=None,  # uvicorn's lines go through our JSON handler (connector/logs.py)
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
