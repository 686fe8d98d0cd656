"""What every NewStore emulator route of the order and event stream APIs does around its
handler: the token check first, then a `Rejected` answered as NewStore's error body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from sandbox.newstore.errors import Rejected, error_response
from sandbox.newstore.state import NewStoreEmulator

AuthCheck = Callable[[NewStoreEmulator, Request], Response | None]
Answer = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]


def guarded(state: NewStoreEmulator, auth_failure: AuthCheck) -> Answer:
    async def answer(request: Request, handle: Callable[[], Awaitable[Response]]) -> Response:
        if (denied := auth_failure(state, request)) is not None:
            return denied
        try:
            return await handle()
        except Rejected as refusal:
            return error_response(refusal.status, refusal.error_code, refusal.message)

    return answer
