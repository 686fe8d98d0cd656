"""What both upstream clients share: typed errors, a token cache, bounded retries.

Each upstream gets one `ApiClient` around one pooled `httpx.AsyncClient`. A call gets a
cached token, sends, refreshes the token once on an auth failure, and retries transient
failures with exponential backoff and jitter (tenacity), honouring `Retry-After`, until
either the attempts or the time budget run out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self

import httpx
from httpx_aiohttp import AiohttpTransport
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)


class UpstreamError(Exception):
    """A failed call to commercetools or NewStore.

    `transient`: the same call may succeed later (5xx, 429, network, timeouts, auth that an
    operator can fix), so the work must not be dropped. `retry_now`: worth retrying within
    this request. `retry_after_s`: the server's `Retry-After`, if it sent one.
    """

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_now: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{service}: {message}" + (f" (HTTP {status})" if status else ""))
        self.service = service
        self.message = message
        self.status = status
        self.transient = transient
        self.retry_now = retry_now
        self.retry_after_s = retry_after_s

    def as_record(self) -> dict[str, Any]:
        return {"service": self.service, "status": self.status, "message": self.message}


class NotFoundError(UpstreamError):
    """404: the resource does not exist."""


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float  # time.monotonic() seconds, shortly before the token expires


class TokenCache:
    """Caches a bearer token until shortly before it expires.

    Concurrent callers share one in-flight fetch (the lock), and `invalidate` drops the
    token only if it is still the one that failed, so a burst of 401s refreshes once.
    """

    def __init__(self, fetch: Callable[[], Awaitable[Token]]):
        self._fetch = fetch
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self) -> str:
        token = self._token
        if token and time.monotonic() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is None or time.monotonic() >= token.refresh_at:
                self.fetches += 1
                token = self._token = await self._fetch()
            return token.value

    def invalidate(self, value: str) -> None:
        if self._token and self._token.value == value:
            self._token = None


def token_from_response(body: dict[str, Any]) -> Token:
    expires_in = float(body.get("expires_in") or 300)
    # Refresh a minute early, or a tenth of the lifetime for short-lived tokens.
    margin = min(60.0, expires_in / 10)
    return Token(str(body["access_token"]), time.monotonic() + expires_in - margin)


# --- retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on in-request retries: attempts, and the time the waits may add up to."""

    max_attempts: int = 3
    budget_s: float = 4.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retry_now),
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.budget_s),
            wait=self._wait,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, UpstreamError) and error.retry_after_s is not None:
            return error.retry_after_s
        backoff = wait_exponential_jitter(
            multiplier=self.initial_backoff_s, max=self.max_backoff_s, jitter=self.initial_backoff_s
        )
        return float(backoff(state))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# --- the client -----------------------------------------------------------------------------


def new_http_client(
    timeout: httpx.Timeout, max_connections: int = 100, **options: Any
) -> httpx.AsyncClient:
    """httpx's API over aiohttp's connection pool.

    Measured on the event benchmark (64 concurrent deliveries): httpcore 1.0's pool spent
    about 4.8 ms of CPU per request, most of the app's CPU; the aiohttp transport 0.5 ms,
    which took the app from 98 to over 300 orders/s. Errors are still `httpx` exceptions.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(timeout=timeout, transport=AiohttpTransport(limits=limits), **options)


ErrorParser = Callable[[httpx.Response], UpstreamError]


class ApiClient:
    """Authorised, retried requests to one upstream."""

    def __init__(
        self,
        service: str,
        http: httpx.AsyncClient,
        tokens: TokenCache,
        retry: RetryPolicy,
        parse_error: ErrorParser,
        auth_failure_statuses: frozenset[int],
    ) -> None:
        self.service = service
        self.http = http
        self.tokens = tokens
        self.retry = retry
        self._parse_error = parse_error
        self._auth_failures = auth_failure_statuses
        self.requests = 0

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async for attempt in self.retry.retrying():
            with attempt:
                return await self._send_authorised(method, url, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _send_authorised(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        token = await self.tokens.get()
        response = await self._send(method, url, token, **kwargs)
        if response.status_code in self._auth_failures:
            self.tokens.invalidate(token)
            response = await self._send(method, url, await self.tokens.get(), **kwargs)
        if response.is_success:
            return response
        raise self._parse_error(response)

    async def _send(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        self.requests += 1
        try:
            return await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise network_error(self.service, error) from None


class UpstreamClient:
    """One upstream API: its pooled HTTP client, cached token and retried requests.

    Subclasses name the service and say how to fetch a token and read an error answer.
    """

    service: ClassVar[str]
    default_timeout: ClassVar[httpx.Timeout]
    auth_failure_statuses: ClassVar[frozenset[int]]

    def __init__(self, http: httpx.AsyncClient | None, retry: RetryPolicy | None) -> None:
        self.http = http or new_http_client(self.default_timeout)
        self.api = ApiClient(
            self.service,
            self.http,
            TokenCache(self._fetch_token),
            retry or RetryPolicy(),
            self.parse_error,
            self.auth_failure_statuses,
        )

    async def _fetch_token(self) -> Token:
        raise NotImplementedError

    @staticmethod
    def parse_error(response: httpx.Response) -> UpstreamError:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or {} when it is not one (an error page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def network_error(service: str, error: httpx.TransportError) -> UpstreamError:
    kind = "timeout" if isinstance(error, httpx.TimeoutException) else "network error"
    return UpstreamError(service, f"{kind}: {type(error).__name__}", transient=True, retry_now=True)


def classify_status(status: int, retry_statuses: frozenset[int]) -> dict[str, Any]:
    """The transient / retry_now flags for an HTTP error status."""
    auth = status in (401, 403)
    return {
        "transient": status >= 500 or status == 429 or auth,
        "retry_now": status in retry_statuses,
    }


async def post_token_form(
    http: httpx.AsyncClient,
    service: str,
    url: str,
    data: dict[str, str],
    auth: tuple[str, str] | None = None,
) -> Token:
    """Fetch a token with an OAuth form post; a refusal is an operator-fixable transient error."""
    try:
        response = await http.post(url, data=data, auth=auth)
    except httpx.TransportError as error:
        raise network_error(service, error) from None
    if response.is_success:
        return token_from_response(response.json())
    flags = classify_status(response.status_code, frozenset({429, 500, 502, 503, 504}))
    raise UpstreamError(
        service,
        f"token request refused ({_short_reason(response)})",
        status=response.status_code,
        retry_after_s=retry_after_seconds(response),
        **flags,
    )


def _short_reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("error") or body.get("error_code") or body.get("message") or "")[:120]
    return response.reason_phrase
