"""The doctor's checks: each one small async function over the two clients, answering one
`Check` (pass, fail or skip) with the reason and, when it fails, the fix.

Pure of configuration loading and printing: `cli/doctor.py` composes them (it knows the apps'
settings), post-deploy runs them through it, and the job's watchdog reuses the subscription
check. No check raises for an upstream answer: a refused or unreachable API is a failed check
that names the service and the status, never a secret (errors carry no credentials).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx

from connector.commercetools import CommercetoolsClient
from connector.deploy import SUBSCRIPTION_KEY
from connector.http import UpstreamError, json_object, network_error
from connector.newstore import NewStoreClient, NewStoreError

# The scopes each part of the connector needs (README "Scopes", docs/deploy.md), by name;
# commercetools writes each as `{scope}:{projectKey}` (docs.commercetools.com/api/scopes).
APP_SCOPES: dict[str, tuple[str, ...]] = {
    # manage_orders: NewStore's order id is written into the order's syncInfo;
    # view_channels: the `newstore` channel's id is read once
    "event app": (
        "manage_orders",
        "view_payments",
        "view_shipping_methods",
        "view_cart_discounts",
        "view_discount_codes",
        "view_channels",
        "manage_key_value_documents",
    ),
    # manage_subscriptions: the watchdog reads the subscription and repairs it (there is
    # no view scope for subscriptions: the OpenAPI names only manage_subscriptions)
    "job app": (
        "view_products",
        "manage_products",
        "manage_key_value_documents",
        "manage_subscriptions",
    ),
    "post-deploy": ("manage_subscriptions", "manage_channels"),
}
# fulfill_order's own limit, for the whole tenant (its description in NewStore's Swagger).
FULFILL_ORDER_RATE = 20.0
# Calls/s of a whole development tenant, shared by every client (docs.newstore.net "API rate
# limiting"; 200 for production): the connector keeps to the smaller one.
TENANT_RATE = 100.0
SKU_SAMPLE = 20
HEALTHY = "Healthy"
DESTINATION_FIELDS = ("type", "projectId", "topic", "topicArn", "queueUrl", "region")


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # nothing to check here (not configured, or not exposed by the API)


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    reason: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


def passed(name: str, reason: str) -> Check:
    return Check(name, Outcome.PASS, reason)


def failed(name: str, reason: str, fix: str) -> Check:
    return Check(name, Outcome.FAIL, reason, fix)


def skipped(name: str, reason: str, fix: str = "") -> Check:
    return Check(name, Outcome.SKIP, reason, fix)


# --- tokens and scopes ----------------------------------------------------------------------


async def check_commercetools_token(ctp: CommercetoolsClient) -> Check:
    name = "commercetools token"
    try:
        await ctp.ensure_token()
    except UpstreamError as error:
        return failed(
            name,
            str(error),
            "check CTP_CLIENT_ID, CTP_CLIENT_SECRET, CTP_PROJECT_KEY and CTP_REGION "
            "(or CTP_AUTH_URL): the API client must exist in this project",
        )
    return passed(name, f"{ctp.settings.auth_base} hands out a token")


async def check_newstore_token(ns: NewStoreClient) -> Check:
    name = "NewStore token"
    try:
        await ns.ensure_token()
    except UpstreamError as error:
        flow = (
            "NEW_STORE_CLIENT_ID, NEW_STORE_CLIENT_SECRET and NEW_STORE_TOKEN_URL"
            if ns.settings.uses_client_credentials
            else "NEW_STORE_USERNAME and NEW_STORE_PASSWORD"
        )
        return failed(name, str(error), f"check NEW_STORE_BASE_URL and {flow}")
    return passed(name, f"{ns.base_url} hands out a token")


async def granted_scopes(ctp: CommercetoolsClient) -> list[str]:
    """Every scope of the API client: a token requested without `scope` carries them all,
    listed in the token answer (docs.commercetools.com/api/authorization). Not CTP_SCOPE's:
    each app may narrow its own token (docs/deploy.md), and this asks what they can get."""
    settings = ctp.settings
    data = {"grant_type": "client_credentials"}
    auth = httpx.BasicAuth(settings.client_id, settings.client_secret.get_secret_value())
    try:
        response = await ctp.http.request(
            "POST", f"{settings.auth_base}/oauth/token", data=data, auth=auth
        )
    except httpx.TransportError as error:
        raise network_error("commercetools", error) from None
    body = json_object(response)
    if not response.is_success:
        reason = str(body.get("error") or response.reason_phrase)[:120]
        raise UpstreamError(
            "commercetools", f"token request refused ({reason})", status=response.status_code
        )
    return str(body.get("scope") or "").split()


def missing_scopes(granted: Iterable[str], project_key: str) -> dict[str, list[str]]:
    """Per part of the connector, the scope names it needs and the token lacks.

    `manage_project` grants every scope, and `manage_<x>` includes `view_<x>`
    (docs.commercetools.com/api/scopes). The channel scopes are newer than the API clients
    that `view_products` / `manage_products` gave them to, which still have them
    (docs.commercetools.com/api/releases/2026-06-02-added-oauth-scopes-for-product-types-
    channels-zones-and-product-discounts)."""
    names = {scope.partition(":")[0] for scope in granted if scope.endswith(f":{project_key}")}
    if "manage_project" in names:
        return {}
    if "manage_products" in names:
        names |= {"manage_channels"}
    if "view_products" in names:
        names |= {"view_channels"}
    covered = names | {f"view_{n.removeprefix('manage_')}" for n in names if "manage_" in n}
    missing = {app: [s for s in needed if s not in covered] for app, needed in APP_SCOPES.items()}
    return {app: scopes for app, scopes in missing.items() if scopes}


async def check_scopes(ctp: CommercetoolsClient) -> Check:
    name = "commercetools scopes"
    project = ctp.settings.project_key
    try:
        granted = await granted_scopes(ctp)
    except UpstreamError as error:
        return failed(name, str(error), "fix the commercetools token first (see above)")
    missing = missing_scopes(granted, project)
    if not missing:
        return passed(name, f"the token has every scope the connector needs ({len(granted)})")
    lacking = "; ".join(f"{app}: {', '.join(scopes)}" for app, scopes in missing.items())
    every = sorted({s for scopes in missing.values() for s in scopes})
    return failed(
        name,
        f"the token lacks {lacking}",
        "give the API client "
        + ", ".join(f"{s}:{project}" for s in every)
        + " (Merchant Center > Settings > Developer settings: a new API client)",
    )


# --- orders ----------------------------------------------------------------------------------


async def recent_orders(
    ctp: CommercetoolsClient, limit: int, expand: Sequence[str] = ()
) -> list[dict[str, Any]]:
    params: list[tuple[str, str | int]] = [
        ("sort", "createdAt desc"),
        ("limit", limit),
        ("withTotal", "false"),
    ]
    params += [("expand", path) for path in expand]
    response = await ctp.send("GET", f"{ctp.project_url}/orders", params=params)
    return list(json_object(response).get("results", []))


def unexpanded(order: Mapping[str, Any]) -> list[str]:
    """The references the mapping reads that came back without their `obj`."""
    missing: list[str] = []
    payments = (order.get("paymentInfo") or {}).get("payments") or []
    if any("obj" not in ref for ref in payments):
        missing.append("paymentInfo.payments (view_payments)")
    method = (order.get("shippingInfo") or {}).get("shippingMethod")
    if method and "obj" not in method:
        missing.append("shippingInfo.shippingMethod (view_shipping_methods)")
    codes = order.get("discountCodes") or []
    if any("obj" not in (code.get("discountCode") or {}) for code in codes):
        missing.append("discountCodes (view_discount_codes)")
    return missing


async def check_order_expansion(ctp: CommercetoolsClient, expansions: Sequence[str]) -> Check:
    name = "order expansion"
    try:
        orders = await recent_orders(ctp, 1, expansions)
    except UpstreamError as error:
        return failed(name, str(error), "give the API client view_orders")
    if not orders:
        return skipped(name, "the project has no order yet to read with the mapping's expansions")
    order = orders[0]
    missing = unexpanded(order)
    if missing:
        return failed(
            name,
            f"order {order.get('id')} came back without {', '.join(missing)}",
            "give the API client the view scopes named above: without them the event app "
            "records such orders as failed (payment_not_expanded)",
        )
    return passed(name, f"order {order.get('id')} comes back with everything expanded")


# --- the subscription --------------------------------------------------------------------------


def describe_destination(destination: Mapping[str, Any] | None) -> str:
    """Where a destination points, without its credentials (an SQS or Azure destination may
    hold an access secret or a connection string)."""
    if not destination:
        return "none"
    parts = [f"{k}={destination[k]}" for k in DESTINATION_FIELDS if destination.get(k)]
    return " ".join(parts) or str(destination.get("type"))


def same_destination(existing: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    if not existing:
        return False
    return all(existing.get(key) == value for key, value in wanted.items())


async def check_subscription(
    ctp: CommercetoolsClient, wanted_destination: Mapping[str, Any] | None
) -> Check:
    """The OrderCreated subscription exists, points where post-deploy would point it
    (`wanted_destination`; None: not checked) and is `Healthy`."""
    name = "subscription"
    try:
        subscription = await ctp.get_subscription(SUBSCRIPTION_KEY)
    except UpstreamError as error:
        return failed(name, str(error), "give the API client manage_subscriptions")
    if subscription is None:
        return failed(
            name,
            f"there is no subscription {SUBSCRIPTION_KEY}: no order reaches the event app",
            "run `newstore-connector post-deploy` with CONNECT_GCP_PROJECT_ID and "
            "CONNECT_GCP_TOPIC_NAME (or CONNECT_AWS_TOPIC_ARN) set",
        )
    destination = subscription.get("destination")
    if wanted_destination is not None and not same_destination(destination, wanted_destination):
        return failed(
            name,
            f"it points at {describe_destination(destination)}, not at the configured "
            f"{describe_destination(wanted_destination)}",
            "run `newstore-connector post-deploy` to point it at the configured topic (the "
            "job's watchdog does this too)",
        )
    status = subscription.get("status")
    if status != HEALTHY:
        return failed(
            name,
            f"its status is {status}: commercetools cannot deliver to "
            f"{describe_destination(destination)} (on a production project, messages are "
            "dropped after 24 h in ConfigurationError)",
            "let commercetools publish to the topic (Google Cloud: grant "
            "subscriptions@commercetools-platform.iam.gserviceaccount.com the Pub/Sub "
            "Publisher role on it), then check again; ManuallySuspended needs commercetools "
            "support",
        )
    checked = "" if wanted_destination is not None else " (destination not checked: no CONNECT_*)"
    return passed(name, f"Healthy, to {describe_destination(destination)}{checked}")


# --- shipping methods and service levels -----------------------------------------------------


async def shipping_method_keys(ctp: CommercetoolsClient) -> list[str | None]:
    params: list[tuple[str, str | int]] = [("limit", 500), ("withTotal", "false")]
    response = await ctp.send("GET", f"{ctp.project_url}/shipping-methods", params=params)
    return [method.get("key") for method in json_object(response).get("results", [])]


async def newstore_service_levels(ns: NewStoreClient) -> list[str] | None:
    """The service levels of NewStore's routing ruleset (`sl_levels_priority` of
    `GET /v0/routing/ruleset`, NewStore's Swagger `showRoutingRuleset`); None when this
    client cannot read a ruleset (404, 403)."""
    try:
        response = await ns.send("GET", f"{ns.base_url}/v0/routing/ruleset")
    except NewStoreError as error:
        if error.status in (403, 404):
            return None
        raise
    return [str(level) for level in json_object(response).get("sl_levels_priority") or []]


async def check_service_levels(
    ctp: CommercetoolsClient, ns: NewStoreClient, level_for: Callable[[str], str]
) -> Check:
    """Every shipping method key, through the customisation point (`level_for`), is a
    NewStore service level."""
    name = "service levels"
    try:
        keys = await shipping_method_keys(ctp)
        levels = await newstore_service_levels(ns)
    except UpstreamError as error:
        return failed(name, str(error), "give the API client view_shipping_methods")
    keyless = sum(1 for key in keys if not key)
    mapped = {key: level_for(key) for key in keys if key}
    if levels is None:
        return skipped(
            name,
            "NewStore shows this client no routing ruleset; check by hand that "
            f"{', '.join(sorted(set(mapped.values()))) or 'no level'} are service levels",
        )
    unknown = sorted(f"{key} -> {level}" for key, level in mapped.items() if level not in levels)
    if unknown or keyless:
        problems = []
        if unknown:
            problems.append(f"not NewStore service levels: {', '.join(unknown)}")
        if keyless:
            problems.append(f"{keyless} shipping method(s) without a key")
        return failed(
            name,
            "; ".join(problems) + f" (NewStore knows {', '.join(levels) or 'none'})",
            "give each shipping method the key of a NewStore service level, or map the keys "
            "in event/customization.py service_level_for_key",
        )
    return passed(name, f"{len(mapped)} shipping method key(s) are NewStore service levels")


# --- products ----------------------------------------------------------------------------------


def product_id_of(variant: Mapping[str, Any], source: str) -> str | None:
    """NewStore's product id for a variant: its SKU, or the attribute `attribute:<name>`."""
    if source == "sku":
        sku = variant.get("sku")
        return str(sku) if sku else None
    name = source.removeprefix("attribute:")
    for attribute in variant.get("attributes") or []:
        if attribute.get("name") == name:
            value = attribute.get("value")
            value = value.get("key") if isinstance(value, dict) else value
            # as the mapping reads it: text, a whole number or an enum's key; not a boolean
            if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                return None
            return str(value)
    return None


async def sample_product_ids(
    ctp: CommercetoolsClient, source: str, size: int = SKU_SAMPLE
) -> list[str]:
    """Product ids of recent orders' lines, then of SKUs with stock; at most `size`."""
    ids: dict[str, None] = {}
    for order in await recent_orders(ctp, size):
        for line in order.get("lineItems") or []:
            if (pid := product_id_of(line.get("variant") or {}, source)) is not None:
                ids.setdefault(pid)
    if source == "sku" and len(ids) < size:
        entries = await ctp.query_inventory(["quantityOnStock > 0"], limit=size)
        for entry in entries:
            ids.setdefault(str(entry["sku"]))
    return list(ids)[:size]


async def newstore_has_product(ns: NewStoreClient, product_id: str, locale: str) -> bool:
    """Customer API v0 "Get product" (docs.newstore.net/api/integration/catalog-sfcc/
    consumer-api_api): `GET /v0/c/products/{product_id}?shop=&locale=`; 404: unknown."""
    url = f"{ns.base_url}/v0/c/products/{quote(product_id, safe='')}"
    try:
        await ns.send("GET", url, params={"shop": ns.settings.shop, "locale": locale})
    except NewStoreError as error:
        if error.status == 404:
            return False
        raise
    return True


async def check_products(
    ctp: CommercetoolsClient, ns: NewStoreClient, source: str, locale: str
) -> Check:
    name = "products"
    try:
        sample = await sample_product_ids(ctp, source)
        if not sample:
            return skipped(name, "no recent order line and no SKU with stock to sample")
        unknown = [pid for pid in sample if not await newstore_has_product(ns, pid, locale)]
    except UpstreamError as error:
        return failed(name, str(error), "give the API client view_orders and view_products")
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        return failed(
            name,
            f"{len(unknown)} of {len(sample)} sampled product ids are not NewStore products "
            f"in shop {ns.settings.shop}: {shown}; their orders would be refused",
            "import them into NewStore's catalogue, or set NEW_STORE_PRODUCT_ID_SOURCE to "
            "the attribute that holds NewStore's product id",
        )
    return passed(name, f"{len(sample)} sampled product ids ({source}) are NewStore products")


# --- rate budget and event stream ---------------------------------------------------------------


def check_rate_budget(inject_rate: float, job_rate: float, instances: int = 1) -> Check:
    """The connector's NewStore rates fit the tenant: fulfill_order within its 20/s, and
    injection plus the job within the tenant's 100 calls/s."""
    name = "rate budget"
    inject_total = inject_rate * instances
    if inject_total > FULFILL_ORDER_RATE:
        return failed(
            name,
            f"{instances} instance(s) x NEW_STORE_INJECT_RATE {inject_rate:g}/s = "
            f"{inject_total:g}/s, above fulfill_order's {FULFILL_ORDER_RATE:g}/s for the tenant",
            f"set NEW_STORE_INJECT_RATE to {FULFILL_ORDER_RATE / instances:g} or less",
        )
    total = inject_total + job_rate
    if total > TENANT_RATE:
        return failed(
            name,
            f"injection {inject_total:g}/s + job INVENTORY_NEWSTORE_RATE_LIMIT {job_rate:g}/s = "
            f"{total:g}/s, above the {TENANT_RATE:g} calls/s a development tenant has for "
            "every client together",
            f"lower INVENTORY_NEWSTORE_RATE_LIMIT to {max(TENANT_RATE - inject_total, 1):g} "
            "or less",
        )
    return passed(
        name, f"{inject_total:g}/s injection + {job_rate:g}/s job, within {TENANT_RATE:g}/s"
    )


# assumption: the event stream configuration API (docs.newstore.net, "Event stream
# configuration API") answers an integration as `{..., "status": "running" | "stopped"}`.


async def check_event_stream(ns: NewStoreClient, integration_id: str | None) -> Check:
    name = "event stream"
    if not integration_id:
        return skipped(
            name, "not configured (the lifecycle app is not deployed: no LIFECYCLE_API_KEY)"
        )
    try:
        integration = await ns.event_stream_integration(integration_id)
    except UpstreamError as error:
        return failed(
            name, str(error), "check LIFECYCLE_INTEGRATION_ID, or run post-deploy to register it"
        )
    if integration is None:
        return failed(
            name,
            f"NewStore has no integration {integration_id}: it sends no events",
            "run post-deploy to register it (or check LIFECYCLE_INTEGRATION_ID)",
        )
    status = integration.get("status")
    if status != "running":
        return failed(
            name,
            f"integration {integration_id} is {status}: NewStore sends no events",
            "start it with the event stream configuration API",
        )
    return passed(name, f"integration {integration_id} is running")
