"""Fault injection and request counting shared by every sandbox emulator.

Each emulator is a FastAPI app; `install_controls` wraps it with a middleware that
adds latency, answers 503 / 429 at configurable rates, can "lose" a response (the
request is processed, then 503 is answered), and counts requests per endpoint.
The controls and counters are readable and writable over HTTP under `/_sandbox/`.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


def endpoint_label(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"


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

    @app.middleware("http")
    async def apply_controls(request: Request, call_next: Callable[..., Any]) -> Response:
        if request.url.path.startswith(SANDBOX_PREFIX):
            return await call_next(request)
        controls = state.controls
        if controls.latency_ms:
            await asyncio.sleep(controls.latency_ms / 1000)
        if state.roll(controls.fault_rate):
            state.counters[f"{request.method} {request.url.path} (fault)"] += 1
            return JSONResponse(error_body(503, "Injected fault"), status_code=503)
        if state.roll(controls.rate_limit_rate):
            state.counters[f"{request.method} {request.url.path} (429)"] += 1
            return JSONResponse(
                error_body(429, "Too many requests"),
                status_code=429,
                headers={"Retry-After": f"{controls.retry_after_s:g}"},
            )
        response: Response = await call_next(request)
        state.counters[endpoint_label(request)] += 1
        if request.method != "GET" and state.roll(controls.lost_response_rate):
            return JSONResponse(error_body(503, "Injected lost response"), status_code=503)
        return response
