"""Fault injection, rate limits and request counting shared by every sandbox emulator.

Each emulator is a FastAPI app; `install_controls` wraps it with a middleware that
adds latency, enforces the emulator's own rate limits if it has any (its `admit` hook,
answered 429 with `Retry-After`), answers 503 / 429 at configurable rates, can "lose" a
response (the request is processed, then 503 is answered), and counts requests per
endpoint. The controls and counters are readable and writable over HTTP under `/_sandbox/`.
`RateBucket` is the limit the emulators enforce (a token bucket or a fixed window), on an
injectable clock so that tests count refusals instead of timing them.

The middleware is plain ASGI, not Starlette's `BaseHTTPMiddleware`: the latter runs the
app in a task group and streams the response through memory channels, which measured
about 300 µs of the NewStore emulator's 470 µs per request. The emulators share the
benchmark machine with the app under test, so their overhead is the benchmark's noise.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SANDBOX_PREFIX = "/_sandbox"

ErrorBody = Callable[[int, str], dict[str, Any]]
RateAlgorithm = Literal["token_bucket", "fixed_window"]
# Below this a request counts as on time: float sums of intervals must not refuse it.
_EPSILON_S = 1e-9


@dataclass(frozen=True)
class Refusal:
    """Why an emulator's rate limit refuses a request, and the `Retry-After` to send."""

    message: str
    retry_after_s: float


# Given a request's ASGI scope: None to let it through, or the refusal to answer (429).
Admit = Callable[[Scope], Refusal | None]


class RateBucket:
    """`rate` requests per second, measured one of two ways over `window_s`:

    - `token_bucket` (GCRA, the virtual-scheduling form): a bucket of `rate x window_s`
      requests (at least 1) refilled continuously at `rate`: after a pause that many may
      arrive at once, then one every 1/rate s;
    - `fixed_window`: at most `rate x window_s` requests in each window
      [k x window_s, (k+1) x window_s) of the clock.

    `check` says how long a request arriving at `now` would have to wait (0: admitted now)
    without taking anything; `take` counts an admitted request. A refused request takes
    nothing, so a client that keeps retrying does not dig itself deeper.
    """

    def __init__(self, rate: float, window_s: float, algorithm: RateAlgorithm) -> None:
        if rate <= 0 or window_s <= 0:
            raise ValueError("rate and window_s must be positive")
        self.rate = rate
        self.window_s = window_s
        self.algorithm = algorithm
        self.capacity = max(1.0, rate * window_s)
        self._interval = 1.0 / rate
        self._tolerance = (self.capacity - 1.0) * self._interval
        self._tat = -math.inf  # token bucket: the theoretical arrival time of the next request
        self._window = -1  # fixed window: which window `_count` is about
        self._count = 0

    def key(self) -> tuple[float, float, str]:
        return (self.rate, self.window_s, self.algorithm)

    def check(self, now: float) -> float:
        if self.algorithm == "token_bucket":
            wait = self._tat - self._tolerance - now
            return wait if wait > _EPSILON_S else 0.0
        window = math.floor(now / self.window_s)
        if window != self._window or self._count + 1 <= self.capacity:
            return 0.0
        return (window + 1) * self.window_s - now

    def take(self, now: float) -> None:
        if self.algorithm == "token_bucket":
            self._tat = max(self._tat, now) + self._interval
            return
        window = math.floor(now / self.window_s)
        if window != self._window:
            self._window, self._count = window, 0
        self._count += 1


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
    then rate limit, then (after processing a write) lost response. Before them, after the
    latency, `admit` (the emulator's own rate limits, if any) may refuse the request: 429
    with its `Retry-After`, counted as `"METHOD /path (rate limited)"`.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: SandboxState,
        error_body: ErrorBody,
        admit: Admit | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.error_body = error_body
        self.admit = admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        controls = state.controls
        if controls.latency_ms:
            await asyncio.sleep(controls.latency_ms / 1000)
        # The emulator's own limits come first, as a gateway's would: a refused request
        # never reaches the injected faults (and rolls none of their random numbers).
        if self.admit is not None and (refusal := self.admit(scope)) is not None:
            state.counters[f"{scope['method']} {scope['path']} (rate limited)"] += 1
            retry_after = {"Retry-After": f"{refusal.retry_after_s:g}"}
            await self._error(429, refusal.message, retry_after)(scope, receive, send)
            return
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


def install_controls(
    app: FastAPI, state: SandboxState, error_body: ErrorBody, admit: Admit | None = None
) -> None:
    """Add the fault middleware and the `/_sandbox/controls|counters` endpoints; `admit`
    is the emulator's own rate limit, consulted for every request but `/_sandbox` ones."""

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
    app.add_middleware(ControlsMiddleware, state=state, error_body=error_body, admit=admit)
