"""The event stream configuration API of the NewStore emulator
(`/api/v1/org/integrations/eventstream`: list, register, read, delete, `_start`, `_stop`;
docs.newstore.net /api/integration/eventstream-graphql/stream_webhook_sink_api), and the
sandbox endpoints that drive and inspect delivery (`/_sandbox/stream...`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.controls import SANDBOX_PREFIX
from sandbox.newstore.errors import Rejected
from sandbox.newstore.guarded import AuthCheck, guarded
from sandbox.newstore.state import NewStoreEmulator
from sandbox.newstore.stream import StreamControls

BASE = "/api/v1/org/integrations/eventstream"


def install_stream_routes(app: FastAPI, state: NewStoreEmulator, auth_failure: AuthCheck) -> None:
    stream = state.stream

    answer = guarded(state, auth_failure)

    @app.get(BASE)
    async def list_integrations(request: Request) -> Response:
        async def handle() -> Response:
            views = [i.view() for i in stream.integrations.values()]
            return JSONResponse({"integrations": views})

        return await answer(request, handle)

    @app.post(BASE)
    async def register(request: Request) -> Response:
        async def handle() -> Response:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise Rejected(400, "bad_request", "the body is not valid JSON") from None
            # assumption: 201 with the integration (the page shows no answer body)
            return JSONResponse(stream.register(body).view(), status_code=201)

        return await answer(request, handle)

    @app.get(f"{BASE}/{{integration_id}}")
    async def read(integration_id: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(stream.get(integration_id).view())

        return await answer(request, handle)

    @app.delete(f"{BASE}/{{integration_id}}")
    async def delete(integration_id: str, request: Request) -> Response:
        async def handle() -> Response:
            stream.delete(integration_id)
            return Response(status_code=204)

        return await answer(request, handle)

    @app.post(f"{BASE}/{{integration_id}}/_start")
    async def start(integration_id: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(stream.set_status(integration_id, "running").view())

        return await answer(request, handle)

    @app.post(f"{BASE}/{{integration_id}}/_stop")
    async def stop(integration_id: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(stream.set_status(integration_id, "stopped").view())

        return await answer(request, handle)

    _install_sandbox_stream(app, state)


def _install_sandbox_stream(app: FastAPI, state: NewStoreEmulator) -> None:
    stream = state.stream

    @app.get(f"{SANDBOX_PREFIX}/stream")
    async def read_controls() -> StreamControls:
        return stream.controls

    @app.patch(f"{SANDBOX_PREFIX}/stream")
    async def patch_controls(changes: dict[str, Any]) -> StreamControls:
        try:
            controls = StreamControls.model_validate(stream.controls.model_dump() | changes)
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
        stream.set_controls(controls)
        return stream.controls

    @app.post(f"{SANDBOX_PREFIX}/stream/deliver")
    async def deliver() -> dict[str, Any]:
        """One delivery pass now (what the background deliverer does every interval)."""
        return await stream.deliver()

    @app.get(f"{SANDBOX_PREFIX}/stream/deliveries")
    async def deliveries() -> dict[str, Any]:
        views = [d.view() for d in stream.deliveries]
        pending = {i.id: len(stream.pending(i)) for i in stream.integrations.values()}
        return {"count": len(views), "pending": pending, "deliveries": views}

    @app.post(f"{SANDBOX_PREFIX}/stream/events")
    async def emit(request: Request) -> Response:
        """Emit an arbitrary event (`{name, payload, published_at?}`), e.g. one the
        connector must ignore, or one dated in the past for a replay."""
        body = json.loads(await request.body())
        payload = dict(body.get("payload") or {})
        event = stream.publish(body["name"], payload, body.get("published_at"))
        return JSONResponse(event, status_code=201)
