"""install_auth over real HTTP: OIDC tokens signed here, Google's certificates served on loopback.

No network: a test RSA key signs the tokens, and a fake certificate endpoint publishes the
matching self-signed certificates in Google's v1 format (`{kid: PEM}` with Cache-Control).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from google.auth import crypt, jwt
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connector.auth import AuthSettings, GoogleCerts, install_auth, load_auth_settings
from connector.hardening import install_hardening
from connector.logs import configure_logging
from connector.settings import ConfigError
from sandbox.server import serve_in_thread

AUDIENCE = "https://newstore-connector-event-123.europe-west1.run.app"
PUSH_ACCOUNT = "pubsub-push@shop-project.iam.gserviceaccount.com"
BEARER = "a-shared-token-that-is-long-enough-0123456789"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes
    certificate_pem: str


def make_key(kid: str) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-certs")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid, private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()
    )


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return make_key("google-key-1")


@pytest.fixture(scope="module")
def rotated_key() -> SigningKey:
    return make_key("google-key-2")


@pytest.fixture(scope="module")
def forged_key() -> SigningKey:
    return make_key("google-key-1")  # the same kid as Google's, another key


def mint(key: SigningKey, **claims: Any) -> str:
    """A Google-like ID token, as Pub/Sub push sends; a claim given as None is left out."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "104758924428036663951",
        "sub": "104758924428036663951",
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signer = crypt.RSASigner.from_string(key.private_pem, key_id=key.kid)
    return jwt.encode(signer, payload).decode()


# --- the fake certificate endpoint ---------------------------------------------------------


@dataclass
class CertEndpoint:
    url: str
    published: dict[str, str]
    cache_control: str = "public, max-age=19000, must-revalidate, no-transform"
    failing: bool = False
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def _certs_server(google_key: SigningKey) -> Iterator[CertEndpoint]:
    endpoint = CertEndpoint(url="", published={})
    app = FastAPI()

    @app.get("/oauth2/v1/certs")
    def certs() -> Response:
        with endpoint.lock:
            endpoint.fetches += 1
        if endpoint.failing:
            return JSONResponse({"error": "unavailable"}, 503)
        return JSONResponse(endpoint.published, headers={"cache-control": endpoint.cache_control})

    with serve_in_thread(app) as base:
        endpoint.url = f"{base}/oauth2/v1/certs"
        yield endpoint


@pytest.fixture
def certs_endpoint(_certs_server: CertEndpoint, google_key: SigningKey) -> CertEndpoint:
    """The endpoint as Google's: one key published, answers cached for hours, no fetch yet."""
    fresh = CertEndpoint(url=_certs_server.url, published={})
    for name in ("published", "cache_control", "failing", "fetches"):
        setattr(_certs_server, name, getattr(fresh, name))
    _certs_server.published[google_key.kid] = google_key.certificate_pem
    return _certs_server


# --- the tiny app under test ---------------------------------------------------------------


def tiny_app(settings: AuthSettings | None, certs: GoogleCerts | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/event")
    async def event(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    install_hardening(app)
    install_auth(app, settings, protected=("/event",), certs=certs)
    return app


def oidc_settings(endpoint: CertEndpoint, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {"oidc_audience": AUDIENCE, "oidc_certs_url": endpoint.url}
    return AuthSettings(**{**values, **overrides})


@pytest.fixture(autouse=True)
def _json_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loggers cache their processors on first use: configure first, so capture_logs sees them.
    configure_logging()
    for name in list(os.environ):
        if name.startswith(("AUTH_", "HTTP_")):
            monkeypatch.delenv(name)


@pytest.fixture
def oidc_client(certs_endpoint: CertEndpoint) -> Iterator[httpx.Client]:
    """A new app, so a new certificate cache: for the tests that count fetches."""
    with (
        serve_in_thread(tiny_app(oidc_settings(certs_endpoint))) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def _shared_app(_certs_server: CertEndpoint) -> Iterator[str]:
    with serve_in_thread(tiny_app(oidc_settings(_certs_server))) as base:
        yield base


@pytest.fixture
def shared_client(_shared_app: str, certs_endpoint: CertEndpoint) -> Iterator[httpx.Client]:
    """One app for the tests that only look at answers (a server costs ~0.2 s to stop)."""
    with httpx.Client(base_url=_shared_app, timeout=10) as client:
        yield client


def post(client: httpx.Client, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}".strip()} if token is not None else {}
    return client.post("/event", json={"message": {}}, headers=headers, **kwargs)


# --- OIDC ----------------------------------------------------------------------------------


def test_a_valid_google_token_is_accepted(
    shared_client: httpx.Client, google_key: SigningKey
) -> None:
    response = post(shared_client, mint(google_key))

    assert response.status_code == 200
    assert response.json()["received"] > 0  # the app got the body


def test_health_stays_open(shared_client: httpx.Client) -> None:
    assert shared_client.get("/health").json() == {"status": "ok"}


def test_a_missing_token_is_401_with_a_short_json_error(shared_client: httpx.Client) -> None:
    response = post(shared_client, None)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthenticated"}
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_another_scheme_counts_as_missing(shared_client: httpx.Client) -> None:
    basic = {"authorization": "Basic dXNlcjpwdw=="}

    response = shared_client.post("/event", json={}, headers=basic)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "lifetime"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "lifetime"),
        ({"aud": "https://someone-else.a.run.app"}, "audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"exp": None}, "signature"),  # google-auth: a token without exp is malformed
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "no-exp"],
)
def test_a_token_with_bad_claims_is_403(
    shared_client: httpx.Client, google_key: SigningKey, claims: dict[str, Any], reason: str
) -> None:
    token = mint(google_key, **claims)

    with structlog.testing.capture_logs() as logs:
        response = post(shared_client, token)

    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert [e["reason"] for e in logs if e["event"] == "request refused"] == [reason]
    assert_token_not_in(logs, token)


def test_a_token_signed_by_another_key_is_403(
    shared_client: httpx.Client, forged_key: SigningKey
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = post(shared_client, mint(forged_key))

    assert response.status_code == 403
    assert [e["reason"] for e in logs if e["event"] == "request refused"] == ["signature"]


def test_a_tampered_payload_is_403(shared_client: httpx.Client, google_key: SigningKey) -> None:
    header, _, signature = mint(google_key).split(".")
    other_payload = mint(google_key, email="attacker@example.com").split(".")[1]

    assert post(shared_client, f"{header}.{other_payload}.{signature}").status_code == 403


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.",  # alg none
        "x" * 10_000,
    ],
    ids=["garbage", "three-segments", "alg-none", "huge"],
)
def test_malformed_tokens_are_403(shared_client: httpx.Client, token: str) -> None:
    with structlog.testing.capture_logs() as logs:
        response = post(shared_client, token)

    assert response.status_code == 403
    assert_token_not_in(logs, token)


def test_an_hs256_token_is_refused_before_any_key_work(
    oidc_client: httpx.Client, certs_endpoint: CertEndpoint
) -> None:
    header = _b64json({"alg": "HS256", "kid": "google-key-1", "typ": "JWT"})
    token = f"{header}.{_b64json({'aud': AUDIENCE})}.c2lnbmF0dXJl"

    with structlog.testing.capture_logs() as logs:
        response = post(oidc_client, token)

    assert response.status_code == 403
    assert [e["reason"] for e in logs if e["event"] == "request refused"] == ["algorithm"]
    assert certs_endpoint.fetches == 0


def test_a_token_cloud_run_already_used_is_refused_with_a_clear_reason(
    shared_client: httpx.Client, google_key: SigningKey
) -> None:
    header, payload, _ = mint(google_key).split(".")

    with structlog.testing.capture_logs() as logs:
        response = post(shared_client, f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE")

    assert response.status_code == 403
    reasons = [e["reason"] for e in logs if e["event"] == "request refused"]
    assert reasons == ["signature_removed_by_platform"]


# --- the optional service-account check ----------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "status", "reason"),
    [
        ({}, 200, None),
        ({"email": PUSH_ACCOUNT.upper()}, 200, None),
        ({"email": "someone@shop-project.iam.gserviceaccount.com"}, 403, "service_account"),
        ({"email": None}, 403, "service_account"),
        ({"email_verified": False}, 403, "email_unverified"),
        ({"email_verified": None}, 403, "email_unverified"),
    ],
    ids=["right", "case", "wrong-email", "no-email", "unverified", "no-verified-claim"],
)
def test_the_service_account_is_checked_when_configured(
    certs_endpoint: CertEndpoint,
    google_key: SigningKey,
    claims: dict[str, Any],
    status: int,
    reason: str | None,
) -> None:
    settings = oidc_settings(certs_endpoint, oidc_service_account=PUSH_ACCOUNT)

    with (
        serve_in_thread(tiny_app(settings)) as base,
        httpx.Client(base_url=base) as client,
        structlog.testing.capture_logs() as logs,
    ):
        response = post(client, mint(google_key, **claims))

    assert response.status_code == status
    refused = [e["reason"] for e in logs if e["event"] == "request refused"]
    assert refused == ([reason] if reason else [])


# --- the certificate cache -----------------------------------------------------------------


def test_certificates_are_fetched_once_for_many_requests(
    oidc_client: httpx.Client, certs_endpoint: CertEndpoint, google_key: SigningKey
) -> None:
    base = str(oidc_client.base_url)
    tokens = [mint(google_key, sub=str(n)) for n in range(10)]
    start = threading.Barrier(len(tokens))
    answers: list[int] = []

    def push(token: str) -> None:  # a cold start: concurrent requests share one fetch
        with httpx.Client(base_url=base, timeout=10) as client:
            start.wait()
            answers.append(post(client, token).status_code)

    threads = [threading.Thread(target=push, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers += [post(oidc_client, token).status_code for token in tokens]

    assert answers == [200] * 20
    assert certs_endpoint.fetches == 1


def test_an_unknown_kid_triggers_one_refetch(
    oidc_client: httpx.Client,
    certs_endpoint: CertEndpoint,
    google_key: SigningKey,
    rotated_key: SigningKey,
) -> None:
    assert post(oidc_client, mint(google_key)).status_code == 200
    certs_endpoint.published[rotated_key.kid] = rotated_key.certificate_pem  # Google rotates

    after_rotation = [post(oidc_client, mint(rotated_key)).status_code for _ in range(3)]

    assert after_rotation == [200] * 3
    assert certs_endpoint.fetches == 2


def test_made_up_kids_cannot_make_it_fetch_per_request(
    oidc_client: httpx.Client, certs_endpoint: CertEndpoint, google_key: SigningKey
) -> None:
    unknown = SigningKey("made-up", google_key.private_pem, google_key.certificate_pem)

    answers = [post(oidc_client, mint(unknown)).status_code for _ in range(5)]

    assert answers == [403] * 5
    assert certs_endpoint.fetches == 2  # the first fill, then one forced refetch


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_certificates_are_refetched_after_their_max_age(
    certs_endpoint: CertEndpoint, google_key: SigningKey
) -> None:
    clock = FakeClock()
    certs_endpoint.cache_control = "public, max-age=600"
    certs = GoogleCerts(certs_endpoint.url, clock=clock)

    assert await certs.get(google_key.kid) == google_key.certificate_pem
    clock.now += 599
    await certs.get(google_key.kid)
    assert certs_endpoint.fetches == 1
    clock.now += 2
    await certs.get(google_key.kid)
    assert certs_endpoint.fetches == 2


async def test_stale_certificates_are_kept_while_google_is_unreachable(
    certs_endpoint: CertEndpoint, google_key: SigningKey
) -> None:
    clock = FakeClock()
    certs = GoogleCerts(certs_endpoint.url, clock=clock)
    await certs.get(google_key.kid)
    certs_endpoint.failing = True
    clock.now += 86_401

    assert await certs.get(google_key.kid) == google_key.certificate_pem
    await certs.get(google_key.kid)
    assert certs_endpoint.fetches == 2  # one failed refresh, then a pause before the next


def test_no_certificates_at_all_is_503_so_pubsub_redelivers(
    oidc_client: httpx.Client, certs_endpoint: CertEndpoint, google_key: SigningKey
) -> None:
    certs_endpoint.failing = True

    response = post(oidc_client, mint(google_key))

    assert response.status_code == 503
    assert response.json() == {"error": "auth_unavailable"}
    assert post(oidc_client, mint(google_key)).status_code == 503
    assert certs_endpoint.fetches == 1  # no fetch per request during the outage
    certs_endpoint.failing = False


# --- shared bearer token -------------------------------------------------------------------


@pytest.fixture
def bearer_client() -> Iterator[httpx.Client]:
    settings = AuthSettings(bearer_token=SecretStr(BEARER))
    with (
        serve_in_thread(tiny_app(settings)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (BEARER, 200),
        (BEARER[:-1] + "X", 403),
        (BEARER + "X", 403),
        ("", 401),
        (None, 401),
    ],
    ids=["right", "wrong", "longer", "empty", "missing"],
)
def test_the_shared_bearer_token(
    bearer_client: httpx.Client, token: str | None, status: int
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = post(bearer_client, token)

    assert response.status_code == status
    assert BEARER not in json.dumps(logs, default=str)


def test_two_authorization_headers_are_refused(bearer_client: httpx.Client) -> None:
    headers = [("authorization", f"Bearer {BEARER}"), ("authorization", "Bearer other")]

    response = bearer_client.post("/event", json={}, headers=headers)

    assert response.status_code == 403


# --- open mode and settings ----------------------------------------------------------------


def test_without_settings_the_app_runs_open_and_says_so() -> None:
    with (
        structlog.testing.capture_logs() as logs,
        serve_in_thread(tiny_app(None)) as base,
        httpx.Client(base_url=base) as client,
    ):
        response = client.post("/event", json={})

    assert response.status_code == 200
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "authentication is off" in warnings[0]["event"]
    assert warnings[0]["paths"] == ["/event"]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("AUTH_OIDC_SERVICE_ACCOUNT", PUSH_ACCOUNT)
    monkeypatch.setenv("AUTH_BEARER_TOKEN", "")  # blank is unset

    settings = load_auth_settings()

    assert (settings.mode, settings.oidc_service_account) == ("oidc", PUSH_ACCOUNT)
    assert str(settings.oidc_certs_url) == "https://www.googleapis.com/oauth2/v1/certs"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTH_OIDC_AUDIENCE": AUDIENCE, "AUTH_BEARER_TOKEN": BEARER}, "not both"),
        ({"AUTH_OIDC_SERVICE_ACCOUNT": PUSH_ACCOUNT}, "needs AUTH_OIDC_AUDIENCE"),
        ({"AUTH_BEARER_TOKEN": "short-token"}, "AUTH_BEARER_TOKEN"),
        ({"AUTH_OIDC_AUDIENCE": AUDIENCE, "AUTH_OIDC_CERTS_URL": "nope"}, "AUTH_OIDC_CERTS_URL"),
    ],
)
def test_bad_settings_are_clear_errors_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        load_auth_settings()

    assert message in str(raised.value)
    assert "short-token" not in str(raised.value) and BEARER not in str(raised.value)


async def test_bad_settings_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_BEARER_TOKEN", "short-token")
    app = tiny_app(None)
    incoming = [{"type": "lifespan.startup"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with structlog.testing.capture_logs() as logs:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "AUTH_BEARER_TOKEN" in sent[0]["message"]
    errors = [e for e in logs if e["event"] == "cannot start: configuration"]
    assert errors and "AUTH_BEARER_TOKEN" in errors[0]["error"]
    assert "short-token" not in json.dumps([logs, sent], default=str)


# --- helpers -------------------------------------------------------------------------------


def assert_token_not_in(logs: list[dict[str, Any]], token: str) -> None:
    rendered = json.dumps(logs, default=str)
    for part in {token, *token.split(".")} - {""}:
        if len(part) >= 8:
            assert part not in rendered


def _b64json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
