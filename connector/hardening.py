"""HTTP hardening for both apps, as pure ASGI middlewares (no per-request task group).

- `BodyGuard`: on the given paths, refuses a body larger than `HTTP_MAX_BODY_BYTES` (413) and
  JSON nested deeper than `HTTP_MAX_JSON_DEPTH` (400) before the app does any work. For a
  Pub/Sub push it also checks the base64 `message.data`, where the commercetools message is.
- `SecurityHeaders`: `nosniff`, `no-store` and anti-framing headers on every answer.

`install_hardening(app)` adds both. Settings are read when the app starts, so a bad variable
stops start-up with a `cannot start: configuration` line, like the apps' own settings.

Why 1 MiB: the event app reads only the order id from a message, but commercetools puts the
full Order in `OrderCreated`, and Pub/Sub base64-encodes it (x4/3). A line item is ~1.7 KB
in our fixtures (a few KB with many locales and attributes), and the connector can only
inject orders of at most 100 units, so any order it can inject is under ~500 KB of message,
~670 KB pushed. 1 MiB keeps a margin for those while refusing anything far outside the
shape. A bigger order would fail (`order_too_large`) anyway; with 413 it is redelivered and
ends in the subscription's dead-letter topic instead. Raise the limit if your orders need it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.settings import ConfigError, load_settings_group

log = structlog.get_logger("hardening")

PREFIX = "HTTP_"
MIB = 1024 * 1024

# Sent on every answer. No HSTS: TLS ends at Cloud Run or the ingress, `.app` (run.app) is
# HSTS-preloaded, and the callers are Google services, not browsers.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)
# A JSON answer loads nothing, so it may forbid everything; HTML (FastAPI's /docs, if it is
# left on) loads its script from a CDN, so it is left without a CSP rather than broken.
JSON_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class HardeningSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", case_sensitive=False
    )

    # See the module docstring for why 1 MiB.
    max_body_bytes: int = Field(MIB, ge=1024, le=32 * MIB)
    # commercetools orders nest ~10 levels (CloudEvents adds 2); 64 leaves room for custom
    # fields while staying far below Python's recursion limit, which json.loads hits at ~1000.
    max_json_depth: int = Field(64, ge=8, le=512)


def load_hardening_settings() -> HardeningSettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return load_settings_group(HardeningSettings, PREFIX)


# --- answers -------------------------------------------------------------------------------


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A complete JSON answer, with the security headers whatever the middleware order."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *SECURITY_HEADERS,
        JSON_CSP,
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def path_matches(path: str, prefixes: Sequence[str]) -> bool:
    """`/event` covers `/event` and `/event/...`, not `/events`."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


# --- settings loaded at start-up -----------------------------------------------------------


async def run_lifespan(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, on_startup: Callable[[], object]
) -> None:
    """Pass the lifespan through, calling `on_startup` once the app itself has started.

    After the app's start-up, logging is configured (the apps do it first), so the
    middleware's own lines are JSON; a `ConfigError` turns into a failed start-up.
    """

    async def send_after_startup(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            try:
                on_startup()
            except ConfigError as error:
                log.error("cannot start: configuration", error=str(error))
                message = {"type": "lifespan.startup.failed", "message": str(error)}
        await send(message)

    await app(scope, receive, send_after_startup)


# --- JSON depth ----------------------------------------------------------------------------

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def json_depth(raw: bytes) -> int:
    """Nesting depth of a JSON text, without parsing it (so without recursion).

    Exact for valid JSON; for invalid JSON it is an estimate, and the app refuses it anyway.
    All in C but one step per bracket (~2 ms for a 400 KB order message):
    1. drop escapes, backslash pairs first as JSON reads them: every quote left delimits;
    2. keep only quotes and brackets, then drop adjacent quote pairs (empty strings, or the
       end of one string and the start of the next): no character changes sides by that;
    3. brackets between the remaining quotes are text; the others are the structure.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = unescaped.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _looks_like_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def pushed_data(body: bytes) -> bytes | None:
    """The decoded `message.data` of a Pub/Sub push envelope, or None if there is none.

    Only called once `body` is known to be shallow, so json.loads cannot recurse deeply.
    """
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def too_deep(body: bytes, max_depth: int, pubsub_push: bool) -> bool:
    if _looks_like_json(body) and json_depth(body) > max_depth:
        return True
    if not pubsub_push:
        return False
    data = pushed_data(body)
    return data is not None and _looks_like_json(data) and json_depth(data) > max_depth


# --- middlewares ---------------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class BodyGuard:
    """Size and nesting limits on the bodies of the given paths, before the app reads them.

    The body is buffered here (the apps read it whole anyway), checked, then replayed to the
    app, so the app never sees a partial or refused body.
    """

    def __init__(
        self,
        app: ASGIApp,
        paths: Sequence[str],
        settings: HardeningSettings | None = None,
        pubsub_push: bool = True,
    ) -> None:
        self.app = app
        self.paths = tuple(paths)
        self.settings = settings
        self.pubsub_push = pubsub_push

    def configure(self) -> HardeningSettings:
        if self.settings is None:
            self.settings = load_hardening_settings()
        return self.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(self.app, scope, receive, send, self.configure)
            return
        if scope["type"] != "http" or not path_matches(scope["path"], self.paths):
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            settings = self.configure()
        except ConfigError:
            await send_json(send, 503, {"error": "misconfigured"})
            return
        limit = settings.max_body_bytes
        if _declared_length(scope) > limit:
            await _too_large(scope, send, limit)
            return
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            await _too_large(scope, send, limit)
            return
        if body is None:  # the client went away; there is nobody to answer
            return
        if too_deep(body, settings.max_json_depth, self.pubsub_push):
            depth = settings.max_json_depth
            _refused(scope, 400, "json_too_deep", max_json_depth=depth)
            detail = f"JSON nested deeper than {depth} levels"
            await send_json(send, 400, {"error": "json_too_deep", "detail": detail})
            return
        await self.app(scope, _replay(body, receive), send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length itself
    return 0


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # checked per chunk: a chunked body has no Content-Length
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as usual

    return replay


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    _refused(scope, 413, "payload_too_large", max_body_bytes=limit)
    detail = f"request body larger than {limit} bytes"
    await send_json(send, 413, {"error": "payload_too_large", "detail": detail})


def _refused(scope: Scope, status: int, reason: str, **limits: int) -> None:
    # Worth a warning: a refused push is redelivered, then ends in the dead-letter topic.
    log.warning("request refused", path=scope["path"], status=status, reason=reason, **limits)


class SecurityHeaders:
    """Adds the security headers an answer does not already carry (the app's own win)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(message["headers"])}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    result = list(headers)
    present = {name.lower() for name, _ in result}
    wanted = list(SECURITY_HEADERS)
    content_type = next((v for n, v in result if n.lower() == b"content-type"), b"")
    if not content_type.startswith(b"text/html"):
        wanted.append(JSON_CSP)
    result.extend((name, value) for name, value in wanted if name not in present)
    return result


def install_hardening(
    app: Any,
    settings: HardeningSettings | None = None,
    limited: Sequence[str] = ("/event",),
    pubsub_push: bool = True,
) -> None:
    """Add `SecurityHeaders` (outermost) and `BodyGuard` on `limited` to a Starlette app.

    Call it before `install_auth`, so that authentication runs first and an unauthenticated
    client cannot make the app buffer and scan a body.
    """
    app.add_middleware(BodyGuard, paths=limited, settings=settings, pubsub_push=pubsub_push)
    app.add_middleware(SecurityHeaders)
