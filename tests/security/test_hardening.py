"""install_hardening over real HTTP: body limit (413), JSON depth (400), security headers."""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from connector.hardening import (
    MIB,
    HardeningSettings,
    install_hardening,
    json_depth,
    load_hardening_settings,
)
from connector.settings import ConfigError
from event.envelope import EnvelopeError, parse_push
from sandbox.server import serve_in_thread
from tests.helpers import push_envelope

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "orders"


def tiny_app(settings: HardeningSettings | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/event")
    async def event(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"bytes": len(body), "sha": hash(body)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/cached")
    async def cached() -> JSONResponse:
        return JSONResponse({}, headers={"cache-control": "max-age=60"})

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>docs</p>")

    install_hardening(app, settings, limited=("/event",))
    return app


@pytest.fixture(autouse=True)
def _no_http_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HTTP_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        serve_in_thread(tiny_app(HardeningSettings())) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        yield http


def nested(depth: int) -> str:
    """JSON text `depth` levels deep, objects and arrays alternating (json.dumps would recurse)."""
    opening = "".join('{"k":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return f'{opening}"leaf"{closing}'


def push_of(message: Any) -> dict[str, Any]:
    text = message if isinstance(message, str) else json.dumps(message)
    data = base64.b64encode(text.encode()).decode()
    return {
        "message": {"data": data, "messageId": "1"},
        "subscription": "projects/p/subscriptions/s",
    }


# --- body size -----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_with_json(client: httpx.Client) -> None:
    response = client.post("/event", content=b"x" * (MIB + 1))

    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "detail": f"request body larger than {MIB} bytes",
    }
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b"y" * 65_536

    response = client.post("/event", content=chunks())

    assert response.status_code == 413


def test_a_body_at_the_limit_reaches_the_app_intact(client: httpx.Client) -> None:
    body = b"z" * MIB

    response = client.post("/event", content=body)

    assert response.json() == {"bytes": MIB, "sha": hash(body)}


def test_other_paths_are_not_limited(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def heavy_order(lines: int) -> dict[str, Any]:
    """The largest fixture order, grown to `lines` lines of a few KB each, as real ones are."""
    order = json.loads((FIXTURES / "09_order_discount_prorated.json").read_text())["order"]
    template = order["lineItems"][0]
    locales = ["en-US", "en-GB", "de-DE", "fr-FR", "it-IT", "es-ES", "nl-NL", "pl-PL"]
    grown = []
    for n in range(lines):
        line = copy.deepcopy(template)
        line["id"] = f"line-{n}"
        line["name"] = {locale: f"A fairly long product name {n} ({locale})" for locale in locales}
        line["productSlug"] = {locale: f"product-name-{n}-{locale}" for locale in locales}
        line["variant"]["attributes"] = [
            {"name": f"attribute-{a}", "value": {"key": f"value-{a}", "label": "Label text"}}
            for a in range(15)
        ]
        line["variant"]["images"] = [
            {
                "url": f"https://cdn.example.com/images/{n}/{i}.jpg",
                "dimensions": {"w": 1200, "h": 1600},
            }
            for i in range(3)
        ]
        grown.append(line)
    order["lineItems"] = grown
    return order


def test_an_order_the_connector_can_inject_fits_the_limit(client: httpx.Client) -> None:
    # NewStore takes at most 100 units, so at most 100 lines; sent as CloudEvents (the larger).
    order = heavy_order(100)
    message = {
        "specversion": "1.0",
        "type": "com.commercetools.order.message.OrderCreated",
        "data": {"notificationType": "Message", "type": "OrderCreated", "order": order},
    }
    body = json.dumps(push_of(message)).encode()

    response = client.post("/event", content=body)

    assert 400_000 < len(body) < MIB, f"{len(body)} bytes"
    assert response.status_code == 200


# --- JSON depth ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [64, 65, 5000])
def test_nesting_is_limited_in_the_body(client: httpx.Client, depth: int) -> None:
    assert json_depth(nested(depth).encode()) == depth

    response = client.post("/event", content=nested(depth).encode())

    if depth <= 64:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert response.json() == {
            "error": "json_too_deep",
            "detail": "JSON nested deeper than 64 levels",
        }


@pytest.mark.parametrize("depth", [64, 65, 100_000])
def test_nesting_is_limited_in_the_pubsub_message(client: httpx.Client, depth: int) -> None:
    response = client.post("/event", json=push_of(nested(depth)))

    assert response.status_code == (200 if depth <= 64 else 400)


def test_why_the_pubsub_message_is_checked() -> None:
    # Without the guard, a deeply nested message is not an EnvelopeError (400) but a
    # RecursionError, which the event app answers 503: Pub/Sub would redeliver it for 7 days.
    with pytest.raises(RecursionError):
        parse_push(json.dumps(push_of(nested(100_000))).encode())
    with pytest.raises(EnvelopeError):
        parse_push(b"{not json")


def test_non_json_bodies_are_left_to_the_app(client: httpx.Client) -> None:
    for body in (b"{not json", b"", b"[[[[ not json either", b"\xff\xfe"):
        assert client.post("/event", content=body).status_code == 200


def test_a_real_push_envelope_passes(client: httpx.Client) -> None:
    envelope = push_envelope({"notificationType": "Message", "type": "OrderCreated"})

    assert client.post("/event", json=envelope).status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:\n'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\k'), children, max_size=3)
    ),
    max_leaves=30,
)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


@given(json_values)
def test_json_depth_counts_structure_not_brackets_in_strings(value: Any) -> None:
    assert json_depth(json.dumps(value).encode()) == reference_depth(value)
    assert json_depth(json.dumps(value, ensure_ascii=False).encode()) == reference_depth(value)


# --- security headers ----------------------------------------------------------------------


def test_json_answers_carry_the_security_headers(client: httpx.Client) -> None:
    for response in (client.get("/health"), client.get("/missing")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )


def test_the_apps_own_headers_win(client: httpx.Client) -> None:
    response = client.get("/cached")

    assert response.headers.get_list("cache-control") == ["max-age=60"]


def test_html_is_not_given_a_csp_that_would_break_it(client: httpx.Client) -> None:
    response = client.get("/page")

    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


# --- settings ------------------------------------------------------------------------------


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_MAX_BODY_BYTES", "2048")

    with (
        serve_in_thread(tiny_app()) as base,
        httpx.Client(base_url=base) as http,
    ):
        assert http.post("/event", content=b"a" * 2048).status_code == 200
        assert http.post("/event", content=b"a" * 2049).status_code == 413


def test_a_bad_limit_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_MAX_JSON_DEPTH", "1")

    with pytest.raises(ConfigError, match="HTTP_MAX_JSON_DEPTH"):
        load_hardening_settings()
