"""Error shapes of the NewStore emulator: `Rejected` (a request NewStore would refuse), the
NewStore error body (`error_code`, `message`, `request_id`) and its JSON response, and the
Keycloak (OAuth) error response of the token endpoints.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse


class Rejected(Exception):
    """A request NewStore would refuse: HTTP status, `error_code` and message."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


_CODES_BY_STATUS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
    500: "internal_server_error",
    503: "service_unavailable",
}


def error_body(status: int, message: str, error_code: str | None = None) -> dict[str, Any]:
    """NewStore's error shape."""
    return {
        "error_code": error_code or _CODES_BY_STATUS.get(status, "error"),
        "message": message,
        "request_id": uuid.uuid4().hex,
    }


def error_response(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message, error_code), status_code=status)


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """Keycloak's error shape (the token endpoints are OAuth, not NewStore, APIs)."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
