"""One async NewStore API client: both token flows, order injection, stock, typed errors."""

from __future__ import annotations

from typing import Any, Self

import httpx

from connector.http import (
    ApiClient,
    RetryPolicy,
    Token,
    TokenCache,
    UpstreamError,
    classify_status,
    post_token_form,
    retry_after_seconds,
)
from connector.settings import NewStoreSettings

SERVICE = "newstore"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Order injection can take a few seconds on NewStore's side; stay inside Pub/Sub's 10 s.
DEFAULT_TIMEOUT = httpx.Timeout(6.0, connect=2.0)
ALREADY_INJECTED = "same_order_injection_with_different_data"


class NewStoreError(UpstreamError):
    """NewStore's error answer: `{error_code, message, request_id}`."""

    def __init__(
        self, error_code: str, message: str, request_id: str | None, **kwargs: Any
    ) -> None:
        super().__init__(SERVICE, f"{error_code}: {message}", **kwargs)
        self.error_code = error_code
        self.detail = message
        self.request_id = request_id

    def as_record(self) -> dict[str, Any]:
        return {
            "service": SERVICE,
            "status": self.status,
            "error_code": self.error_code,
            "message": self.detail,
            "request_id": self.request_id,
        }


def parse_error(response: httpx.Response) -> NewStoreError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return NewStoreError(
        str(body.get("error_code") or f"http_{response.status_code}"),
        str(body.get("message") or response.reason_phrase)[:500],
        body.get("request_id") or response.headers.get("x-request-id"),
        status=response.status_code,
        retry_after_s=retry_after_seconds(response),
        **classify_status(response.status_code, RETRY_STATUSES),
    )


class NewStoreClient:
    def __init__(
        self,
        settings: NewStoreSettings,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, limits=httpx.Limits(max_connections=100)
        )
        self.base_url = settings.api_base
        self.api = ApiClient(
            SERVICE,
            self.http,
            TokenCache(self._fetch_token),
            retry or RetryPolicy(),
            parse_error,
            # NewStore answers an expired token with 403, not 401.
            auth_failure_statuses=frozenset({401, 403}),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _fetch_token(self) -> Token:
        settings = self.settings
        if settings.uses_client_credentials:
            assert settings.client_id and settings.client_secret and settings.token_url
            data = {
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret.get_secret_value(),
            }
            return await post_token_form(self.http, SERVICE, str(settings.token_url), data)
        assert settings.username and settings.password  # the settings validator checked
        data = {
            "grant_type": "password",
            "username": settings.username,
            "password": settings.password.get_secret_value(),
        }
        return await post_token_form(self.http, SERVICE, f"{self.base_url}/v0/token", data)

    async def fulfill_order(self, body: bytes) -> dict[str, Any]:
        """Inject an order. Safe to repeat: NewStore is idempotent on `external_id`."""
        response = await self.api.request(
            "POST",
            f"{self.base_url}/v0/d/fulfill_order",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return dict(response.json())

    async def stocked_products(self, limit: int, offset: int) -> dict[str, Any]:
        """One page of stock rows (one per product and fulfillment node):
        `{items: [...], pagination_info: {count, total, offset}}`."""
        response = await self.api.request(
            "GET",
            f"{self.base_url}/_/v0/hq/stocked_products",
            params={"limit": limit, "offset": offset},
        )
        return dict(response.json())
