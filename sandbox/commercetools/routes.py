"""The FastAPI app of the commercetools emulator: `create_app` builds it over one
`CommercetoolsEmulator` with the real paths (OAuth token, orders, inventory, custom objects,
subscriptions, GraphQL, the read endpoints of the seeded resources), the `_sandbox` endpoints,
error handlers answering the real error bodies, and the bearer-token check of the project API;
`load_seed_file` reads a seed for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import msgspec
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.commercetools.channels import new_channel, update_channel
from sandbox.commercetools.common import Json, json_loads
from sandbox.commercetools.errors import CtError, ct_error_body, invalid_input, invalid_json
from sandbox.commercetools.expansion import expand_all
from sandbox.commercetools.faults import add_fault_routes
from sandbox.commercetools.graphql import GraphQLApi
from sandbox.commercetools.orders import install_order_updates
from sandbox.commercetools.state import RESOURCE_TYPES, CommercetoolsEmulator
from sandbox.commercetools.store import parse_expand_params, parse_query
from sandbox.controls import SANDBOX_PREFIX, install_controls

DEFAULT_CLIENTS = {"sandbox-client": "sandbox-secret"}


class CompactJSONResponse(JSONResponse):
    """The same JSON as starlette's JSONResponse (compact, UTF-8, keys in insertion order),
    encoded by msgspec: json.dumps of the 500-entry result pages was a quarter of the
    emulator's CPU in the inventory benchmark."""

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def ok(data: Any, status: int = 200) -> JSONResponse:
    return CompactJSONResponse(data, status_code=status)


async def read_object(request: Request) -> Json:
    raw = await request.body()
    try:
        data = json_loads(raw)
    except ValueError as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(data, dict):
        raise invalid_json("The request body must be a JSON object.")
    return data


def version_param(request: Request, *, required: bool) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        if required:
            raise invalid_input("Missing required query parameter 'version'.")
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid_input(f"Malformed parameter: version: '{raw}' is not a number.") from None


def _graphql_route(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    api = GraphQLApi(emu)
    emu.graphql = api

    @app.post(f"{base}/graphql")
    async def graphql_endpoint(request: Request) -> Response:
        data, status = api.execute(await read_object(request))
        return ok(data, status)


def _auth_routes(app: FastAPI, emu: CommercetoolsEmulator) -> None:
    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(body).items()}
        for name, value in request.query_params.items():  # also accepted as query parameters
            form.setdefault(name, value)
        return ok(emu.issue_token(request.headers.get("authorization"), form))


def _read_routes(
    app: FastAPI, emu: CommercetoolsEmulator, base: str, type_id: str, path: str
) -> None:
    """Query, get by key and get by id, with reference expansion, for one resource type."""

    @app.get(f"{base}/{path}")
    async def query_resources(request: Request) -> Response:
        return ok(emu.query(type_id, parse_query(request)))

    if emu.collections[type_id].key_field:

        @app.get(f"{base}/{path}/key={{key}}")
        async def get_by_key(key: str, request: Request) -> Response:
            resource = emu.get_by_key(type_id, key)
            return ok(expand_all(resource, parse_expand_params(request), emu.resolve))

    @app.get(f"{base}/{path}/{{resource_id}}")
    async def get_by_id(resource_id: str, request: Request) -> Response:
        resource = emu.get(type_id, resource_id)
        return ok(expand_all(resource, parse_expand_params(request), emu.resolve))


def _order_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/orders/import")
    async def import_order(request: Request) -> Response:
        order = emu.create_order(await read_object(request), keep_id=False)
        return ok(expand_all(order, parse_expand_params(request), emu.resolve), 201)

    @app.get(f"{base}/orders/order-number={{number}}")
    async def get_order_by_number(number: str, request: Request) -> Response:
        order = emu.get_order_by_number(number)
        return ok(expand_all(order, parse_expand_params(request), emu.resolve))


def _inventory_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/inventory")
    async def create_inventory(request: Request) -> Response:
        return ok(emu.create_inventory(await read_object(request)), 201)

    @app.post(f"{base}/inventory/{{entry_id}}")
    async def update_inventory(entry_id: str, request: Request) -> Response:
        return ok(emu.update_inventory(entry_id, await read_object(request)))

    @app.delete(f"{base}/inventory/{{entry_id}}")
    async def delete_inventory(entry_id: str, request: Request) -> Response:
        return ok(emu.delete_inventory(entry_id, version_param(request, required=True)))


def _channel_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/channels")
    async def create_channel(request: Request) -> Response:
        return ok(new_channel(emu, await read_object(request)), 201)

    @app.post(f"{base}/channels/{{channel_id}}")
    async def change_channel(channel_id: str, request: Request) -> Response:
        return ok(update_channel(emu, channel_id, await read_object(request)))


def _custom_object_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/custom-objects")
    async def upsert(request: Request) -> Response:
        obj, created = emu.upsert_custom_object(await read_object(request))
        return ok(obj, 201 if created else 200)

    @app.get(f"{base}/custom-objects")
    async def query_all(request: Request) -> Response:
        return ok(emu.query("key-value-document", parse_query(request)))

    @app.get(f"{base}/custom-objects/{{container}}")
    async def query_container(container: str, request: Request) -> Response:
        return ok(emu.query_container(container, parse_query(request)))

    @app.get(f"{base}/custom-objects/{{container}}/{{key}}")
    async def get_one(container: str, key: str) -> Response:
        return ok(emu.get_custom_object(container, key))

    @app.delete(f"{base}/custom-objects/{{container}}/{{key}}")
    async def delete_one(container: str, key: str, request: Request) -> Response:
        version = version_param(request, required=False)
        return ok(emu.delete_custom_object(container, key, version))


def _subscription_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    def by_key(key: str) -> Json:
        return emu.get_by_key("subscription", key)

    def by_id(subscription_id: str) -> Json:
        return emu.get("subscription", subscription_id)

    @app.post(f"{base}/subscriptions")
    async def create(request: Request) -> Response:
        return ok(emu.create_subscription(await read_object(request)), 201)

    @app.post(f"{base}/subscriptions/key={{key}}")
    async def update_by_key(key: str, request: Request) -> Response:
        return ok(emu.update_subscription(by_key(key), await read_object(request)))

    @app.delete(f"{base}/subscriptions/key={{key}}")
    async def delete_by_key(key: str, request: Request) -> Response:
        version = version_param(request, required=True)
        return ok(emu.delete_subscription(by_key(key), version))

    @app.post(f"{base}/subscriptions/{{subscription_id}}")
    async def update_by_id(subscription_id: str, request: Request) -> Response:
        return ok(emu.update_subscription(by_id(subscription_id), await read_object(request)))

    @app.delete(f"{base}/subscriptions/{{subscription_id}}")
    async def delete_by_id(subscription_id: str, request: Request) -> Response:
        version = version_param(request, required=True)
        return ok(emu.delete_subscription(by_id(subscription_id), version))


def _sandbox_routes(app: FastAPI, emu: CommercetoolsEmulator) -> None:
    prefix = SANDBOX_PREFIX

    @app.post(f"{prefix}/expire-tokens")
    async def expire_tokens() -> Response:
        return ok({"expired": emu.expire_tokens()})

    @app.post(f"{prefix}/orders")
    async def create_order(request: Request) -> Response:
        return ok(emu.create_order(await read_object(request), keep_id=True), 201)

    @app.get(f"{prefix}/messages")
    async def read_message_controls() -> Response:
        return ok({"payload_not_included": emu.payload_not_included})

    @app.put(f"{prefix}/messages")
    async def write_message_controls(request: Request) -> Response:
        body = await read_object(request)
        emu.payload_not_included = bool(body.get("payload_not_included", False))
        return ok({"payload_not_included": emu.payload_not_included})

    @app.get(f"{prefix}/published")
    async def published() -> Response:
        records = list(emu.publisher.published)
        return ok({"count": len(records), "pending": emu.publisher.pending, "messages": records})

    @app.delete(f"{prefix}/published")
    async def clear_published() -> Response:
        emu.publisher.clear()
        return ok({"count": 0})

    @app.post(f"{prefix}/drain")
    async def drain() -> Response:
        await emu.publisher.drain()
        return ok({"pending": emu.publisher.pending})

    @app.post(f"{prefix}/seed")
    async def seed(request: Request) -> Response:
        return ok(emu.seed(await read_object(request)))

    @app.post(f"{prefix}/reset")
    async def reset() -> Response:
        emu.reset()
        return ok(emu.summary())

    @app.get(f"{prefix}/state/summary")
    async def summary() -> Response:
        return ok(emu.summary())


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CtError)
    async def ct_error(_: Request, exc: CtError) -> Response:
        return ok(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"The endpoint '{request.method} {request.url.path}' was not found."
            return ok(CtError(404, "ResourceNotFound", message).body(), 404)
        code = "InvalidOperation" if exc.status_code < 500 else "General"
        return ok(CtError(exc.status_code, code, str(exc.detail)).body(), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return ok(invalid_input(str(exc.errors())).body(), 400)


class BearerAuth:
    """Checks the bearer token of every project API call before routing, as the real API's
    gateway does (so an unknown path under the project also answers 401 without a token).

    A plain ASGI middleware: it costs a few microseconds, where a dependency on every route
    costs tens."""

    def __init__(self, app: ASGIApp, emulator: CommercetoolsEmulator, prefix: str) -> None:
        self.app = app
        self.emulator = emulator
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            try:
                self.emulator.authorize(authorization)
            except CtError as exc:
                await ok(exc.body(), exc.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    project_key: str = "sandbox",
    clients: dict[str, str] | None = None,
    token_ttl_s: int = 172800,
    pubsub_url: str | None = None,
    seed: dict[str, Any] | None = None,
) -> FastAPI:
    """The emulator app; its state is `app.state.emulator` (a `CommercetoolsEmulator`)."""
    emu = CommercetoolsEmulator(project_key, clients or DEFAULT_CLIENTS, token_ttl_s, pubsub_url)
    if seed:
        emu.seed(copy.deepcopy(seed))  # the emulator fills in and later changes what it stores

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await emu.publisher.aclose()

    app = FastAPI(
        title="commercetools sandbox",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.emulator = emu

    base = f"/{project_key}"
    # Route matching is a large share of the per-request cost, so the routes the connector
    # calls most come first. Within a resource, `key=...`, `order-number=...` and `import`
    # come before `{id}`.
    _order_routes(app, emu, base)
    install_order_updates(app, emu, base, read_object)
    _read_routes(app, emu, base, "order", "orders")
    _inventory_routes(app, emu, base)
    _read_routes(app, emu, base, "inventory-entry", "inventory")
    _custom_object_routes(app, emu, base)
    _channel_routes(app, emu, base)
    _graphql_route(app, emu, base)
    _subscription_routes(app, emu, base)
    for type_id, path, _ in RESOURCE_TYPES:
        if type_id not in ("order", "inventory-entry", "key-value-document"):
            _read_routes(app, emu, base, type_id, path)
    _auth_routes(app, emu)
    _sandbox_routes(app, emu)
    add_fault_routes(app, emu)
    _error_handlers(app)
    app.add_middleware(BearerAuth, emulator=emu, prefix=f"{base}/")
    install_controls(app, emu.sandbox, ct_error_body)
    return app


def load_seed_file(path: str | Path) -> dict[str, Any]:
    """Read a seed (the `POST /_sandbox/seed` body) from a JSON file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed file holds one JSON object")
    return data
