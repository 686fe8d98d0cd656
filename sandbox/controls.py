"""Fault injection and request counting shared by every sandbox emulator.

Each emulator is a FastAPI app; `install_controls` wraps it with a middleware that
adds latency, answers 503 / 429 at configurable rates, can "lose" a response (the
request is processed, then 503 is answered), and counts requests per endpoint.
The controls and counters are readable and writable over HTTP under `/_sandbox/`.

The middleware is plain ASGI, not Starlette's `BaseHTTPMiddleware`: the latter runs the
app in a task group and streams the response through memory channels, which measured
about 300 µs of the NewStore emulator's 470 µs per request. The emulators share the
benchmark machine with the app under test, so their overhead is the benchmark's noise.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SANDBOX_PREFIX = "/_sandbox"

ErrorBody = Callable[[int, str], dict[str, Any]]


class Controls(BaseModel):
    """What the emulator does to each request that is not a `/_sandbox` call."""

    latency_ms: float = Field(0.0, ge=0, description="added before every answer")
    fault_rate: float = Field(0.0, ge=0, le=1, description="share answered 503, unprocessed")
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="share answered 429")
    retry_after_s: float = Field(1.0, ge=0, description="Retry-After sent with 429")
    lost_response_rate: float = Field(
        0.0, ge=0, le=1, description="share of writes processed, then answered 503"
    )
    random_seed: int | None = None


class SandboxState:
    """Mutable controls and counters of one emulator instance."""

    def __init__(self, controls: Controls | None = None) -> None:
        self.controls = controls or Controls()
        self.counters: Counter[str] = Counter()
        self._random = random.Random(self.controls.random_seed)

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls
        self._random = random.Random(controls.random_seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate


def scope_label(scope: Scope) -> str:
    """`"METHOD /route/{template}"` once routed; the raw path when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None) or scope["path"]
    return f"{scope['method']} {path}"


class ControlsMiddleware:
    """Latency, injected faults and per-endpoint counters, as a pure ASGI middleware.

    The order of the random rolls is that of the former `BaseHTTPMiddleware`: fault,
    then rate limit, then (after processing a write) lost response.
    """

    def __init__(self, app: ASGIApp, state: SandboxState, error_body: ErrorBody) -> None:
        self.app = app
        self.state = state
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        controls = state.controls
        if controls.latency_ms:
            await asyncio.sleep(controls.latency_ms / 1000)
        if state.roll(controls.fault_rate):
            state.counters[f"{scope['method']} {scope['path']} (fault)"] += 1
            await self._error(503, "Injected fault")(scope, receive, send)
            return
        if state.roll(controls.rate_limit_rate):
            state.counters[f"{scope['method']} {scope['path']} (429)"] += 1
            retry_after = {"Retry-After": f"{controls.retry_after_s:g}"}
            await self._error(429, "Too many requests", retry_after)(scope, receive, send)
            return
        if scope["method"] != "GET" and controls.lost_response_rate > 0:
            await self._maybe_lose(scope, receive, send, controls.lost_response_rate)
            return
        await self.app(scope, receive, self._counting(scope, send))

    def _counting(self, scope: Scope, send: Send) -> Send:
        """`send`, counting the request by route when its answer starts (routing is done)."""
        counters = self.state.counters

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counters[scope_label(scope)] += 1
            await send(message)

        return counting_send

    async def _maybe_lose(self, scope: Scope, receive: Receive, send: Send, rate: float) -> None:
        """Process the write in full, holding its answer; then send it, or a 503 instead."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, self._counting(scope, hold))
        if self.state.roll(rate):
            await self._error(503, "Injected lost response")(scope, receive, send)
            return
        for message in held:
            await send(message)

    def _error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(self.error_body(status, message), status_code=status, headers=headers)


def install_controls(app: FastAPI, state: SandboxState, error_body: ErrorBody) -> None:
    """Add the fault middleware and the `/_sandbox/controls|counters` endpoints."""

    @app.get(f"{SANDBOX_PREFIX}/controls")
    async def read_controls() -> Controls:
        return state.controls

    @app.put(f"{SANDBOX_PREFIX}/controls")
    async def write_controls(controls: Controls) -> Controls:
        state.set_controls(controls)
        return state.controls

    @app.get(f"{SANDBOX_PREFIX}/counters")
    async def read_counters() -> dict[str, Any]:
        return {"total": sum(state.counters.values()), "by_endpoint": dict(state.counters)}

    @app.post(f"{SANDBOX_PREFIX}/counters/reset")
    async def reset_counters() -> dict[str, int]:
        state.counters.clear()
        return {"total": 0}

    # Outermost, like `@app.middleware("http")` was: it sees requests before the
    # emulator's own middleware (commercetools' bearer check) and every answer after.
    app.add_middleware(ControlsMiddleware, state=state, error_body=error_body)
