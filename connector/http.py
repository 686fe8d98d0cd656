"""What both upstream clients share: typed errors, bearer tokens, bounded retries.

Each upstream gets one `UpstreamClient` around one pooled `httpx.AsyncClient`. Every call
goes through `UpstreamClient.send`, which retries transient failures with exponential
backoff and jitter (tenacity), honouring `Retry-After`, until either the attempts or the
time budget run out. Inside each attempt, `BearerAuth` (an `httpx.Auth`) adds the cached
token and, on an auth failure, refreshes it and resends once.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO, Any, ClassVar, Self

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport
from tenacity import (
    AsyncRetrying,
    RetryCallState,
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
        kind: str = "http",
        retries: int | None = None,
    ) -> None:
        super().__init__(f"{service}: {message}" + (f" (HTTP {status})" if status else ""))
        self.service = service
        self.message = message
        self.status = status
        self.transient = transient
        self.retry_now = retry_now
        self.retry_after_s = retry_after_s
        # What failed: "http" (an answer), or the network failure's kind (NETWORK_KINDS).
        self.kind = kind
        # At most this many in-request retries for this kind of failure (None: the policy's).
        self.retries = retries
        # The host that failed or answered (set where the request is known), for operators.
        self.host: str | None = None

    def as_record(self) -> dict[str, Any]:
        record = {"service": self.service, "status": self.status, "message": self.message}
        return record | ({"host": self.host} if self.host else {})

    def one_line(self) -> str:
        """What failed, where and how, for a person: the message, the host if not in it."""
        text = str(self)
        return text if not self.host or self.host in text else f"{text} from {self.host}"


class NotFoundError(UpstreamError):
    """404: the resource does not exist."""


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float  # time.monotonic() seconds, shortly before the token expires


def token_from_response(body: dict[str, Any]) -> Token:
    expires_in = float(body.get("expires_in") or 300)
    # Refresh a minute early, or a tenth of the lifetime for short-lived tokens.
    margin = min(60.0, expires_in / 10)
    return Token(str(body["access_token"]), time.monotonic() + expires_in - margin)


class BearerAuth(httpx.Auth):
    """A cached bearer token on every request, refreshed and resent once on an auth failure.

    A token can expire (or be revoked) before `refresh_at`, so the first answer in
    `failure_statuses` drops it and the request goes again with a fresh one; a second
    failure is the caller's to see, never a loop. Concurrent callers share one in-flight
    fetch (the lock), and only the token that failed is dropped, so a burst of failures
    refreshes once. `fetch` must send its request without this auth, or it would recurse.

    It counts what it does, for the client's totals: `fetches` (token requests) and
    `signed` (requests it sent with a token, resends included).
    """

    def __init__(
        self, fetch: Callable[[], Awaitable[Token]], failure_statuses: frozenset[int]
    ) -> None:
        self._fetch = fetch
        self._failures = failure_statuses
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.signed = 0

    async def token(self) -> str:
        token = self._token
        if token is None or time.monotonic() >= token.refresh_at:
            async with self._lock:
                token = self._token
                if token is None or time.monotonic() >= token.refresh_at:
                    self.fetches += 1
                    token = self._token = await self._fetch()
        return token.value

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._sign(request)
        response = yield request
        if response.status_code in self._failures:
            self._drop(token)
            await self._sign(request)
            yield request

    def _drop(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _sign(self, request: httpx.Request) -> str:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        self.signed += 1
        return token


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
            retry=_worth_retrying,
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


def _worth_retrying(state: RetryCallState) -> bool:
    error = state.outcome.exception() if state.outcome else None
    if not isinstance(error, UpstreamError) or not error.retry_now:
        return False
    # attempt_number counts the attempt that just failed: retries so far = attempt_number - 1
    return error.retries is None or state.attempt_number <= error.retries


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


class UpstreamClient:
    """One upstream API: its pooled HTTP client, bearer auth and retried requests.

    Subclasses name the service and say how to fetch a token and read an error answer.
    The bearer auth is passed per request, never set as the HTTP client's default: the
    token request and pre-signed downloads go through the same client without it.
    """

    service: ClassVar[str]
    default_timeout: ClassVar[httpx.Timeout]
    auth_failure_statuses: ClassVar[frozenset[int]]
    # A status that still comes back after the refresh-and-resend, when it can mean that the
    # API is blocking this client rather than refusing its token (NewStore: an IP-level block
    # answers 403 for 5 minutes); signed calls then pause for `block_s` instead of fetching
    # tokens in a loop.
    block_statuses: ClassVar[frozenset[int]] = frozenset()
    block_s: ClassVar[float] = 0.0

    def __init__(self, http: httpx.AsyncClient | None, retry: RetryPolicy | None) -> None:
        self.http = http or new_http_client(self.default_timeout)
        self.retry = retry or RetryPolicy()
        self._bearer = BearerAuth(self._fetch_token, self.auth_failure_statuses)
        self._unsigned = 0
        self.clock: Callable[[], float] = time.monotonic
        self._blocked_until = -float("inf")
        self.blocks = 0

    @property
    def requests(self) -> int:
        """Requests sent: every attempt and auth resend; token requests are `token_fetches`."""
        return self._bearer.signed + self._unsigned

    @property
    def token_fetches(self) -> int:
        return self._bearer.fetches

    async def ensure_token(self) -> None:
        """Readiness: raise UpstreamError unless the API hands out a token (a cached one will
        do)."""
        await self._bearer.token()

    ready_timeout: ClassVar[httpx.Timeout] = httpx.Timeout(3.0)

    def probe_url(self) -> str:
        """Where `check_ready` asks whether the API host answers at all (no token sent)."""
        raise NotImplementedError

    async def check_ready(self) -> None:
        """Readiness: the API hands out a token (a cached one will do) and its host answers.

        A cached token says nothing about the API host now (commercetools' API and auth
        hosts differ), so one unsigned GET, once, short timeout, no retries: any answer but
        a 5xx means reachable (a 401 or 404 is expected; the request carries no token)."""
        await self.ensure_token()
        try:
            response = await self.http.get(self.probe_url(), timeout=self.ready_timeout)
        except httpx.TransportError as error:
            raise network_error(self.service, error) from None
        if response.status_code >= 500:
            raise UpstreamError(
                self.service,
                "API host answers with an error",
                status=response.status_code,
                transient=True,
            )

    async def send(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        stream_into: IO[bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; raise the service's error for a failed answer.

        `auth=False` sends no bearer token (a pre-signed URL carries its own authorisation).
        `stream_into`: write the body there instead of holding it in memory; each attempt
        starts the file again. `kwargs` go to httpx.
        """
        async for attempt in self.retry.retrying():
            with attempt:
                return await self._attempt(method, url, auth, stream_into, kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        url: str,
        auth: bool,
        into: IO[bytes] | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        bearer = self._bearer if auth else None
        if bearer is not None and (left := self._blocked_until - self.clock()) > 0:
            raise UpstreamError(
                self.service,
                f"paused for another {left:.0f} s: a fresh token was refused too, so "
                f"{self.service} may be blocking this IP (rate limit)",
                status=next(iter(self.block_statuses), None),
                transient=True,
            )
        if bearer is None:
            self._unsigned += 1  # the bearer auth counts the requests it signs
        try:
            if into is None:
                response = await self.http.request(method, url, auth=bearer, **kwargs)
            else:
                response = await self._stream(method, url, bearer, into, kwargs)
        except httpx.TransportError as error:
            raise network_error(self.service, error) from None
        except UpstreamError as error:  # the token request, inside the auth flow
            if bearer is not None and error.status in self.block_statuses:
                self._block(error.status)
            raise
        if response.is_success:
            return response
        if bearer is not None and response.status_code in self.block_statuses:
            self._block(response.status_code)
        refused = self.parse_error(response)
        refused.host = refused.host or response.request.url.host
        raise refused

    def _block(self, status: int) -> None:
        """The auth flow already refreshed the token and resent: pause the signed calls."""
        self._blocked_until = self.clock() + self.block_s
        self.blocks += 1
        structlog.get_logger("http").warning(
            f"{self.service} refused a fresh token: it may be blocking this IP (rate limit)",
            status=status,
            paused_s=self.block_s,
        )

    async def _stream(
        self,
        method: str,
        url: str,
        auth: httpx.Auth | None,
        into: IO[bytes],
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        into.seek(0)
        into.truncate()
        async with self.http.stream(method, url, auth=auth, **kwargs) as response:
            if not response.is_success:
                await response.aread()  # for parse_error
                return response
            async for chunk in response.aiter_bytes():  # decoded if gzip-encoded
                into.write(chunk)
        into.flush()
        return response

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


# A network failure, as told apart for an operator: (kind, what to print, in-request retries).
# None: the policy's bound. Why these bounds: a refused connection or a DNS/TLS failure
# answers in milliseconds and will answer the same a second later (a host that is down, a
# mistyped URL, a bad certificate), so retrying it for seconds only delays the report (the
# job took 6.6 s to give up on a refused port); one retry covers a server that is restarting.
# The work is not dropped either way: the error stays transient, so Pub/Sub redelivers and
# the next cron run syncs.
NETWORK_KINDS: dict[str, tuple[str, int | None]] = {
    "connection_refused": ("connection refused by", 1),
    "dns": ("DNS lookup failed for", 0),
    "tls": ("TLS handshake failed with", 0),
    "timeout": ("timed out waiting for", None),
    "connection_reset": ("connection reset by", None),
    "network": ("network error talking to", None),
}


def network_kind(error: BaseException) -> str:
    """Which network failure `error` is, from its cause chain: the aiohttp transport maps
    every connection error to `httpx.ConnectTimeout`, so its type alone would say timeout."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    # the innermost cause is the most precise one
    for cause in reversed(chain):
        if isinstance(cause, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "ClientConnectorDNSError":
            return "dns"
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(cause, ConnectionResetError):
            return "connection_reset"
    for cause in reversed(chain):
        name = type(cause).__name__
        if "SSL" in name or "Certificate" in name:
            return "tls"
        if isinstance(cause, TimeoutError | asyncio.TimeoutError) or "Timeout" in name:
            return "timeout"
    return "network"


def _host(error: httpx.TransportError) -> str:
    try:
        url = error.request.url
    except RuntimeError:  # raised without a request
        return "?"
    return f"{url.host}:{url.port}" if url.port else url.host


def network_error(service: str, error: httpx.TransportError) -> UpstreamError:
    """One line that says what failed and where: e.g. `commercetools: connection refused by
    api.example.com:443`; never the request's headers or body."""
    kind = network_kind(error)
    text, retries = NETWORK_KINDS[kind]
    failed = UpstreamError(
        service,
        f"{text} {_host(error)}",
        transient=True,
        retry_now=True,
        kind=kind,
        retries=retries,
    )
    failed.host = _host(error)
    return failed


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
    auth: httpx.Auth | None = None,
) -> Token:
    """Fetch a token with an OAuth form post; a refusal is an operator-fixable transient error.

    Sent with `auth` alone (None: no credentials header), never with the bearer auth that
    is waiting for this very token."""
    try:
        response = await http.request("POST", url, data=data, auth=auth)
    except httpx.TransportError as error:
        raise network_error(service, error) from None
    if response.is_success:
        return token_from_response(response.json())
    flags = classify_status(response.status_code, frozenset({429, 500, 502, 503, 504}))
    refused = UpstreamError(
        service,
        f"token request refused ({_short_reason(response)})",
        status=response.status_code,
        retry_after_s=retry_after_seconds(response),
        **flags,
    )
    refused.host = httpx.URL(url).host
    raise refused


def _short_reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("error") or body.get("error_code") or body.get("message") or "")[:120]
    return response.reason_phrase
