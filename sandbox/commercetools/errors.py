"""Error responses of the commercetools emulator: `CtError` (answered with the real
`ErrorResponse` body) and `AuthError` (`AuthErrorResponse`), the constructors for the errors the
real API gives (ResourceNotFound, ConcurrentModification, DuplicateField, InvalidInput,
InvalidJsonInput, ...), and the body for the faults `sandbox.controls` injects.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.commercetools.common import Json


class CtError(Exception):
    """An API error, answered with the real `ErrorResponse` body."""

    def __init__(self, status: int, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> Json:
        error = {"code": self.code, "message": self.message, **self.fields}
        return {"statusCode": self.status, "message": self.message, "errors": [error]}


class AuthError(CtError):
    """Auth errors use `AuthErrorResponse`: the OAuth `error` fields next to `errors`."""

    def body(self) -> Json:
        body = super().body()
        body["error"] = self.code
        body["error_description"] = self.message
        return body


def not_found(value: str, by: str = "ID") -> CtError:
    return CtError(404, "ResourceNotFound", f"The Resource with {by} '{value}' was not found.")


def custom_object_not_found(container: str, key: str) -> CtError:
    # The real API answers a missing Custom Object with this code and message, not
    # ResourceNotFound (seen in captured responses).
    message = f"The CustomObject with ID '({container},{key})' was not found."
    return CtError(404, "InvalidSubject", message)


def conflict(resource_id: str, expected: int, actual: int) -> CtError:
    message = (
        f"Object {resource_id} has a different version than expected. "
        f"Expected: {expected} - Actual: {actual}."
    )
    return CtError(409, "ConcurrentModification", message, currentVersion=actual)


def duplicate(field_name: str, value: Any) -> CtError:
    message = f"A duplicate value '{json.dumps(value)}' exists for field '{field_name}'."
    return CtError(400, "DuplicateField", message, field=field_name, duplicateValue=value)


def invalid_input(message: str) -> CtError:
    return CtError(400, "InvalidInput", message)


def invalid_json(detail: str) -> CtError:
    message = "Request body does not contain valid JSON."
    return CtError(400, "InvalidJsonInput", message, detailedErrorMessage=detail)


# commercetools documents OverCapacity for 503; it has no documented code for 429.
_CONTROL_ERROR_CODES = {429: "TooManyRequests", 502: "BadGateway", 503: "OverCapacity"}


def ct_error_body(status: int, message: str) -> Json:
    """Error body for the injected faults of `sandbox.controls`."""
    return CtError(status, _CONTROL_ERROR_CODES.get(status, "General"), message).body()
