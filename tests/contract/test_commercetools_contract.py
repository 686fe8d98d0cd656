"""The requests the connector sends to commercetools, against commercetools' published specs.

- GraphQL: every document the job sends (the aliased inventory mutations of `job/apply.py`,
  the product look-up of `job/inventory_reads.py`, and any other GraphQL string constant in
  `job/`) is validated with graphql-core against `../shared/specs/commercetools/schema.graphql`,
  with its variables coerced to their declared types.
- REST: the product's own code paths drive `CommercetoolsClient` over an
  `httpx.MockTransport`; each captured request must be an operation of
  `../shared/specs/commercetools/openapi.yaml` (method and path template), with only declared
  query parameters of the declared types, and a body valid for the operation's request
  schema (`$ref`s resolved, `discriminator` mappings followed, and no property that the
  schema does not define).
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import graphql
import httpx
import jsonschema
import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.settings import CommercetoolsSettings
from event.order import ORDER_EXPANSIONS
from event.records import OrderRecords, OrderSync, RecordStatus
from job import inventory_reads
from job.apply import GraphQLWriter, RestWriter, mutation_document
from job.cursor import CursorState, CursorStore
from job.lease import Lease
from job.plan import Create, Update, Write
from tests.contract.specs import ROOT, graphql_sdl, openapi

API = "https://api.contract.commercetools.invalid"
AUTH = "https://auth.contract.commercetools.invalid"
PROJECT = "shop"
# SKUs that a JSON-escaped GraphQL literal must carry unchanged
AWKWARD_SKUS = ['SKU-"quoted"', "back\\slash", "new\nline", "ümlaut", "emoji-😀", "tab\there"]


# --- GraphQL --------------------------------------------------------------------------------------


def _long_literal(node: graphql.ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, graphql.IntValueNode):
        raise graphql.GraphQLError(f"Long cannot represent {graphql.print_ast(node)}")
    return int(node.value)


def _long_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise graphql.GraphQLError(f"Long cannot represent {value!r}")
    return value


@cache
def schema() -> graphql.GraphQLSchema:
    """The published SDL; its custom `Long` (versions, quantities) taken as an integer, which
    build_schema cannot know (a custom scalar accepts any literal)."""
    built = graphql.build_schema(graphql_sdl())
    long = built.type_map["Long"]
    assert isinstance(long, graphql.GraphQLScalarType)
    long.parse_literal = _long_literal  # type: ignore[method-assign,assignment]
    long.parse_value = _long_value  # type: ignore[method-assign]
    return built


def graphql_errors(query: str, variables: dict[str, Any] | None = None) -> list[str]:
    document = graphql.parse(query)
    errors = [e.message for e in graphql.validate(schema(), document)]
    if errors:
        return errors
    for operation in document.definitions:
        assert isinstance(operation, graphql.OperationDefinitionNode)
        coerced = graphql.execution.values.get_variable_values(
            schema(), operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            errors += [e.message for e in coerced]
    return errors


def test_graphql_documents_are_checked_for_real() -> None:
    assert graphql_errors("mutation { createInventoryEntry(draft: {sku: 1}) { version } }")
    assert graphql_errors(
        'mutation { updateInventoryEntry(id: "e", version: "7", actions: []) { version } }'
    )
    assert graphql_errors("query { products(skus: [1]) { total } }")
    query = inventory_reads.PRODUCTS_BY_SKU
    assert graphql_errors(query, {"skus": ["A"], "limit": "500"})


def test_the_inventory_mutations_are_valid() -> None:
    batch: list[Write] = [
        Update("SKU-1", "entry-1", 7, 12),
        Create("SKU-2", 0),
        *(Create(sku, 3) for sku in AWKWARD_SKUS),
        *(Update(sku, f"id-{i}", 2**40, 2**33) for i, sku in enumerate(AWKWARD_SKUS)),
    ]
    document, variables = mutation_document(batch)
    assert graphql_errors(document, variables) == []
    # every value is a variable: the document holds no literal at all
    operation = graphql.parse(document).definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    arguments = [
        argument.value
        for field in operation.selection_set.selections
        if isinstance(field, graphql.FieldNode)
        for argument in field.arguments or ()
    ]
    assert arguments and all(isinstance(value, graphql.VariableNode) for value in arguments)
    assert [v["sku"] for k, v in variables.items() if k.startswith("d")] == [
        w.sku for w in batch if isinstance(w, Create)
    ]
    assert [v for k, v in variables.items() if k.startswith("id")] == [
        w.entry_id for w in batch if isinstance(w, Update)
    ]
    # a wrong type in a variable is refused by the schema, as the real API would
    assert graphql_errors(document, {**variables, "id0": 7})
    assert graphql_errors(document, {k: v for k, v in variables.items() if k != "d1"})


def test_the_entry_look_up_is_valid() -> None:
    where = 'supplyChannel is not defined and sku in ("ümlaut", "q\\"1")'
    variables = {"where": where, "limit": inventory_reads.PAGE_LIMIT}
    assert graphql_errors(inventory_reads.ENTRIES_WHERE, variables) == []


def test_the_product_look_up_is_valid() -> None:
    skus = [f"SKU-{i}" for i in range(inventory_reads.PRODUCT_BATCH)] + AWKWARD_SKUS
    variables = {"skus": skus, "limit": inventory_reads.PRODUCT_BATCH}
    assert graphql_errors(inventory_reads.PRODUCTS_BY_SKU, variables) == []


def _graphql_constants() -> Iterator[tuple[str, str]]:
    """Every string constant under job/ that is a GraphQL operation."""
    for path in sorted((ROOT / "job").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                # a whole operation (not a piece of one, like mutation_document's "mutation {")
                if re.fullmatch(r"(query|mutation)\b[^{]*\{.*\}", text, re.DOTALL):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", text


def test_every_graphql_constant_in_the_job_is_valid() -> None:
    constants = list(_graphql_constants())
    assert constants, "no GraphQL constant found under job/: is the scan still right?"
    variables = {"skus": ["A"], "limit": 1, "where": 'sku = "A"'}
    for where, text in constants:
        assert graphql_errors(text, variables) == [], where


# --- REST: capturing what the client sends ------------------------------------------------------


class Recorder:
    """A commercetools stand-in that answers what the client asks, and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.subscription: dict[str, Any] | None = None
        self.channel: dict[str, Any] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(AUTH).host:
            return httpx.Response(200, json={"access_token": "t", "expires_in": 172800})
        self.requests.append(request)
        path = request.url.path.removeprefix(f"/{PROJECT}")
        body = json.loads(request.content) if request.content else None
        answer = self._answer(request.method, path, body)
        if answer is None:
            error = {"code": "ResourceNotFound", "message": "not found"}
            return httpx.Response(404, json={"statusCode": 404, "errors": [error]})
        return httpx.Response(200, json=answer)

    def _answer(self, method: str, path: str, body: Any) -> Any:
        if path.startswith("/orders/"):
            return {"id": path.rsplit("/", 1)[-1], "version": 1}
        if path.startswith("/channels"):
            if method == "POST":
                self.channel = {**body, "id": "channel-1", "version": 1}
            return self.channel
        if path == "/inventory" and method == "GET":
            return {"results": []}
        if path.startswith("/inventory"):
            return {"id": "entry-1", "version": 2, "sku": "SKU", "quantityOnStock": 1}
        if path == "/graphql":
            return {"data": {f"w{i}": {"version": 2} for i in range(100)} | {"products": None}}
        if path == "/custom-objects" and method == "POST":
            stored = {**body, "version": body.get("version", 0) + 1, "id": "co-1"}
            self.objects[(body["container"], body["key"])] = stored
            return stored
        if path.startswith("/custom-objects/"):
            parts = path.split("/")[2:]
            if len(parts) == 1:
                return {"results": list(self.objects.values())}
            return self.objects.get((parts[0], parts[1]))
        if path.startswith("/subscriptions"):
            if method == "GET":
                return self.subscription
            if method == "DELETE":
                return self.subscription
            if path == "/subscriptions":
                self.subscription = {**body, "id": "sub-1", "version": 1}
            elif self.subscription is not None:
                self.subscription["version"] += 1
            return self.subscription
        raise AssertionError(f"no answer for {method} {path}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def ctp(recorder: Recorder) -> CommercetoolsClient:
    settings = CommercetoolsSettings(
        client_id="contract-client",
        client_secret="contract-secret-0123456789",
        project_key=PROJECT,
        api_url=API,
        auth_url=AUTH,
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return CommercetoolsClient(settings, http=http, retry=RetryPolicy(max_attempts=1))


async def _drive_everything(ctp: CommercetoolsClient, recorder: Recorder) -> None:
    """The product's own calls: the order read, the inventory reads and both writers, the
    order records, the cursor and the lease (custom objects), and post-deploy and
    pre-undeploy in every format and destination."""
    await ctp.get_order("order-1", ORDER_EXPANSIONS)
    await inventory_reads.read_channel_less_entries(ctp)
    await inventory_reads.fetch_channel_less(ctp, ["SKU-1", 'SKU-"2"'])
    await inventory_reads.product_skus(ctp, ["SKU-1", "SKU-2"], concurrency=1)
    writes: list[Write] = [Update("SKU-1", "entry-1", 3, 5), Create("SKU-2", 7)]
    await RestWriter(ctp, 1).write(writes, lambda *_: None, lambda: False)
    await GraphQLWriter(ctp, 1, 10).write(writes, lambda *_: None, lambda: False)

    records = OrderRecords(ctp, "newstore-connector-orders")
    await records.write_success("order-1", RecordStatus.INJECTED, {"newstore_order_id": "n-1"})
    await records.add_attempt("order-2", lambda _, n: {"status": RecordStatus.FAILED, "n": n})
    await records.get("order-1")
    await records.failed()
    cursors = CursorStore(ctp, "newstore-connector-inventory")
    await cursors.save(CursorState(123, datetime(2024, 6, 1, tzinfo=UTC), 0))
    await cursors.load()
    lease = Lease(ctp, "newstore-connector-inventory", "lease", duration_s=60)
    assert await lease.acquire()

    gcp = {"CONNECT_GCP_TOPIC_NAME": "orders", "CONNECT_GCP_PROJECT_ID": "project"}
    aws = {"CONNECT_AWS_TOPIC_ARN": "arn:aws:sns:us-east-2:123456789012:orders"}
    assert (await deploy.post_deploy(ctp, gcp)).channel == "created"
    assert (await deploy.post_deploy(ctp, aws)).action == "updated"
    paid = {**aws, "ORDER_INJECT_WHEN": "paid"}
    assert (await deploy.post_deploy(ctp, paid)).action == "updated"
    # the success onto the order: the channel's id, then updateSyncInfo
    sync = OrderSync(ctp)
    assert await sync.channel_id() == "channel-1"
    await sync.write("order-1", 1, "newstore-order-1")
    await sync.injected_as("order-1")
    assert (await deploy.pre_undeploy(ctp)).action == "deleted"
    recorder.subscription = None
    cloud_events = {**gcp, "SUBSCRIPTION_FORMAT": "CloudEvents"}
    assert (await deploy.post_deploy(ctp, cloud_events)).action == "created"
    await ctp.aclose()


@pytest.fixture
async def captured(ctp: CommercetoolsClient, recorder: Recorder) -> list[httpx.Request]:
    await _drive_everything(ctp, recorder)
    return recorder.requests


# --- REST: the OpenAPI document as JSON Schema ----------------------------------------------------

BASE = "urn:commercetools:openapi"


@cache
def _document() -> dict[str, Any]:
    """The OpenAPI document, with its schemas prepared for jsonschema:
    - a base with a `discriminator` (e.g. `InventoryEntryUpdateAction`) dispatches on its
      mapping; its subtypes' `allOf` refer to a copy without the discriminator, so that
      validating a subtype does not dispatch again;
    - the concrete schemas refuse properties they do not define (`unevaluatedProperties`,
      which sees through `allOf`), so that a misspelt optional field is caught;
    - a required property named `//` is how the RAML-to-OpenAPI conversion writes RAML's
      pattern property `//` ("any name"): no property by that name is required; a name
      `/<regex>/` (LocalizedString's locale keys) makes every property name match it;
    - `GraphQLVariablesMap`'s values are GraphQL values of their declared types (lists,
      numbers...), not only the strings its `additionalProperties` says (the same conversion):
      they are checked against the GraphQL schema instead (`graphql_errors`)."""
    document = copy.deepcopy(openapi())
    schemas: dict[str, Any] = document["components"]["schemas"]
    for spec in schemas.values():
        # RAML pattern properties, written as required names `/<regex>/` (`//`: any name;
        # LocalizedString's `/^[a-z]{2}(-[A-Z]{2})?$/`: a locale): names must match them.
        patterns = [n for n in spec.get("required", ()) if len(n) > 1 and n[0] == n[-1] == "/"]
        if patterns:
            spec["required"] = [name for name in spec["required"] if name not in patterns]
            if regexes := [p[1:-1] for p in patterns if p != "//"]:
                spec["propertyNames"] = {"pattern": regexes[0]}
    schemas["GraphQLVariablesMap"]["additionalProperties"] = True
    bases = [name for name, s in schemas.items() if "discriminator" in s]
    for name in bases:
        schemas[f"{name}__base"] = {k: v for k, v in schemas[name].items() if k != "discriminator"}
    prefix = "#/components/schemas/"
    members = set()
    for spec in schemas.values():
        for part in spec.get("allOf", []):
            if "$ref" in part:
                target = part["$ref"].removeprefix(prefix)
                members.add(target)
                if target in bases:
                    part["$ref"] = f"{prefix}{target}__base"
    for name, spec in schemas.items():
        closed = "properties" in spec or "allOf" in spec
        open_ = "additionalProperties" in spec or "discriminator" in spec
        if closed and not open_ and name not in members and not name.endswith("__base"):
            spec["unevaluatedProperties"] = False
    return document


def _discriminator(validator: Any, spec: dict[str, Any], instance: Any, _: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    value = instance.get(spec["propertyName"])
    if value is None:
        return  # `required` says so
    target = spec.get("mapping", {}).get(value)
    if target is None:
        known = sorted(spec.get("mapping", {}))
        yield ValidationError(f"{spec['propertyName']} {value!r} is none of {known}")
        return
    yield from validator.descend(instance, {"$ref": f"{BASE}{target}"})


@cache
def _validator_class() -> Any:
    return jsonschema.validators.extend(Draft202012Validator, {"discriminator": _discriminator})


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(BASE, resource)


def _absolute(schema: Any) -> Any:
    """A schema from inside the document (a parameter's, a request body's), with its refs
    pointing into the document."""
    if isinstance(schema, dict):
        return {
            k: f"{BASE}{v}" if k == "$ref" and v.startswith("#") else _absolute(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute(v) for v in schema]
    return schema


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    schema = _absolute(schema)
    validator = _validator_class()(schema, registry=_registry())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(pattern.replace("(?P<ID>", "(?P<id_>"))


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(template, path item, operation) of a request path like `/shop/inventory/entry-1`: the
    matching template with the most literal text wins (`key={key}` over `{ID}`)."""
    paths: dict[str, Any] = _document()["paths"]
    matches = [t for t in paths if _template_regex(t).fullmatch(path)]
    assert matches, f"{method} {path}: no such path in the OpenAPI document"
    template = max(matches, key=lambda t: len(re.sub(r"\{[^}]+\}", "", t)))
    item = paths[template]
    assert method.lower() in item, f"{method} {template}: no such operation"
    return template, item, item[method.lower()]


def _parameter_value(raw: list[str], spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if kind == "array":
        return [_parameter_value([value], spec["items"]) for value in raw]
    assert len(raw) == 1, f"repeated, but not an array: {raw}"
    value = raw[0]
    if kind == "number":
        return float(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        assert value in ("true", "false"), value
        return value == "true"
    return value


def request_errors(request: httpx.Request) -> list[str]:
    method, path = request.method, request.url.path
    template, item, operation = operation_for(method, path)
    label = f"{method} {template}"
    declared = {
        p["name"]: p for p in [*item.get("parameters", []), *operation.get("parameters", [])]
    }
    errors: list[str] = []
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.url.query.decode(), keep_blank_values=True):
        query.setdefault(name, []).append(value)
    for name, values in query.items():
        parameter = declared.get(name)
        if parameter is None or parameter["in"] != "query":
            errors.append(f"{label}: query parameter {name!r} is not declared")
            continue
        value = _parameter_value(values, parameter["schema"])
        errors += [f"{label} ?{name}: {e}" for e in schema_errors(parameter["schema"], value)]
    for name, parameter in declared.items():
        if parameter["in"] == "query" and parameter.get("required") and name not in query:
            errors.append(f"{label}: required query parameter {name!r} is missing")
    body = operation.get("requestBody")
    if request.content:
        assert body is not None, f"{label}: a body where the operation takes none"
        content = request.headers["content-type"].split(";")[0]
        assert content in body["content"], f"{label}: {content} is not accepted"
        instance = json.loads(request.content)
        schema_ref = body["content"][content]["schema"]
        errors += [f"{label} body {e}" for e in schema_errors(schema_ref, instance)]
    elif body is not None and body.get("required"):
        errors.append(f"{label}: the body is missing")
    return errors


# --- REST: the checks ---------------------------------------------------------------------------


def test_the_product_sends_every_kind_of_request(captured: list[httpx.Request]) -> None:
    seen = {f"{r.method} {operation_for(r.method, r.url.path)[0]}" for r in captured}
    assert seen == {
        "GET /{projectKey}/orders/{ID}",
        "POST /{projectKey}/orders/{ID}",
        "GET /{projectKey}/channels/key={key}",
        "POST /{projectKey}/channels",
        "GET /{projectKey}/inventory",
        "POST /{projectKey}/inventory",
        "POST /{projectKey}/inventory/{ID}",
        "POST /{projectKey}/graphql",
        "GET /{projectKey}/custom-objects/{container}/{key}",
        "GET /{projectKey}/custom-objects/{container}",
        "POST /{projectKey}/custom-objects",
        "GET /{projectKey}/subscriptions/key={key}",
        "POST /{projectKey}/subscriptions",
        "POST /{projectKey}/subscriptions/key={key}",
        "DELETE /{projectKey}/subscriptions/key={key}",
    }


def test_every_request_is_a_published_operation(captured: list[httpx.Request]) -> None:
    errors = [error for request in captured for error in request_errors(request)]
    assert errors == []


def test_every_graphql_request_is_valid_for_the_schema(captured: list[httpx.Request]) -> None:
    bodies = [json.loads(r.content) for r in captured if r.url.path.endswith("/graphql")]
    assert len(bodies) == 3  # the entry look-up, the product look-up, the mutations
    for body in bodies:
        assert graphql_errors(body["query"], body.get("variables")) == []


def _request(method: str, path: str, body: Any = None, **params: Any) -> httpx.Request:
    url = httpx.URL(f"{API}/{PROJECT}{path}", params=params or None)
    return httpx.Request(method, url, json=body)


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (_request("POST", "/inventory", {"sku": "A"}), "'quantityOnStock' is a required"),
        (_request("POST", "/inventory", {"sku": "A", "quantityOnStock": 1.5}), "is not of type"),
        (
            _request("POST", "/inventory", {"sku": "A", "quantityOnStock": 1, "quantity": 1}),
            "Unevaluated properties are not allowed",
        ),
        (
            _request("POST", "/inventory/e", {"version": 1, "actions": [{"action": "setQty"}]}),
            "'setQty' is none of",
        ),
        (
            _request(
                "POST", "/inventory/e", {"version": 1, "actions": [{"action": "changeQuantity"}]}
            ),
            "'quantity' is a required",
        ),
        (_request("GET", "/inventory", limit="x500"), "could not convert"),
        (_request("GET", "/inventory", pageSize=5), "'pageSize' is not declared"),
        (_request("DELETE", "/subscriptions/key=k"), "'version' is missing"),
        (
            _request("POST", "/custom-objects", {"container": "c", "value": 1}),
            "'key' is a required",
        ),
        (
            _request("POST", "/subscriptions", {"destination": {"type": "PubSub"}}),
            "'PubSub' is none of",
        ),
        (_request("GET", "/inventories"), "no such path"),
        (_request("PUT", "/inventory/e"), "no such operation"),
    ],
)
def test_the_rest_check_refuses_what_the_spec_forbids(
    request_: httpx.Request, fragment: str
) -> None:
    try:
        errors = request_errors(request_)
    except (AssertionError, ValueError) as error:
        errors = [str(error)]
    assert any(fragment in error for error in errors), errors


def test_the_rest_check_accepts_a_published_request() -> None:
    body = {"version": 3, "actions": [{"action": "changeQuantity", "quantity": 5}]}
    assert request_errors(_request("POST", "/inventory/entry-1", body)) == []
