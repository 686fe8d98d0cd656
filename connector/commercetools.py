"""One async commercetools HTTP API client (orders, inventory, GraphQL, custom objects,
subscriptions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from connector.http import (
    NotFoundError,
    RetryPolicy,
    Token,
    UpstreamClient,
    UpstreamError,
    classify_status,
    json_object,
    post_token_form,
    retry_after_seconds,
)
from connector.settings import CommercetoolsSettings

SERVICE = "commercetools"
# The Channel under which the connector writes NewStore's order id into an order's syncInfo
# (role OrderExport: "a synchronization destination used when storing export information in
# SyncInfo", ChannelRoleEnum in the commercetools OpenAPI); post-deploy creates it.
NEWSTORE_CHANNEL_KEY = "newstore"
# Retried in-request: the statuses that commercetools documents as temporary.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class CommercetoolsError(UpstreamError):
    """An error answer from commercetools, with its `errors[].code` list."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(SERVICE, message, **kwargs)
        self.errors = errors
        self.codes = [str(e.get("code")) for e in errors]


class CommercetoolsNotFound(CommercetoolsError, NotFoundError):
    pass


class InventoryRow(msgspec.Struct, gc=False):
    """What a bulk read needs of an InventoryEntry (the API's required fields, typed as
    its OpenAPI says: ../shared/specs/commercetools/openapi.yaml, InventoryEntry; every
    other field is skipped without being built)."""

    id: str
    version: int
    sku: str
    quantityOnStock: int
    supplyChannel: dict[str, Any] | None = None


class _InventoryPage(msgspec.Struct):
    results: list[InventoryRow]


_decode_inventory_page = msgspec.json.Decoder(_InventoryPage).decode


def graphql_error(error: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL error in the shape of a REST `errors[]` item: `{code, message, ...}`.

    commercetools puts the REST error's code and fields (`currentVersion`, `field`, ...)
    in `extensions`."""
    extensions = error.get("extensions") or {}
    return {"message": error.get("message"), **extensions}


def parse_error(response: httpx.Response) -> CommercetoolsError:
    body = json_object(response)
    # A refused GraphQL request has no top-level message and keeps its codes in extensions.
    errors = [
        graphql_error(e) if "extensions" in e else e
        for e in body.get("errors", [])
        if isinstance(e, dict)
    ]
    first = errors[0].get("message") if errors else None
    message = str(body.get("message") or first or response.reason_phrase)[:300]
    cls = CommercetoolsNotFound if response.status_code == 404 else CommercetoolsError
    return cls(
        message,
        errors=errors,
        status=response.status_code,
        retry_after_s=retry_after_seconds(response),
        **classify_status(response.status_code, RETRY_STATUSES),
    )


def segment(value: str) -> str:
    """`value` as one URL path segment: it can never change the request's target.

    Everything but the unreserved characters is percent-encoded (`/`, `?`, `#`, `%`, spaces,
    non-ASCII...), and a segment of only dots, which `quote` leaves alone and any URL parser
    resolves as `.`/`..` (a Custom Object key may be `..`), has its dots encoded too. An empty
    segment would address the collection instead of a resource: refused."""
    if not isinstance(value, str) or not value:
        raise ValueError("an empty path segment would address another resource")
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if set(encoded) == {"."} else encoded


class CommercetoolsClient(UpstreamClient):
    service = SERVICE
    default_timeout = DEFAULT_TIMEOUT
    auth_failure_statuses = frozenset({401})
    parse_error = staticmethod(parse_error)

    def __init__(
        self,
        settings: CommercetoolsSettings,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.project_url = f"{settings.api_base}/{settings.project_key}"
        super().__init__(http, retry)

    def probe_url(self) -> str:
        return self.project_url  # unsigned: 401 from a reachable API

    async def _fetch_token(self) -> Token:
        data = {"grant_type": "client_credentials"}
        if self.settings.scope:
            data["scope"] = self.settings.scope
        return await post_token_form(
            self.http,
            SERVICE,
            f"{self.settings.auth_base}/oauth/token",
            data,
            auth=httpx.BasicAuth(
                self.settings.client_id, self.settings.client_secret.get_secret_value()
            ),
        )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.send(method, f"{self.project_url}{path}", **kwargs)
        return response.json()

    # --- orders ---------------------------------------------------------------------------

    async def get_order(self, order_id: str, expand: Sequence[str] = ()) -> dict[str, Any]:
        path = f"/orders/{segment(order_id)}"
        return dict(await self._json("GET", path, params=_expand(expand)))

    async def update_order(
        self, order_id: str, version: int, actions: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply update actions at `version`; a stale version answers 409
        `ConcurrentModification` (with `currentVersion`), raised as a CommercetoolsError."""
        body = {"version": version, "actions": actions}
        return dict(await self._json("POST", f"/orders/{segment(order_id)}", json=body))

    # --- inventory ------------------------------------------------------------------------------

    async def query_inventory(
        self, where: Sequence[str], limit: int = 500, sort: str = "id asc"
    ) -> list[dict[str, Any]]:
        """One page of inventory entries; repeated `where` predicates are ANDed.

        `withTotal=false`: counting is the expensive part of a query and paging by id cursor
        does not need it."""
        page = await self._json("GET", "/inventory", params=_page_params(where, limit, sort))
        return list(page.get("results", []))

    async def query_inventory_rows(
        self, where: Sequence[str], limit: int = 500, sort: str = "id asc"
    ) -> list[InventoryRow]:
        """`query_inventory`, decoded to the few fields a bulk read needs (`InventoryRow`):
        at a million entries, building every field of every entry as dicts cost seconds of
        CPU and hundreds of MB."""
        params = _page_params(where, limit, sort)
        response = await self.send("GET", f"{self.project_url}/inventory", params=params)
        try:
            return _decode_inventory_page(response.content).results
        except msgspec.DecodeError as error:  # ValidationError is one
            raise CommercetoolsError(
                f"an inventory page that is not a PagedQueryResponse: {error}"[:300], errors=[]
            ) from None

    async def create_inventory_entry(self, draft: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._json("POST", "/inventory", json=draft))

    async def update_inventory_entry(
        self, entry_id: str, version: int, actions: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"version": version, "actions": actions}
        return dict(await self._json("POST", f"/inventory/{segment(entry_id)}", json=body))

    # --- channels -------------------------------------------------------------------------

    async def get_channel(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(await self._json("GET", f"/channels/key={segment(key)}"))
        except CommercetoolsNotFound:
            return None

    async def query_channels(self, where: Sequence[str], limit: int = 500) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int]] = [("limit", limit), ("withTotal", "false")]
        params += [("where", w) for w in where]
        page = await self._json("GET", "/channels", params=params)
        return list(page.get("results", []))

    async def create_channel(self, draft: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._json("POST", "/channels", json=draft))

    async def update_channel(
        self, channel_id: str, version: int, actions: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"version": version, "actions": actions}
        return dict(await self._json("POST", f"/channels/{segment(channel_id)}", json=body))

    # --- GraphQL -----------------------------------------------------------------------------

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole GraphQL answer, `data` and `errors`: with aliased fields one field may
        fail while the others succeed, so the caller reads the errors per alias."""
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = variables
        # The bytes httpx's `json=` would send (UTF-8, compact), made several times faster:
        # a batch of the inventory job's node state carries megabytes of escaped JSON.
        content = msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"}
        return dict(await self._json("POST", "/graphql", content=content, headers=headers))

    # --- custom objects ---------------------------------------------------------------------

    async def get_custom_object(self, container: str, key: str) -> dict[str, Any] | None:
        try:
            return dict(await self._json("GET", _custom_object_path(container, key)))
        except CommercetoolsNotFound:
            return None

    async def put_custom_object(
        self, container: str, key: str, value: Any, version: int | None = None
    ) -> dict[str, Any]:
        """Create or replace; with `version`, only if the stored version still matches."""
        body: dict[str, Any] = {"container": container, "key": key, "value": value}
        if version is not None:
            body["version"] = version
        return dict(await self._json("POST", "/custom-objects", json=body))

    async def delete_custom_object(
        self, container: str, key: str, version: int | None = None
    ) -> dict[str, Any] | None:
        """Delete and return the object; None when there is none (404). With `version`, only
        if the stored version still matches (409 `ConcurrentModification` otherwise)."""
        params = {} if version is None else {"version": version}
        try:
            path = _custom_object_path(container, key)
            return dict(await self._json("DELETE", path, params=params))
        except CommercetoolsNotFound:
            return None

    async def query_custom_objects(
        self,
        container: str,
        where: Sequence[str] = (),
        limit: int = 100,
        sort: str = "key asc",
    ) -> list[dict[str, Any]]:
        path, params = _custom_object_query(container, where, limit, sort)
        page = await self._json("GET", path, params=params)
        return list(page.get("results", []))

    async def query_custom_objects_body(
        self,
        container: str,
        where: Sequence[str] = (),
        limit: int = 100,
        sort: str = "key asc",
    ) -> bytes:
        """`query_custom_objects`' page as the bytes of its JSON body: a caller that reads
        megabytes of values decodes them into its own typed structures in one pass."""
        path, params = _custom_object_query(container, where, limit, sort)
        return (await self.send("GET", f"{self.project_url}{path}", params=params)).content

    # --- subscriptions -----------------------------------------------------------------------

    async def get_subscription(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(await self._json("GET", f"/subscriptions/key={segment(key)}"))
        except CommercetoolsNotFound:
            return None

    async def create_subscription(self, draft: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._json("POST", "/subscriptions", json=draft))

    async def update_subscription(
        self, key: str, version: int, actions: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"version": version, "actions": actions}
        return dict(await self._json("POST", f"/subscriptions/key={segment(key)}", json=body))

    async def delete_subscription(self, key: str, version: int) -> None:
        path = f"/subscriptions/key={segment(key)}"
        await self._json("DELETE", path, params={"version": version})


def _custom_object_path(container: str, key: str) -> str:
    return f"/custom-objects/{segment(container)}/{segment(key)}"


def _expand(paths: Sequence[str]) -> list[tuple[str, str]]:
    return [("expand", path) for path in paths]


def _custom_object_query(
    container: str, where: Sequence[str], limit: int, sort: str
) -> tuple[str, list[tuple[str, str | int]]]:
    params: list[tuple[str, str | int]] = [("limit", limit), ("sort", sort)]
    params += [("where", w) for w in where]
    params.append(("withTotal", "false"))
    return f"/custom-objects/{segment(container)}", params


def _page_params(where: Sequence[str], limit: int, sort: str) -> list[tuple[str, str | int]]:
    """A query page's parameters; repeated `where` predicates are ANDed. `withTotal=false`:
    counting is the expensive part of a query and paging by id cursor does not need it."""
    params: list[tuple[str, str | int]] = [("limit", limit), ("sort", sort)]
    params += [("where", w) for w in where]
    params.append(("withTotal", "false"))
    return params
