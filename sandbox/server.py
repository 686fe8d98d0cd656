"""Run an ASGI app with uvicorn on a free loopback port, in a background thread.

Used by the integration tests, the demo and the benchmarks, so that everything that
crosses a network in production crosses real HTTP on loopback here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the thread is not the main thread
        pass


@contextmanager
def serve_in_thread(
    app: Any, port: int | None = None, startup_timeout_s: float = 10.0
) -> Iterator[str]:
    """Serve `app` until the block exits; yields its base URL (`http://127.0.0.1:PORT`)."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _QuietServer(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
