"""In-memory emulator of the commercetools HTTP API, as a FastAPI app.

It covers what the connector uses, with the real paths, error bodies and limits: OAuth client
credentials, orders (import, expansion), inventory, custom objects, subscriptions with Pub/Sub
delivery of `OrderCreated` (Platform and CloudEvents formats), products by SKU, and a small
GraphQL endpoint. Everything lives in one `CommercetoolsEmulator`, reachable as
`app.state.emulator`. Handlers never await between reading and writing state, so version checks
and `ConcurrentModification` behave as on the real API even under concurrent requests.

Bodies are read and written as plain JSON (no pydantic models on the hot path): the benchmark
pushes hundreds of orders per second through this on a small machine.

The modules, from the bottom up: `common` (Json, timestamps, ids), `errors`, `predicates`
(`where`), `expansion` (`expand`), `store` (collections and queries), `drafts` (checks and
defaults of request bodies), `publisher` (Pub/Sub delivery), `state` (`CommercetoolsEmulator`),
`graphql` (the GraphQL subset), `orders` (order update actions, their messages, and
channel creation) and `routes` (`create_app`). This package re-exports their
public names.
"""

from sandbox.commercetools.common import Json, new_id, now_iso
from sandbox.commercetools.drafts import MAX_UPDATE_ACTIONS, require_int, strip_nulls, typed_money
from sandbox.commercetools.errors import (
    AuthError,
    CtError,
    conflict,
    ct_error_body,
    custom_object_not_found,
    duplicate,
    invalid_input,
    invalid_json,
    not_found,
)
from sandbox.commercetools.expansion import ExpandPath, Resolver, expand, expand_all, parse_expand
from sandbox.commercetools.graphql import (
    GRAPHQL_COMPLEXITY_LIMIT,
    GRAPHQL_SDL,
    GraphQLApi,
    query_complexity,
)
from sandbox.commercetools.predicates import (
    BoolOp,
    Cmp,
    Contains,
    Defined,
    Empty,
    In,
    Nested,
    Node,
    Not,
    Predicate,
    PredicateSyntaxError,
    conjuncts,
    id_slice,
    parse_predicate,
    sku_candidates,
)
from sandbox.commercetools.publisher import Publisher
from sandbox.commercetools.routes import (
    DEFAULT_CLIENTS,
    BearerAuth,
    create_app,
    load_seed_file,
    ok,
    read_object,
    version_param,
)
from sandbox.commercetools.state import (
    MAX_SUBSCRIPTIONS,
    PAYLOAD_NOT_INCLUDED_REASON,
    RESOURCE_TYPES,
    SEED_KEYS,
    CommercetoolsEmulator,
)
from sandbox.commercetools.store import (
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TOTAL_WITH_PREDICATE,
    Collection,
    Query,
    parse_expand_params,
    parse_query,
    run_query,
)

__all__ = [
    "DEFAULT_CLIENTS",
    "GRAPHQL_COMPLEXITY_LIMIT",
    "GRAPHQL_SDL",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_SUBSCRIPTIONS",
    "MAX_TOTAL_WITH_PREDICATE",
    "MAX_UPDATE_ACTIONS",
    "PAYLOAD_NOT_INCLUDED_REASON",
    "RESOURCE_TYPES",
    "SEED_KEYS",
    "AuthError",
    "BearerAuth",
    "BoolOp",
    "Cmp",
    "Collection",
    "CommercetoolsEmulator",
    "Contains",
    "CtError",
    "Defined",
    "Empty",
    "ExpandPath",
    "GraphQLApi",
    "In",
    "Json",
    "Nested",
    "Node",
    "Not",
    "Predicate",
    "PredicateSyntaxError",
    "Publisher",
    "Query",
    "Resolver",
    "conflict",
    "conjuncts",
    "create_app",
    "ct_error_body",
    "custom_object_not_found",
    "duplicate",
    "expand",
    "expand_all",
    "id_slice",
    "invalid_input",
    "invalid_json",
    "load_seed_file",
    "new_id",
    "not_found",
    "now_iso",
    "ok",
    "parse_expand",
    "parse_expand_params",
    "parse_predicate",
    "parse_query",
    "query_complexity",
    "read_object",
    "require_int",
    "run_query",
    "sku_candidates",
    "strip_nulls",
    "typed_money",
    "version_param",
]
