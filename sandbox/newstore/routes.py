"""The FastAPI app of the NewStore emulator: `create_app` builds it over one `NewStoreEmulator`
with the endpoints the connector uses (legacy and client-credentials tokens, Order Injection,
stocked products, the Availabilities Export API) behind NewStore's rate limits, and the
`_sandbox` endpoints, and the request helpers they share (forms, credentials, the
bearer-token check, paging parameters).
"""

from __future__ import annotations

import json
import secrets
from base64 import b64decode
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.controls import SANDBOX_PREFIX, install_controls
from sandbox.newstore.catalog_api import add_catalog_routes
from sandbox.newstore.errors import Rejected, error_body, error_response, oauth_error
from sandbox.newstore.exports import ExportJob
from sandbox.newstore.locations import LocationSeed, list_locations
from sandbox.newstore.order_routes import install_order_routes
from sandbox.newstore.seeds import SeedRequest, StockRequest, apply_seed, seed_locations
from sandbox.newstore.state import EmulatorControls, NewStoreEmulator
from sandbox.newstore.stream_routes import install_stream_routes

# --- request helpers --------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: python-multipart is not a dependency, and these forms are tiny.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _auth_failure(state: NewStoreEmulator, request: Request) -> Response | None:
    """None when the bearer token is valid; NewStore answers 403 otherwise (not 401)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(403, "missing_token", "an Authorization: Bearer token is required")
    status = state.token_status(token.strip())
    if status == "valid":
        return None
    if status == "expired":
        return error_response(403, "token_expired", "the access token has expired")
    return error_response(403, "invalid_token", "the access token is not valid")


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise Rejected(400, "invalid_query_parameter", f"{name} must be an integer >= {minimum}")
    return value


def _token_reply(token: str, ttl_s: float, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"access_token": token, "expires_in": int(ttl_s), "token_type": "Bearer", **extra}
    )


def _job_view(job: ExportJob, request: Request) -> dict[str, Any]:
    view: dict[str, Any] = {"id": job.id, "availability_export_id": job.id, "state": job.state}
    if job.state == "finished":
        view["last_updated_at"] = job.last_updated_at
        # assumption: an empty delta reported with last_updated_at 0 comes without a file
        # (docs page availability_export_api is silent; NewStore's own integration code
        # never downloads one then), so the emulator gives no link.
        if not (job.cursor is not None and job.last_updated_at == 0):
            base = str(request.base_url).rstrip("/")
            view["link"] = f"{base}{SANDBOX_PREFIX}/exports/{job.id}.{job.format}"
    elif job.state == "failed":
        view["reason"] = "export failed (injected by the sandbox)"
    return view


# --- the app ----------------------------------------------------------------------------


def create_app(
    tenant: str = "sandbox",
    users: dict[str, str] | None = None,
    clients: dict[str, str] | None = None,
    token_ttl_s: int = 72000,
    seed: dict[str, Any] | None = None,
    client_token_ttl_s: int | None = None,
    controls: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build an emulator app. `client_token_ttl_s` defaults to `token_ttl_s`; `controls`
    changes the `EmulatorControls` defaults (NewStore's rate limits are on unless it turns
    them off or changes them: `{"rate_limits": False}`, `{"tenant_rate_limit": 200}`)."""
    state = NewStoreEmulator(
        tenant,
        users if users is not None else {"sandbox-user": "sandbox-password"},
        clients if clients is not None else {"sandbox-client": "sandbox-secret"},
        token_ttl_s,
        client_token_ttl_s if client_token_ttl_s is not None else token_ttl_s,
    )
    if controls:
        state.controls = EmulatorControls.model_validate(dict(controls))
    if seed:
        apply_seed(state, SeedRequest.model_validate(seed))
    app = FastAPI(title="NewStore emulator", docs_url=f"{SANDBOX_PREFIX}/docs")
    app.state.emulator = state
    install_controls(app, state.sandbox, error_body, admit=state.limits.admit)
    _add_token_routes(app, state)
    _add_order_routes(app, state)
    install_order_routes(app, state, _auth_failure)
    install_stream_routes(app, state, _auth_failure)
    _add_stock_routes(app, state)
    _add_export_routes(app, state)
    _add_location_routes(app, state)
    add_catalog_routes(app, state, lambda request: _auth_failure(state, request))
    _add_sandbox_routes(app, state)
    return app


def _add_location_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.get("/v0/d/locations")
    async def locations(request: Request) -> Response:
        if (denied := _auth_failure(state, request)) is not None:
            return denied
        return JSONResponse(list_locations(state.nodes_seen, state.locations))

    @app.post(f"{SANDBOX_PREFIX}/locations")
    async def set_locations(body: list[LocationSeed]) -> dict[str, int]:
        return {"locations": seed_locations(state, body)}


def _add_token_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.post("/v0/token")
    async def legacy_token(request: Request) -> Response:
        form = await _form(request)
        if form.get("grant_type") != "password":
            return oauth_error(400, "unsupported_grant_type", "grant_type must be password")
        username = form.get("username", "")
        if username not in state.users or state.users[username] != form.get("password"):
            return oauth_error(401, "invalid_grant", "Invalid user credentials")
        token = state.issue_token(state.token_ttl_s)
        return _token_reply(
            token, state.token_ttl_s, refresh_token=secrets.token_urlsafe(24), scope=""
        )

    @app.post("/auth/realms/{realm}/protocol/openid-connect/token")
    async def client_credentials_token(realm: str, request: Request) -> Response:
        if realm != state.tenant:
            return JSONResponse({"error": "Realm does not exist"}, status_code=404)
        form = await _form(request)
        basic = _basic_credentials(request)
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        if client_id not in state.clients or state.clients[client_id] != secret:
            return oauth_error(
                401, "invalid_client", "Invalid client or Invalid client credentials"
            )
        if form.get("grant_type") != "client_credentials":
            return oauth_error(
                400, "unsupported_grant_type", "grant_type must be client_credentials"
            )
        ttl = state.client_token_ttl_s
        token = state.issue_token(ttl)
        return _token_reply(
            token, ttl, refresh_expires_in=0, scope="profile email", **{"not-before-policy": 0}
        )


def _add_order_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.post("/v0/d/fulfill_order")
    async def fulfill_order(request: Request) -> Response:
        if (denied := _auth_failure(state, request)) is not None:
            return denied
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return error_response(400, "invalid_request_body", "the request body is not valid JSON")
        try:
            return JSONResponse(state.inject(payload))
        except Rejected as refusal:
            return error_response(refusal.status, refusal.error_code, refusal.message)


def _add_stock_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.get("/_/v0/hq/stocked_products")
    async def stocked_products(request: Request) -> Response:
        if (denied := _auth_failure(state, request)) is not None:
            return denied
        max_limit = state.controls.stocked_products_max_limit
        try:
            limit = min(_int_param(request, "limit", max_limit, 1), max_limit)
            offset = _int_param(request, "offset", 0, 0)
        except Rejected as refusal:
            return error_response(refusal.status, refusal.error_code, refusal.message)
        keys = state.row_keys()
        items = [state.stocked_product(p, n) for p, n in keys[offset : offset + limit]]
        total = len(keys)
        state.stock_page_served()
        return JSONResponse(
            {
                "items": items,
                "pagination_info": {"count": len(items), "total": total, "offset": offset},
            }
        )


def _add_export_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    def disabled() -> Response | None:
        if state.controls.export_api_enabled:
            return None
        return error_response(404, "not_found", "the availabilities export API is not enabled")

    @app.post("/v0/d/availabilities/bulk")
    async def start_export(request: Request) -> Response:
        if (denied := disabled() or _auth_failure(state, request)) is not None:
            return denied
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return error_response(400, "invalid_request_body", "the request body is not valid JSON")
        if not isinstance(body, dict):
            return error_response(
                400, "invalid_request_body", "the request body must be a JSON object"
            )
        cursor = body.get("last_updated_at")
        if cursor is not None and (type(cursor) is not int or cursor < 0):
            return error_response(
                400, "invalid_field_value", "last_updated_at must be a non-negative integer"
            )
        job = state.start_export(cursor)
        return JSONResponse(_job_view(job, request), status_code=201)

    @app.get("/v0/d/availabilities/bulk/{export_id}")
    async def export_status(export_id: str, request: Request) -> Response:
        if (denied := disabled() or _auth_failure(state, request)) is not None:
            return denied
        job = state.exports.get(export_id)
        if job is None:
            return error_response(404, "not_found", f"export {export_id} does not exist")
        state.poll_export(job)
        return JSONResponse(_job_view(job, request))

    @app.get(f"{SANDBOX_PREFIX}/exports/{{name}}")
    async def download_export(name: str) -> Response:
        # Stands in for the pre-signed storage URL: no bearer token needed.
        export_id, _, suffix = name.rpartition(".")
        job = state.exports.get(export_id)
        if job is None or "json" not in job.files or suffix not in ("json", "zip"):
            return error_response(404, "not_found", f"export file {name} does not exist or expired")
        media = "application/zip" if suffix == "zip" else "application/json"
        return Response(memoryview(state.export_file(job, suffix)), media_type=media)


def _add_sandbox_routes(app: FastAPI, state: NewStoreEmulator) -> None:
    @app.get(f"{SANDBOX_PREFIX}/orders")
    async def list_orders(include_payload: bool = True) -> dict[str, Any]:
        orders = [
            {"external_id": o.external_id, "id": o.id}
            | ({"payload": o.payload} if include_payload else {})
            for o in state.orders.values()
        ]
        return {"count": len(orders), "orders": orders}

    @app.get(f"{SANDBOX_PREFIX}/orders/{{external_id}}")
    async def read_order(external_id: str) -> Response:
        order = state.orders.get(external_id)
        if order is None:
            return error_response(404, "not_found", f"no order with external_id {external_id}")
        return JSONResponse(
            {
                "external_id": order.external_id,
                "id": order.id,
                "payload": order.payload,
                "response": order.response,
            }
        )

    @app.post(f"{SANDBOX_PREFIX}/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        return {"expired": state.expire_tokens()}

    @app.post(f"{SANDBOX_PREFIX}/seed")
    async def seed(body: SeedRequest) -> dict[str, int]:
        return apply_seed(state, body)

    @app.post(f"{SANDBOX_PREFIX}/stock")
    async def set_stock(body: StockRequest) -> dict[str, int]:
        changed = state.set_stock(row.model_dump() for row in body.stock)
        return {"changed": changed, "revision": state.revision}

    @app.get(f"{SANDBOX_PREFIX}/state")
    async def summary() -> dict[str, Any]:
        return {
            "orders": len(state.orders),
            "products": len(state.products),
            "stock_rows": len(state.row_keys()),
            "revision": state.revision,
            "exports": len(state.exports),
            "tokens": len(state.tokens),
            "rate_limited": dict(state.limits.refused),
        }

    @app.post(f"{SANDBOX_PREFIX}/limits/reset")
    async def reset_limits() -> dict[str, Any]:
        """Full budgets again (as after a long pause), and the refusal counts back to 0."""
        state.limits.reset()
        return {"rate_limited": dict(state.limits.refused)}

    @app.post(f"{SANDBOX_PREFIX}/reset")
    async def reset() -> dict[str, int]:
        state.clear()
        return {"revision": state.revision}

    @app.get(f"{SANDBOX_PREFIX}/emulator-controls")
    async def read_emulator_controls() -> EmulatorControls:
        return state.controls

    @app.patch(f"{SANDBOX_PREFIX}/emulator-controls")
    async def patch_emulator_controls(changes: dict[str, Any]) -> EmulatorControls:
        try:
            state.controls = EmulatorControls.model_validate(state.controls.model_dump() | changes)
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
        return state.controls
