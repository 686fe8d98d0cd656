"""Who may call `/event` and `/job`: a Google-signed OIDC token, or a shared bearer token.

Pub/Sub push and Cloud Scheduler send `Authorization: Bearer <Google ID token>`. With
`AUTH_OIDC_AUDIENCE` set, the token's signature (Google's published certificates), lifetime,
issuer and audience are verified, and with `AUTH_OIDC_SERVICE_ACCOUNT` also its `email`. With
`AUTH_BEARER_TOKEN` set instead, the header must carry that token. With neither, the apps run
open, as on Connect, and say so at start-up.

Answers: no token -> 401, a token that does not verify -> 403, Google's certificates
unreachable (and none cached) -> 503 so that Pub/Sub redelivers. Nothing about the token is
logged: only a fixed reason such as `audience` or `lifetime`.

On Cloud Run with IAM (`--no-allow-unauthenticated`), Cloud Run verifies the token itself and
passes it on with its signature removed: leave AUTH_* unset there (see docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import structlog
from google.auth import exceptions as google_exceptions
from google.auth import jwt
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.hardening import path_matches, run_lifespan, send_json
from connector.settings import ConfigError, load_settings_group

log = structlog.get_logger("auth")

PREFIX = "AUTH_"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# What Cloud Run leaves in place of the signature once its own IAM check has used the token.
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
# Google ID tokens are ~1 KB; a bound keeps a hostile header from costing decoding work.
MAX_TOKEN_CHARS = 8192

AuthMode = Literal["oidc", "bearer", "open"]


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `AUTH_BEARER_TOKEN=` means unset, not an empty token
    )

    # The `aud` the tokens are minted for: the push subscription's / scheduler job's audience.
    oidc_audience: str | None = Field(None, min_length=1)
    # When set, the token's verified `email` must be this service account.
    oidc_service_account: str | None = Field(None, min_length=3)
    oidc_certs_url: AnyHttpUrl = AnyHttpUrl(GOOGLE_CERTS_URL)
    # Tolerance on iat/exp between Google's clock and ours.
    oidc_clock_skew_s: int = Field(30, ge=0, le=300)
    # Shared secret; long enough that guessing is hopeless (`openssl rand -base64 32`).
    bearer_token: SecretStr | None = Field(None, min_length=32)

    @model_validator(mode="after")
    def _one_mechanism(self) -> AuthSettings:
        if self.oidc_audience and self.bearer_token:
            raise ValueError("set AUTH_OIDC_AUDIENCE or AUTH_BEARER_TOKEN, not both")
        if self.oidc_service_account and not self.oidc_audience:
            raise ValueError("AUTH_OIDC_SERVICE_ACCOUNT needs AUTH_OIDC_AUDIENCE")
        return self

    @property
    def mode(self) -> AuthMode:
        if self.oidc_audience:
            return "oidc"
        return "bearer" if self.bearer_token else "open"


def load_auth_settings() -> AuthSettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return load_settings_group(AuthSettings, PREFIX)


# --- outcomes ------------------------------------------------------------------------------


class TokenRejected(Exception):
    """The token does not verify; `reason` is a fixed word, safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CertsUnavailable(Exception):
    """Google's certificates cannot be fetched and none are cached: a transient failure."""


@dataclass(frozen=True)
class Denial:
    status: int
    error: str
    reason: str

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b"Bearer")] if self.status == 401 else []


MISSING = Denial(401, "unauthenticated", "missing")
NOT_BEARER = Denial(401, "unauthenticated", "not_bearer")


# --- Google's certificates -----------------------------------------------------------------

_MAX_AGE = re.compile(r"max-age=(\d+)")


class GoogleCerts:
    """Google's signing certificates (`{kid: PEM}`), fetched once and kept while fresh.

    Fresh for the answer's `Cache-Control: max-age` (Google sends hours), bounded to
    [min_ttl_s, max_ttl_s]. A token with an unknown `kid` (Google rotated its keys) forces
    one refetch, at most once per `refetch_interval_s`, so that made-up kids cannot make us
    fetch per request. If a refresh fails, the stale certificates are kept: Google publishes
    keys well before using them and keeps them after, so they stay right for a while.
    """

    def __init__(
        self,
        url: str = GOOGLE_CERTS_URL,
        *,
        timeout_s: float = 3.0,
        default_ttl_s: float = 3600.0,
        min_ttl_s: float = 60.0,
        max_ttl_s: float = 86400.0,
        refetch_interval_s: float = 60.0,
        retry_after_failure_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.default_ttl_s = default_ttl_s
        self.min_ttl_s = min_ttl_s
        self.max_ttl_s = max_ttl_s
        self.refetch_interval_s = refetch_interval_s
        self.retry_after_failure_s = retry_after_failure_s
        self.clock = clock
        self.fetches = 0
        self._certs: dict[str, str] = {}
        self._fresh_until = float("-inf")
        self._last_forced = float("-inf")
        self._retry_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> str | None:
        """The PEM certificate of `kid`, or None if Google does not publish it."""
        if not self._fresh():
            await self._refresh(self._fresh)
        elif kid not in self._certs:
            await self._refetch_for(kid)
        return self._certs.get(kid)

    def _fresh(self) -> bool:
        return bool(self._certs) and self.clock() < self._fresh_until

    async def _refetch_for(self, kid: str) -> None:
        if self._lock.locked():  # a refresh is in flight: use its result, start no other
            async with self._lock:
                return
        if self.clock() - self._last_forced < self.refetch_interval_s:
            return
        self._last_forced = self.clock()
        await self._refresh(lambda: kid in self._certs)

    async def _refresh(self, done: Callable[[], bool]) -> None:
        async with self._lock:
            if done():  # another request refreshed while this one waited
                return
            if not self._certs and self.clock() < self._retry_at:
                raise CertsUnavailable  # failed a moment ago: do not queue a fetch per request
            try:
                certs, ttl = await self._fetch()
            except (httpx.HTTPError, ValueError) as error:
                self._keep_stale(error)
                return
            self._certs, self._fresh_until = certs, self.clock() + ttl

    async def _fetch(self) -> tuple[dict[str, str], float]:
        self.fetches += 1
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.get(self.url)
        response.raise_for_status()
        certs = response.json()
        if not _is_cert_map(certs):
            raise ValueError("not a {kid: certificate} object")
        return certs, self._ttl(response.headers.get("cache-control", ""))

    def _ttl(self, cache_control: str) -> float:
        match = _MAX_AGE.search(cache_control)
        ttl = float(match.group(1)) if match else self.default_ttl_s
        return min(max(ttl, self.min_ttl_s), self.max_ttl_s)

    def _keep_stale(self, error: Exception) -> None:
        log.warning("cannot fetch Google's certificates", error_type=type(error).__name__)
        if not self._certs:
            self._retry_at = self.clock() + self.retry_after_failure_s
            raise CertsUnavailable from None
        # Retry after the short bound rather than on every request while Google is away.
        self._fresh_until = self.clock() + self.min_ttl_s


def _is_cert_map(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


# --- verification --------------------------------------------------------------------------


class GoogleIdTokenVerifier:
    """Verifies a Google-signed ID token with google-auth, against cached certificates."""

    def __init__(self, settings: AuthSettings, certs: GoogleCerts | None = None) -> None:
        if not settings.oidc_audience:
            raise ValueError("OIDC verification needs AUTH_OIDC_AUDIENCE")
        self.audience = settings.oidc_audience
        self.service_account = settings.oidc_service_account
        self.clock_skew_s = settings.oidc_clock_skew_s
        self.certs = certs or GoogleCerts(str(settings.oidc_certs_url))

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The verified claims; raises `TokenRejected` or `CertsUnavailable`."""
        kid = _key_id(token)
        certificate = await self.certs.get(kid)
        if certificate is None:
            raise TokenRejected("unknown_key")
        claims = self._decode(token, kid, certificate)
        self._check_claims(claims)
        return claims

    def _decode(self, token: str, kid: str, certificate: str) -> Mapping[str, Any]:
        try:
            # Signature, iat and exp; `aud` is checked below, to log which claim failed.
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs={kid: certificate}, clock_skew_in_seconds=self.clock_skew_s
            )
        except google_exceptions.InvalidValue:
            # With RS256 already required, google-auth raises this only for iat/exp: the
            # token expired, or is not valid yet (clocks apart by more than the skew).
            raise TokenRejected("lifetime") from None
        except (ValueError, TypeError):  # MalformedError: the signature does not verify
            raise TokenRejected("signature") from None
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise TokenRejected("issuer")
        if claims.get("aud") != self.audience:
            raise TokenRejected("audience")
        if self.service_account is None:
            return
        if str(claims.get("email", "")).lower() != self.service_account.lower():
            raise TokenRejected("service_account")
        if claims.get("email_verified") is not True:
            raise TokenRejected("email_unverified")


def _key_id(token: str) -> str:
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected("malformed")
    if token.rsplit(".", 1)[-1] == SIGNATURE_REMOVED:
        raise TokenRejected("signature_removed_by_platform")
    try:
        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        raise TokenRejected("malformed") from None
    # Google signs ID tokens with RS256 only; anything else is refused before any key work.
    if header.get("alg") != "RS256":
        raise TokenRejected("algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("malformed")
    return kid


# --- guards: one per mode ------------------------------------------------------------------


class Guard(Protocol):
    mode: AuthMode

    async def check(self, token: str) -> Denial | None: ...


class OpenGuard:
    mode: AuthMode = "open"

    async def check(self, token: str) -> Denial | None:
        return None


class BearerGuard:
    mode: AuthMode = "bearer"

    def __init__(self, token: SecretStr) -> None:
        # Hashes have one length, so compare_digest's time says nothing about the token's.
        self._digest = hashlib.sha256(token.get_secret_value().encode()).digest()

    async def check(self, token: str) -> Denial | None:
        given = hashlib.sha256(token.encode()).digest()
        if hmac.compare_digest(given, self._digest):
            return None
        return Denial(403, "forbidden", "bearer_mismatch")


class OidcGuard:
    mode: AuthMode = "oidc"

    def __init__(self, verifier: GoogleIdTokenVerifier) -> None:
        self.verifier = verifier

    async def check(self, token: str) -> Denial | None:
        try:
            await self.verifier.verify(token)
        except TokenRejected as rejected:
            return Denial(403, "forbidden", rejected.reason)
        except CertsUnavailable:
            return Denial(503, "auth_unavailable", "certs_unavailable")
        return None


def build_guard(settings: AuthSettings, certs: GoogleCerts | None = None) -> Guard:
    if settings.mode == "oidc":
        return OidcGuard(GoogleIdTokenVerifier(settings, certs))
    if settings.mode == "bearer" and settings.bearer_token is not None:
        return BearerGuard(settings.bearer_token)
    return OpenGuard()


# --- the middleware ------------------------------------------------------------------------


class AuthMiddleware:
    """Requires a valid bearer token on the `protected` paths; every other path stays open."""

    def __init__(
        self,
        app: ASGIApp,
        protected: Sequence[str],
        settings: AuthSettings | None = None,
        certs: GoogleCerts | None = None,
    ) -> None:
        self.app = app
        self.protected = tuple(protected)
        self.settings = settings
        self.certs = certs
        self.guard: Guard | None = None

    def configure(self) -> Guard:
        if self.guard is None:
            settings = self.settings or load_auth_settings()
            self.guard = build_guard(settings, self.certs)
            _announce(settings, self.protected)
        return self.guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(self.app, scope, receive, send, self.configure)
            return
        if scope["type"] != "http" or not path_matches(scope["path"], self.protected):
            await self.app(scope, receive, send)
            return
        denial = await self._check(scope)
        if denial is None:
            await self.app(scope, receive, send)
            return
        # The path and a fixed reason only: never the header, the token or its claims.
        log.warning(
            "request refused", path=scope["path"], status=denial.status, reason=denial.reason
        )
        body = {"error": denial.error}
        await send_json(send, denial.status, body, denial.headers())

    async def _check(self, scope: Scope) -> Denial | None:
        try:
            guard = self.configure()
        except ConfigError:
            return Denial(503, "misconfigured", "configuration")
        if guard.mode == "open":
            return None
        token = _bearer_token(scope)
        if isinstance(token, Denial):
            return token
        return await guard.check(token)


def _bearer_token(scope: Scope) -> str | Denial:
    values = [value for name, value in scope["headers"] if name == b"authorization"]
    if not values:
        return MISSING
    if len(values) > 1:  # which one would a proxy have checked? refuse the ambiguity
        return Denial(403, "forbidden", "several_authorization_headers")
    scheme, _, token = values[0].partition(b" ")
    if scheme.lower() != b"bearer":
        return NOT_BEARER
    try:
        text = token.strip().decode("ascii")
    except UnicodeDecodeError:
        return Denial(403, "forbidden", "malformed")
    return text if text else MISSING


def _announce(settings: AuthSettings, protected: Sequence[str]) -> None:
    paths = list(protected)
    if settings.mode == "open":
        log.warning(
            "authentication is off: set AUTH_OIDC_AUDIENCE or AUTH_BEARER_TOKEN, unless an "
            "authenticating front (Cloud Run IAM, Connect) already checks every request",
            paths=paths,
        )
    elif settings.mode == "oidc":
        log.info(
            "authentication: Google OIDC",
            paths=paths,
            audience=settings.oidc_audience,
            service_account=settings.oidc_service_account,
        )
    else:
        log.info("authentication: shared bearer token", paths=paths)


def install_auth(
    app: Any,
    settings: AuthSettings | None = None,
    protected: Sequence[str] = ("/event",),
    certs: GoogleCerts | None = None,
) -> None:
    """Protect `protected` (path prefixes) of a Starlette/FastAPI app; `/health` stays open.

    `settings=None` reads AUTH_* when the app starts. Call after `install_hardening`, so
    that this check runs first.
    """
    app.add_middleware(AuthMiddleware, protected=protected, settings=settings, certs=certs)
