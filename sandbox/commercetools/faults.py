"""Faults of a commercetools project that the connector's doctor and watchdog must notice,
under `/_sandbox/`: a subscription whose destination broke, an API client with fewer scopes.

A real subscription goes to `ConfigurationError` when commercetools cannot deliver to its
destination (a deleted topic, a revoked permission) and, on a production project, drops its
messages after 24 h (docs.commercetools.com/api/projects/subscriptions, "Health status");
here a test sets the status directly.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.commercetools.errors import invalid_input, not_found
from sandbox.commercetools.state import CommercetoolsEmulator
from sandbox.controls import SANDBOX_PREFIX

# The SubscriptionHealthStatus values of the commercetools OpenAPI.
HEALTH_STATUSES = frozenset(
    {
        "Healthy",
        "ConfigurationError",
        "ConfigurationErrorDeliveryStopped",
        "TemporaryError",
        "ManuallySuspended",
    }
)


def set_subscription_status(emu: CommercetoolsEmulator, key: str, status: str) -> None:
    if status not in HEALTH_STATUSES:
        raise invalid_input(f"status must be one of {sorted(HEALTH_STATUSES)}")
    subscription = emu.collections["subscription"].get_by_key(key)
    if subscription is None:
        raise not_found(key, by="key")
    emu.collections["subscription"].put({**subscription, "status": status})


def limit_client_scopes(emu: CommercetoolsEmulator, client_id: str, scopes: list[str]) -> None:
    """The API client may have only these scopes (names; the project key is added)."""
    emu.client_scopes[client_id] = " ".join(f"{name}:{emu.project_key}" for name in scopes)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise invalid_input("the body must be a JSON object")
    return body


def add_fault_routes(app: FastAPI, emu: CommercetoolsEmulator) -> None:
    @app.put(f"{SANDBOX_PREFIX}/subscriptions/{{key}}/status")
    async def subscription_status(key: str, request: Request) -> Response:
        set_subscription_status(emu, key, str((await _body(request)).get("status")))
        return JSONResponse(emu.collections["subscription"].get_by_key(key))

    @app.put(f"{SANDBOX_PREFIX}/clients/{{client_id}}/scopes")
    async def client_scopes(client_id: str, request: Request) -> Response:
        scopes = (await _body(request)).get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise invalid_input("scopes must be a list of scope names")
        limit_client_scopes(emu, client_id, scopes)
        return JSONResponse({"client_id": client_id, "scope": emu.client_scopes[client_id]})
