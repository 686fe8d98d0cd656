"""The container's entry point: one image, two apps, chosen by $APP (or the first argument).

    APP=event python -m connector.serve     # POST /event, on $PORT (default 8080)
    APP=job   python -m connector.serve     # POST /job

Unlike the apps' own `serve()`, this is tuned for a container platform: no uvicorn access
log (Cloud Run logs every request already, and its plain-text lines would sit between our
JSON ones), no `server` header, and a graceful shutdown shorter than Cloud Run's 10 s
between SIGTERM and SIGKILL, so in-flight deliveries finish and are acknowledged.
"""

from __future__ import annotations

import os
import sys

import uvicorn

APPS = {"event": "event.app:app", "job": "job.app:app"}
DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_S = 8


def choose_app(argv: list[str], environ: dict[str, str]) -> str:
    """The app named by argv[0] or $APP; SystemExit(2) otherwise."""
    name = (argv[0] if argv else environ.get("APP", "")).strip().lower()
    if name not in APPS:
        print(f"set APP (or the first argument) to one of: {', '.join(APPS)}", file=sys.stderr)
        raise SystemExit(2)
    return name


def choose_port(environ: dict[str, str]) -> int:
    raw = environ.get("PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        print("PORT must be a TCP port number", file=sys.stderr)
        raise SystemExit(2)
    return int(raw)


def main(argv: list[str] | None = None) -> None:
    environ = dict(os.environ)
    serve_app(choose_app(sys.argv[1:] if argv is None else argv, environ), environ)


def serve_app(name: str, environ: dict[str, str] | None = None) -> None:
    """Serve the app `name` (`event` or `job`) on $PORT; the apps' console scripts use it too."""
    environ = dict(os.environ) if environ is None else environ
    uvicorn.run(
        APPS[name],
        host="0.0.0.0",  # the container's interface, reached through the platform's proxy
        port=choose_port(environ),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
