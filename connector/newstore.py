"""One async NewStore API client: both token flows, order injection, stock, the
Availabilities Export API, typed errors."""

from __future__ import annotations

import time
from typing import IO, Any
from urllib.parse import quote

import httpx

from connector import metrics
from connector.http import (
    RetryPolicy,
    Token,
    UpstreamClient,
    UpstreamError,
    classify_status,
    json_object,
    post_token_form,
    retry_after_seconds,
)
from connector.settings import NewStoreSettings

SERVICE = "newstore"
# Retried in-request. 408 (RFC 9110 15.5.9: the server gave up waiting for the request, which
# "MAY" be repeated on a new connection) and 425 (RFC 8470 5.2: the request may be retried
# once the handshake is complete) are answers about this attempt's transport, like a network
# timeout, which is retried in-request too. 404 and 409 are not: a misrouted base URL does
# not heal in 100 ms, and a conflict is better left to Pub/Sub's backoff.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Order injection can take a few seconds on NewStore's side; stay inside Pub/Sub's 10 s.
DEFAULT_TIMEOUT = httpx.Timeout(6.0, connect=2.0)
FULFILL_ORDER_PATH = "/v0/d/fulfill_order"
ALREADY_INJECTED = "same_order_injection_with_different_data"
UNEXPECTED_SUCCESS = "unexpected_success_status"
# The fulfill_order answers that refuse the order itself. NewStore's Swagger documents 400
# (invalid input, limits, money precision, payment totals, add-ons), 429 and 500/502/503/504;
# of these only 400 is about the order. Any other status, documented or not (404 from a
# mistyped base URL or a proxy, 408, 409, 425, 401/403 credentials, 429, 5xx), says nothing
# against the order, so it is transient: redelivered, counted, and parked only once its
# message is ORDER_PARK_AFTER_S old, never dropped on the first answer.
INJECTION_REFUSED_STATUSES = frozenset({400})


# NewStore's event stream configuration API (docs.newstore.net, "Event stream configuration
# API"); the lifecycle app registers its integration there.
EVENT_STREAM_PATH = "/api/v1/org/integrations/eventstream"


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
    if response.status_code == 429:
        endpoint = "fulfill_order" if response.url.path.endswith(FULFILL_ORDER_PATH) else "other"
        metrics.NEWSTORE_429.labels(endpoint).inc()
    body = json_object(response)
    return NewStoreError(
        str(body.get("error_code") or f"http_{response.status_code}"),
        str(body.get("message") or response.reason_phrase)[:500],
        body.get("request_id") or response.headers.get("x-request-id"),
        status=response.status_code,
        retry_after_s=retry_after_seconds(response),
        **classify_status(response.status_code, RETRY_STATUSES),
    )


class NewStoreClient(UpstreamClient):
    service = SERVICE
    default_timeout = DEFAULT_TIMEOUT
    # An IP-level block (thousands of requests within 5 minutes) also answers 403, for 5
    # minutes (docs.newstore.net "API rate limiting"; ../shared/DESIGN.md): a 403 that
    # survives a fresh token pauses NewStore calls for that long.
    block_statuses = frozenset({403})
    block_s = 300.0
    # NewStore answers an expired token with 403, not 401.
    auth_failure_statuses = frozenset({401, 403})
    parse_error = staticmethod(parse_error)

    def __init__(
        self,
        settings: NewStoreSettings,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.api_base
        super().__init__(http, retry)

    def probe_url(self) -> str:
        # assumption: the tenant host answers an unsigned GET / below 500 (a 401, 403 or 404)
        # whenever its API is up (docs.newstore.net is silent on the root path).
        return f"{self.base_url}/"

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
        """Inject an order; answer NewStore's `InjectedOrderResponse` (`{}` if the body is not
        a JSON object). Safe to repeat: NewStore is idempotent on `external_id`.

        Only a 200 means that the order was created (the Swagger: "Only the `200` response
        implies that the order has been created correctly"): another 2xx raises a transient
        `unexpected_success_status`. An error is permanent (`transient` False) only for a
        status in INJECTION_REFUSED_STATUSES."""
        started = time.perf_counter()
        try:
            response = await self.send(
                "POST",
                f"{self.base_url}{FULFILL_ORDER_PATH}",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except NewStoreError as error:
            error.transient = error.status not in INJECTION_REFUSED_STATUSES
            raise
        finally:
            metrics.INJECTION_SECONDS.observe(time.perf_counter() - started)
        if response.status_code != 200:
            raise NewStoreError(
                UNEXPECTED_SUCCESS,
                f"fulfill_order answered HTTP {response.status_code}; only 200 means that "
                "the order was created",
                response.headers.get("x-request-id"),
                status=response.status_code,
                transient=True,
            )
        return json_object(response)

    # --- sales orders -------------------------------------------------------------------------

    async def cancellation_status(self, order_id: str, id_type: str) -> dict[str, Any]:
        """`GET /v0/orders/{id}/cancel` (showCancellationStatus): `{cancelable, canceled,
        is_safe}`; `id_type` is `internal` (NewStore's order uuid) or `external` (the
        injected `external_id`), a required query parameter in NewStore's Swagger."""
        url = f"{self.base_url}/v0/orders/{quote(order_id, safe='')}/cancel"
        response = await self.send("GET", url, params={"id_type": id_type})
        return json_object(response)

    async def cancel_order(
        self, order_id: str, id_type: str, reason: str, note: str | None = None
    ) -> None:
        """`POST /v0/orders/{id}/cancel` (createCancellation) with a
        `SalesOrderCancellationRequest`: `reason` required (at least one character), `note`
        optional. The Swagger documents 200 as cancelled, 400 as a refused request, 404 as
        an unknown order, and 429/5xx."""
        body: dict[str, Any] = {"reason": reason}
        if note:
            body["note"] = note
        url = f"{self.base_url}/v0/orders/{quote(order_id, safe='')}/cancel"
        await self.send("POST", url, params={"id_type": id_type}, json=body)

    # --- event stream configuration ----------------------------------------------------------

    async def event_stream_integration(self, integration_id: str) -> dict[str, Any] | None:
        """`GET /api/v1/org/integrations/eventstream/{id}` (the event stream configuration
        API): the integration with its `status` (`running` / `stopped`); None when NewStore
        has none by that id (404). Shared by the lifecycle app, its registration, the doctor
        and the job's watchdog."""
        url = f"{self.base_url}{EVENT_STREAM_PATH}/{quote(integration_id, safe='')}"
        try:
            return json_object(await self.send("GET", url))
        except NewStoreError as error:
            if error.status == 404:
                return None
            raise

    async def stocked_products(self, limit: int, offset: int) -> dict[str, Any]:
        """One page of stock rows (one per product and fulfillment node):
        `{items: [...], pagination_info: {count, total, offset}}`."""
        response = await self.send(
            "GET",
            f"{self.base_url}/_/v0/hq/stocked_products",
            params={"limit": limit, "offset": offset},
        )
        return dict(response.json())

    # --- Location API ---------------------------------------------------------------------

    async def locations(self) -> list[dict[str, Any]]:
        """Every location of the business (`{id, is_enabled, is_inventory_master, type}`;
        at most 2,000, unpaged): docs.newstore.net, Location API (v0), "List locations".
        The path is not in the page's text we could check: `/v0/d/locations` is assumed,
        like the other `/v0/d/` integration APIs."""
        response = await self.send("GET", f"{self.base_url}/v0/d/locations")
        body = response.json()
        items = body.get("locations") if isinstance(body, dict) else None
        return [item for item in items or [] if isinstance(item, dict)]

    # --- Availabilities Export API ------------------------------------------------------------

    async def start_availability_export(self, last_updated_at: int | None) -> dict[str, Any]:
        """Start a global ATP export: everything, or only the products whose ATP changed
        after the `last_updated_at` cursor. Answers the job: `{id, state, ...}`.

        Retried like any call: a retry after a lost answer starts a second job, which
        costs NewStore a little work and changes nothing here (the first is never polled)."""
        body = {} if last_updated_at is None else {"last_updated_at": last_updated_at}
        response = await self.send("POST", f"{self.base_url}/v0/d/availabilities/bulk", json=body)
        return dict(response.json())

    async def availability_export(self, export_id: str) -> dict[str, Any]:
        """An export job: `{id, state}`, and once `state` is `finished`, `{link,
        last_updated_at}`."""
        url = f"{self.base_url}/v0/d/availabilities/bulk/{quote(export_id, safe='')}"
        response = await self.send("GET", url)
        return dict(response.json())

    async def download(self, link: str, into: IO[bytes]) -> int:
        """Stream the file behind a finished export's `link` into `into`; return its size.

        The link is a pre-signed storage URL that carries its own authorisation: no bearer
        token is sent (a storage host refuses a request with two, and must not see ours).
        Retried and counted like the API calls (it is a NewStore request too); each attempt
        starts the file again."""
        await self.send("GET", link, auth=False, stream_into=into)
        return into.tell()
