"""The container's entry point: one image, three apps, chosen by $APP (or the first argument).

APP=event     python -m cli.serve     # POST /event, on $PORT (default 8080)
APP=job       python -m cli.serve     # POST /job
APP=lifecycle python -m cli.serve     # POST /lifecycle (NewStore's Event Stream)
"""

from __future__ import annotations

import os
import sys

from connector.serve import serve_app
from event.app import app as event_app
from job.app import app as job_app
from lifecycle.app import app as lifecycle_app

APPS = {"event": event_app, "job": job_app, "lifecycle": lifecycle_app}


def choose_app(argv: list[str], environ: dict[str, str]) -> str:
    """The app named by argv[0] or $APP; SystemExit(2) otherwise."""
    name = (argv[0] if argv else environ.get("APP", "")).strip().lower()
    if name not in APPS:
        print(f"set APP (or the first argument) to one of: {', '.join(APPS)}", file=sys.stderr)
        raise SystemExit(2)
    return name


def main(argv: list[str] | None = None) -> None:
    environ = dict(os.environ)
    name = choose_app(sys.argv[1:] if argv is None else argv, environ)
    serve_app(APPS[name], environ)


if __name__ == "__main__":
    main()
