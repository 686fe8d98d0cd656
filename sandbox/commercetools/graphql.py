"""The GraphQL subset of the commercetools emulator: the schema (SDL), its resolvers over the
emulator state, and the query-complexity limit.

A small slice of the real schema: bulk product lookup by SKU and the inventory mutations
(aliased mutations in one request run serially, as graphql-core executes mutations), with a
query-complexity limit like the real endpoint's. CtErrors become GraphQL errors with the same
code. (`import graphql` below is the graphql-core library: imports are absolute.)
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import graphql

from sandbox.commercetools.common import Json, json_loads
from sandbox.commercetools.errors import CtError, invalid_input, invalid_json
from sandbox.commercetools.predicates import parse_predicate
from sandbox.commercetools.state import CommercetoolsEmulator
from sandbox.commercetools.store import MAX_LIMIT, MAX_OFFSET, Query, parse_sort

GRAPHQL_SDL = """
scalar Long
scalar DateTime

type Query {
  products(where: String, sort: [String!], limit: Int, offset: Int, skus: [String!]):
    ProductQueryResult!
  inventoryEntries(where: String, sort: [String!], limit: Int, offset: Int):
    InventoryEntryQueryResult!
  inventoryEntry(id: String, key: String): InventoryEntry
}

type Mutation {
  createInventoryEntry(draft: InventoryEntryDraft!): InventoryEntry
  updateInventoryEntry(id: String, key: String, version: Long!,
    actions: [InventoryEntryUpdateAction!]!): InventoryEntry
  deleteInventoryEntry(id: String, key: String, version: Long!): InventoryEntry
  createOrUpdateCustomObject(draft: CustomObjectDraft!): CustomObject
}

input CustomObjectDraft {
  key: String!
  container: String!
  value: String!
  version: Long
}

type CustomObject {
  id: String!
  version: Long!
  container: String!
  key: String!
}

type ProductQueryResult {
  offset: Int!
  count: Int!
  total: Long!
  exists: Boolean!
  results: [Product!]!
}

type Product {
  id: String!
  key: String
  version: Long!
  createdAt: DateTime!
  lastModifiedAt: DateTime!
  skus: [String!]!
  masterData: ProductCatalogData!
}

type ProductCatalogData {
  current: ProductData
  staged: ProductData
  published: Boolean!
  hasStagedChanges: Boolean!
}

type ProductData {
  masterVariant: ProductVariant!
  variants: [ProductVariant!]!
  allVariants: [ProductVariant!]!
  skus: [String!]!
}

type ProductVariant {
  id: Int!
  key: String
  sku: String
}

type InventoryEntryQueryResult {
  offset: Int!
  count: Int!
  total: Long!
  exists: Boolean!
  results: [InventoryEntry!]!
}

type Reference {
  typeId: String!
  id: String!
}

type InventoryEntry {
  id: String!
  version: Long!
  key: String
  sku: String!
  supplyChannelRef: Reference
  quantityOnStock: Long!
  availableQuantity: Long!
  restockableInDays: Int
  expectedDelivery: DateTime
  createdAt: DateTime!
  lastModifiedAt: DateTime!
}

input ResourceIdentifierInput {
  typeId: String
  id: String
  key: String
}

input InventoryEntryDraft {
  sku: String!
  quantityOnStock: Long
  restockableInDays: Int
  expectedDelivery: DateTime
  supplyChannel: ResourceIdentifierInput
  key: String
}

input AddInventoryEntryQuantity { quantity: Long! }
input ChangeInventoryEntryQuantity { quantity: Long! }
input RemoveInventoryEntryQuantity { quantity: Long! }
input SetInventoryEntryRestockableInDays { restockableInDays: Int }
input SetInventoryEntryExpectedDelivery { expectedDelivery: DateTime }
input SetInventoryEntrySupplyChannel { supplyChannel: ResourceIdentifierInput }

input InventoryEntryUpdateAction {
  addQuantity: AddInventoryEntryQuantity
  changeQuantity: ChangeInventoryEntryQuantity
  removeQuantity: RemoveInventoryEntryQuantity
  setRestockableInDays: SetInventoryEntryRestockableInDays
  setExpectedDelivery: SetInventoryEntryExpectedDelivery
  setSupplyChannel: SetInventoryEntrySupplyChannel
}
"""

# Every selected field costs 1, times the page size of the list fields above it.
GRAPHQL_COMPLEXITY_LIMIT = 20_000
_PAGED_FIELDS = {"products": 20, "inventoryEntries": 20}
# Clients send a few constant documents with $variables; parsing and validating one costs
# more than executing it, so valid documents are kept by their exact text.
DOCUMENT_CACHE_SIZE = 256


class DocumentCache:
    """Parsed and validated documents by their exact text, least recently used dropped.

    Only valid documents are kept: an invalid one is parsed and validated again on every
    request, so its errors are always the ones graphql-core gives for it."""

    def __init__(self, schema: graphql.GraphQLSchema, size: int = DOCUMENT_CACHE_SIZE) -> None:
        self.schema = schema
        self.size = size
        self.parsed = 0  # documents parsed so far (a test counts the cache's hits with it)
        self._documents: OrderedDict[str, graphql.DocumentNode] = OrderedDict()

    def document(self, text: str) -> graphql.DocumentNode | list[graphql.GraphQLFormattedError]:
        """The valid document, or the GraphQL errors that refuse it."""
        document = self._documents.get(text)
        if document is not None:
            self._documents.move_to_end(text)
            return document
        self.parsed += 1
        try:
            document = graphql.parse(text)
        except graphql.GraphQLError as exc:
            return [exc.formatted]
        errors = graphql.validate(self.schema, document)
        if errors:
            return [error.formatted for error in errors]
        self._documents[text] = document
        if len(self._documents) > self.size:
            self._documents.popitem(last=False)
        return document


class GraphQLApi:
    """Resolvers over the emulator state; CtErrors become GraphQL errors with the same code."""

    def __init__(self, emu: CommercetoolsEmulator) -> None:
        self.emu = emu
        self.complexity_limit = GRAPHQL_COMPLEXITY_LIMIT
        self.schema = graphql.build_schema(GRAPHQL_SDL)
        self.documents = DocumentCache(self.schema)
        self._bind()

    def _bind(self) -> None:
        types = self.schema.type_map
        resolvers: dict[tuple[str, str], Callable[..., Any]] = {
            ("Query", "products"): self.products,
            ("Query", "inventoryEntries"): self.inventory_entries,
            ("Query", "inventoryEntry"): self.inventory_entry,
            ("Mutation", "createInventoryEntry"): self.create_inventory_entry,
            ("Mutation", "updateInventoryEntry"): self.update_inventory_entry,
            ("Mutation", "deleteInventoryEntry"): self.delete_inventory_entry,
            ("Mutation", "createOrUpdateCustomObject"): self.upsert_custom_object,
            ("Product", "skus"): lambda product, _info: _product_skus(product),
            ("ProductData", "allVariants"): lambda data, _info: _all_variants(data),
            ("ProductData", "skus"): lambda data, _info: _variant_skus(data),
            ("InventoryEntry", "supplyChannelRef"): lambda entry, _info: entry.get("supplyChannel"),
        }
        for (type_name, field_name), resolver in resolvers.items():
            object_type = types[type_name]
            assert isinstance(object_type, graphql.GraphQLObjectType)
            object_type.fields[field_name].resolve = _as_graphql_errors(resolver)

    def execute(self, body: Json) -> tuple[Json, int]:
        query = body.get("query")
        if not isinstance(query, str):
            return _graphql_failure("The request must have a 'query' string.", "InvalidInput")
        variables = body.get("variables") or {}
        document = self.documents.document(query)
        if isinstance(document, list):
            return {"errors": document}, 400
        cost = query_complexity(document, variables if isinstance(variables, dict) else {})
        if cost > self.complexity_limit:
            message = (
                f"Query complexity limit exceeded: the query has a complexity of {cost}, "
                f"the limit is {self.complexity_limit}."
            )
            return _graphql_failure(message, "QueryComplexityLimitExceeded")
        result = graphql.execute_sync(
            self.schema,
            document,
            variable_values=variables,
            operation_name=body.get("operationName"),
        )
        return dict(result.formatted), 200

    # ---- resolvers

    def products(self, _root: Any, _info: Any, **args: Any) -> Json:
        query = _graphql_query(args)
        candidates = None
        if args.get("skus") is not None:
            candidates = set()
            for sku in args["skus"]:
                candidates |= self.emu.product_skus.get(sku, set())
        return _graphql_page(self.emu.query("product", query, candidates))

    def inventory_entries(self, _root: Any, _info: Any, **args: Any) -> Json:
        return _graphql_page(self.emu.query("inventory-entry", _graphql_query(args)))

    def inventory_entry(self, _root: Any, _info: Any, **args: Any) -> Json | None:
        coll = self.emu.collections["inventory-entry"]
        if args.get("id") is not None:
            return coll.get(args["id"])
        return coll.get_by_key(args["key"]) if args.get("key") is not None else None

    def create_inventory_entry(self, _root: Any, _info: Any, draft: Json) -> Json:
        return self.emu.create_inventory(dict(draft))

    def update_inventory_entry(self, _root: Any, _info: Any, **args: Any) -> Json:
        entry = self._entry(args)
        actions = [_rest_action(action) for action in args["actions"]]
        body = {"version": args["version"], "actions": actions}
        return self.emu.update_inventory(entry["id"], body)

    def delete_inventory_entry(self, _root: Any, _info: Any, **args: Any) -> Json:
        return self.emu.delete_inventory(self._entry(args)["id"], args["version"])

    def upsert_custom_object(self, _root: Any, _info: Any, draft: Json) -> Json:
        """The value comes as escaped JSON (the schema's `CustomObjectDraft.value`)."""
        try:
            value = json_loads(draft["value"])
        except ValueError:
            raise invalid_json("value: escaped JSON expected") from None
        body = {"container": draft["container"], "key": draft["key"], "value": value}
        if draft.get("version") is not None:
            body["version"] = draft["version"]
        return self.emu.upsert_custom_object(body)[0]

    def _entry(self, args: Json) -> Json:
        if args.get("id") is not None:
            return self.emu.get("inventory-entry", args["id"])
        if args.get("key") is not None:
            return self.emu.get_by_key("inventory-entry", args["key"])
        raise invalid_input("Either 'id' or 'key' must be given.")


def _as_graphql_errors(resolver: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(resolver)
    def resolve(*args: Any, **kwargs: Any) -> Any:
        try:
            return resolver(*args, **kwargs)
        except CtError as exc:
            raise graphql.GraphQLError(
                exc.message, extensions={"code": exc.code, **exc.fields}
            ) from None

    return resolve


def _graphql_failure(message: str, code: str) -> tuple[Json, int]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}, 400


def _graphql_query(args: Json) -> Query:
    limit = args.get("limit")
    limit = 20 if limit is None else limit
    offset = args.get("offset") or 0
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_input(f"The limit must be between 1 and {MAX_LIMIT}, but was {limit}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise invalid_input(f"The offset must be between 0 and {MAX_OFFSET}, but was {offset}.")
    where = args.get("where")
    return Query(
        predicate=parse_predicate(where) if where else None,
        sort=[parse_sort(text) for text in args.get("sort") or []],
        limit=limit,
        offset=offset,
        with_total=True,
        expand=[],
    )


def _graphql_page(page: Json) -> Json:
    return {**page, "exists": page["count"] > 0 or page.get("total", 0) > 0}


def _all_variants(data: Json) -> list[Json]:
    return [data["masterVariant"], *(data.get("variants") or [])]


def _variant_skus(data: Json) -> list[str]:
    return [v["sku"] for v in _all_variants(data) if isinstance(v.get("sku"), str)]


def _product_skus(product: Json) -> list[str]:
    current = (product.get("masterData") or {}).get("current")
    return _variant_skus(current) if isinstance(current, dict) else []


def _rest_action(action: Json) -> Json:
    """`{changeQuantity: {quantity: 5}}` (GraphQL) -> `{action: "changeQuantity", quantity: 5}`."""
    chosen = [(name, value) for name, value in action.items() if value is not None]
    if len(chosen) != 1:
        raise invalid_input("Each update action must set exactly one action field.")
    name, fields = chosen[0]
    return {"action": name, **fields}


def query_complexity(document: graphql.DocumentNode, variables: Json) -> int:
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, graphql.FragmentDefinitionNode)
    }
    total = 0
    for definition in document.definitions:
        if isinstance(definition, graphql.OperationDefinitionNode):
            total += _selection_cost(definition.selection_set, fragments, variables, 0)
    return total


def _selection_cost(
    selection_set: graphql.SelectionSetNode | None,
    fragments: dict[str, graphql.FragmentDefinitionNode],
    variables: Json,
    depth: int,
) -> int:
    if selection_set is None or depth > 50:  # depth guard against fragment cycles
        return 0
    cost = 0
    for selection in selection_set.selections:
        if isinstance(selection, graphql.FieldNode):
            size = _page_size(selection, variables)
            children = _selection_cost(selection.selection_set, fragments, variables, depth + 1)
            cost += 1 + size * children
        elif isinstance(selection, graphql.FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                cost += _selection_cost(fragment.selection_set, fragments, variables, depth + 1)
        elif isinstance(selection, graphql.InlineFragmentNode):
            cost += _selection_cost(selection.selection_set, fragments, variables, depth + 1)
    return cost


def _page_size(field_node: graphql.FieldNode, variables: Json) -> int:
    default = _PAGED_FIELDS.get(field_node.name.value)
    if default is None:
        return 1
    for argument in field_node.arguments or ():
        if argument.name.value == "limit":
            value = graphql.value_from_ast_untyped(argument.value, variables)
            if isinstance(value, int):
                return max(1, value)
    return default
