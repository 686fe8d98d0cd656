"""In-memory emulator of the commercetools HTTP API, as a FastAPI app.

It covers what the connector uses, with the real paths, error bodies and limits: OAuth client
credentials, orders (import, expansion), inventory, custom objects, subscriptions with Pub/Sub
delivery of `OrderCreated` (Platform and CloudEvents formats), products by SKU, and a small
GraphQL endpoint. Everything lives in one `CommercetoolsEmulator`, reachable as
`app.state.emulator`. Handlers never await between reading and writing state, so version checks
and `ConcurrentModification` behave as on the real API even under concurrent requests.

Bodies are read and written as plain JSON (no pydantic models on the hot path): the benchmark
pushes hundreds of orders per second through this on a small machine.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import copy
import functools
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import graphql
import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.controls import SANDBOX_PREFIX, SandboxState, install_controls

Json = dict[str, Any]

DEFAULT_CLIENTS = {"sandbox-client": "sandbox-secret"}
MAX_LIMIT = 500
MAX_OFFSET = 10_000
# With a query predicate the real API stops counting `total` at the maximum offset.
MAX_TOTAL_WITH_PREDICATE = 10_000
MAX_SUBSCRIPTIONS = 50
MAX_UPDATE_ACTIONS = 500
PAYLOAD_NOT_INCLUDED_REASON = "Payload too large."


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- small helpers


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


async def read_object(request: Request) -> Json:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(data, dict):
        raise invalid_json("The request body must be a JSON object.")
    return data


def require_int(data: Json, name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise invalid_json(f"{name}: Missing required value")
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_json(f"{name}: JSON number (integer) expected")
    return value


def version_param(request: Request, *, required: bool) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        if required:
            raise invalid_input("Missing required query parameter 'version'.")
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid_input(f"Malformed parameter: version: '{raw}' is not a number.") from None


def strip_nulls(value: Any) -> Any:
    """Custom Object values do not keep fields set to null (documented)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


_FRACTION_DIGITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}


def typed_money(money: Any) -> Any:
    """Money in a draft becomes TypedMoney (`type`, `fractionDigits`) in the resource."""
    if not isinstance(money, dict) or "centAmount" not in money:
        return money
    digits = _FRACTION_DIGITS.get(str(money.get("currencyCode")), 2)
    return {"type": "centPrecision", "fractionDigits": digits, **money}


# --------------------------------------------------------------------------- query predicates
# A parser for the subset of the Query Predicate language the connector needs: comparisons,
# `in`, `is [not] defined`, `is [not] empty`, `contains`, nested `field(...)` (any element of
# an array matches), `and`, `or`, `not(...)`. Predicates are compiled to closures once.

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<>|>=|<=|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Any, ...]
    negate: bool


@dataclass(frozen=True)
class Defined:
    field: str
    negate: bool


@dataclass(frozen=True)
class Empty:
    field: str
    negate: bool


@dataclass(frozen=True)
class Contains:
    field: str
    values: tuple[Any, ...]
    mode: str  # "one", "any" or "all"


@dataclass(frozen=True)
class Nested:
    field: str
    inner: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" or "or"
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    inner: Node


Node = Cmp | In | Defined | Empty | Contains | Nested | BoolOp | Not


class PredicateSyntaxError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise PredicateSyntaxError(f"unexpected character at position {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise PredicateSyntaxError("unexpected end of predicate")
        self.pos += 1
        return token

    def word_is(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1].lower() == word

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value and token[1].lower() != value:
            raise PredicateSyntaxError(f"expected '{value}', found '{token[1]}'")

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise PredicateSyntaxError(f"unexpected '{self.peek()[1]}'")  # type: ignore[index]
        return node

    def expr(self) -> Node:
        items = [self.conjunction()]
        while self.word_is("or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def conjunction(self) -> Node:
        items = [self.unary()]
        while self.word_is("and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Node:
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        if self.word_is("not") and self.peek(1) == ("punct", "("):
            self.take()
            self.take()
            node = self.expr()
            self.expect(")")
            return Not(node)
        return self.condition()

    def condition(self) -> Node:
        kind, name = self.take()
        if kind != "word":
            raise PredicateSyntaxError(f"expected a field name, found '{name}'")
        token = self.peek()
        if token is None:
            raise PredicateSyntaxError(f"incomplete condition on '{name}'")
        if token == ("punct", "("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return Nested(name, inner)
        if token[0] == "op":
            self.take()
            op = "!=" if token[1] == "<>" else token[1]
            return Cmp(name, op, self.value())
        if self.word_is("in"):
            self.take()
            return In(name, self.value_list(), False)
        if self.word_is("not") and self.word_is("in", 1):
            self.pos += 2
            return In(name, self.value_list(), True)
        if self.word_is("is"):
            return self.is_condition(name)
        if self.word_is("contains"):
            return self.contains_condition(name)
        raise PredicateSyntaxError(f"unexpected '{token[1]}' after '{name}'")

    def is_condition(self, name: str) -> Node:
        self.take()
        negate = self.word_is("not")
        if negate:
            self.take()
        word = self.take()[1]
        if word == "defined":
            return Defined(name, negate)
        if word == "empty":
            return Empty(name, negate)
        raise PredicateSyntaxError(f"expected 'defined' or 'empty', found '{word}'")

    def contains_condition(self, name: str) -> Node:
        self.take()
        mode = "one"
        if self.word_is("any") or self.word_is("all"):
            mode = self.take()[1].lower()
            return Contains(name, self.value_list(), mode)
        return Contains(name, (self.value(),), mode)

    def value_list(self) -> tuple[Any, ...]:
        self.expect("(")
        values = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.value())
        self.expect(")")
        return tuple(values)

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and text in ("true", "false"):
            return text == "true"
        raise PredicateSyntaxError(f"expected a value, found '{text}'")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else None


def _compare(compare: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    try:
        return compare(left, right)
    except TypeError:  # e.g. a string field compared with a number
        return False


def _compile(node: Node) -> Callable[[Any], bool]:
    if isinstance(node, Cmp):
        name, value, compare = node.field, node.value, _COMPARE[node.op]

        def cmp(obj: Any) -> bool:
            found = _field(obj, name)
            if isinstance(found, list):
                return any(_compare(compare, item, value) for item in found)
            return found is not None and _compare(compare, found, value)

        return cmp
    if isinstance(node, In):
        name, values, negate = node.field, node.values, node.negate
        hashable = frozenset(values)

        def is_in(obj: Any) -> bool:
            found = _field(obj, name)
            if found is None:
                return False
            try:
                return (found in hashable) != negate
            except TypeError:  # unhashable (object or array) values match nothing
                return negate

        return is_in
    if isinstance(node, Defined):
        name, negate = node.field, node.negate
        return lambda obj: (_field(obj, name) is not None) != negate
    if isinstance(node, Empty):
        name, negate = node.field, node.negate
        return lambda obj: (not _field(obj, name)) != negate
    if isinstance(node, Contains):
        return _compile_contains(node)
    if isinstance(node, Nested):
        name, inner = node.field, _compile(node.inner)

        def nested(obj: Any) -> bool:
            found = _field(obj, name)
            if isinstance(found, list):
                return any(inner(item) for item in found)
            return found is not None and inner(found)

        return nested
    if isinstance(node, Not):
        inner_fn = _compile(node.inner)
        return lambda obj: not inner_fn(obj)
    parts = [_compile(item) for item in node.items]
    if node.op == "and":
        return lambda obj: all(part(obj) for part in parts)
    return lambda obj: any(part(obj) for part in parts)


def _compile_contains(node: Contains) -> Callable[[Any], bool]:
    name, values, mode = node.field, node.values, node.mode

    def contains(obj: Any) -> bool:
        found = _field(obj, name)
        if not isinstance(found, list):
            return False
        if mode == "all":
            return all(value in found for value in values)
        return any(value in found for value in values)

    return contains


@dataclass(frozen=True)
class Predicate:
    node: Node
    test: Callable[[Any], bool]


@functools.lru_cache(maxsize=512)
def parse_predicate(text: str) -> Predicate:
    try:
        node = _Parser(text).parse()
    except PredicateSyntaxError as exc:
        raise invalid_input(
            f"Malformed parameter: where: Syntax error while parsing 'where'. {exc}"
        ) from None
    return Predicate(node, _compile(node))


def conjuncts(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, BoolOp) and node.op == "and":
        return [part for item in node.items for part in conjuncts(item)]
    return [node]


def sku_candidates(node: Node, nested: bool) -> set[str] | None:
    """SKUs one of which any match must carry, or None when the predicate does not say.

    Lets product and inventory queries look SKUs up in an index instead of scanning. With
    `nested`, a `sku` inside `field(...)` counts too (product variants); inventory entries
    only have a top-level `sku`."""
    if isinstance(node, Cmp) and node.field == "sku" and node.op == "=":
        return {node.value} if isinstance(node.value, str) else set()
    if isinstance(node, In) and node.field == "sku" and not node.negate:
        return {value for value in node.values if isinstance(value, str)}
    if isinstance(node, Nested) and nested:
        return sku_candidates(node.inner, nested)
    if isinstance(node, BoolOp):
        found = [sku_candidates(item, nested) for item in node.items]
        if node.op == "or":
            if any(part is None for part in found):
                return None
            return set().union(*found)  # type: ignore[arg-type]
        known = [part for part in found if part is not None]
        return set.intersection(*known) if known else None
    return None


def id_slice(ids: list[str], node: Node | None) -> tuple[int, int]:
    """Index range of the sorted ids allowed by top-level `id > "x"`-style conjuncts."""
    start, stop = 0, len(ids)
    for part in conjuncts(node):
        if not (isinstance(part, Cmp) and part.field == "id" and isinstance(part.value, str)):
            continue
        if part.op == ">":
            start = max(start, bisect.bisect_right(ids, part.value))
        elif part.op == ">=":
            start = max(start, bisect.bisect_left(ids, part.value))
        elif part.op == "<":
            stop = min(stop, bisect.bisect_left(ids, part.value))
        elif part.op == "<=":
            stop = min(stop, bisect.bisect_right(ids, part.value))
        elif part.op == "=":
            start = max(start, bisect.bisect_left(ids, part.value))
            stop = min(stop, bisect.bisect_right(ids, part.value))
    return start, max(start, stop)


# --------------------------------------------------------------------------- reference expansion

_EXPAND_SEGMENT = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?:\[(?P<index>\*|\d+)\])?$")
ExpandPath = tuple[tuple[str, str | None], ...]
Resolver = Callable[[str, str], Json | None]


@functools.lru_cache(maxsize=256)
def parse_expand(path: str) -> ExpandPath:
    segments = []
    for part in path.split("."):
        match = _EXPAND_SEGMENT.match(part.strip())
        if not match:
            raise invalid_input(f"Malformed parameter: expand: '{path}' is not a valid path.")
        segments.append((match["name"], match["index"]))
    return tuple(segments)


def expand(node: Any, path: ExpandPath, resolve: Resolver) -> Any:
    """A copy of `node` where the References at `path` gain `obj`; the stored data is not
    changed (only the dicts and lists along the path are copied). Like the real API, a
    reference to a missing resource is left unexpanded."""
    if not path:
        if isinstance(node, dict) and "typeId" in node and "id" in node:
            target = resolve(node["typeId"], node["id"])
            if target is not None:
                return {**node, "obj": target}
        return node
    if not isinstance(node, dict):
        return node
    (name, index), rest = path[0], path[1:]
    child = node.get(name)
    if child is None:
        return node
    if index is None:
        new_child = expand(child, rest, resolve)
    elif not isinstance(child, list):
        return node
    elif index == "*":
        new_child = [expand(item, rest, resolve) for item in child]
    else:
        position = int(index)
        if position >= len(child):
            return node
        new_child = list(child)
        new_child[position] = expand(child[position], rest, resolve)
    return {**node, name: new_child}


def expand_all(resource: Json, paths: list[ExpandPath], resolve: Resolver) -> Json:
    for path in paths:
        resource = expand(resource, path, resolve)
    return resource


# --------------------------------------------------------------------------- storage


class Collection:
    """Resources of one type by id; the ids are kept sorted so that an id-cursor page is a
    bisect, not a scan and sort of the whole store."""

    def __init__(self, type_id: str, key_field: str | None = "key") -> None:
        self.type_id = type_id
        self.key_field = key_field
        self.items: dict[str, Json] = {}
        self.ids: list[str] = []
        self.by_key: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.items)

    def get(self, resource_id: str) -> Json | None:
        return self.items.get(resource_id)

    def get_by_key(self, key: str) -> Json | None:
        resource_id = self.by_key.get(key)
        return self.items.get(resource_id) if resource_id else None

    def put(self, resource: Json) -> None:
        resource_id = resource["id"]
        old = self.items.get(resource_id)
        if old is None:
            bisect.insort(self.ids, resource_id)
        else:
            self._unindex_key(old)
        self.items[resource_id] = resource
        self._index_key(resource)

    def put_many(self, resources: Iterable[Json]) -> None:
        """Bulk insert (seeding): one sort at the end instead of an insort per item."""
        for resource in resources:
            old = self.items.get(resource["id"])
            if old is not None:
                self._unindex_key(old)
            self.items[resource["id"]] = resource
            self._index_key(resource)
        self.ids = sorted(self.items)

    def remove(self, resource_id: str) -> Json | None:
        old = self.items.pop(resource_id, None)
        if old is not None:
            del self.ids[bisect.bisect_left(self.ids, resource_id)]
            self._unindex_key(old)
        return old

    def clear(self) -> None:
        self.items.clear()
        self.ids.clear()
        self.by_key.clear()

    def _index_key(self, resource: Json) -> None:
        key = resource.get(self.key_field) if self.key_field else None
        if isinstance(key, str):
            self.by_key[key] = resource["id"]

    def _unindex_key(self, resource: Json) -> None:
        key = resource.get(self.key_field) if self.key_field else None
        if isinstance(key, str) and self.by_key.get(key) == resource["id"]:
            del self.by_key[key]


@dataclass
class Query:
    predicate: Predicate | None
    sort: list[tuple[str, bool]]  # (field path, descending)
    limit: int
    offset: int
    with_total: bool
    expand: list[ExpandPath]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_input(f"Malformed parameter: {name}: '{raw}' is not a number.") from None


def parse_expand_params(request: Request) -> list[ExpandPath]:
    return [parse_expand(path) for path in request.query_params.getlist("expand")]


def parse_query(request: Request) -> Query:
    params = request.query_params
    limit = _int_param(request, "limit", 20)
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_input(f"The limit must be between 1 and {MAX_LIMIT}, but was {limit}.")
    offset = _int_param(request, "offset", 0)
    if not 0 <= offset <= MAX_OFFSET:
        raise invalid_input(f"The offset must be between 0 and {MAX_OFFSET}, but was {offset}.")
    wheres = [text for text in params.getlist("where") if text.strip()]
    predicate = None
    if len(wheres) == 1:
        predicate = parse_predicate(wheres[0])
    elif wheres:  # repeated `where` parameters are ANDed
        predicate = parse_predicate(" and ".join(f"({text})" for text in wheres))
    return Query(
        predicate=predicate,
        sort=[_parse_sort(text) for text in params.getlist("sort")],
        limit=limit,
        offset=offset,
        with_total=params.get("withTotal", "true").lower() != "false",
        expand=parse_expand_params(request),
    )


def _parse_sort(text: str) -> tuple[str, bool]:
    parts = text.split()
    direction = parts[1].lower() if len(parts) == 2 else ""
    if len(parts) != 2 or direction not in ("asc", "desc"):
        raise invalid_input(f"Malformed parameter: sort: '{text}' must be '<field> asc|desc'.")
    return parts[0], direction == "desc"


def _path_value(resource: Json, path: str) -> Any:
    value: Any = resource
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _sorted_ids(coll: Collection, ids: Iterable[str], sort: list[tuple[str, bool]]) -> list[str]:
    ordered = sorted(ids)
    # Stable sorts from the last key to the first give a multi-key sort with mixed directions;
    # missing values sort last, and ties keep id order.
    for path, descending in reversed(sort):
        if path == "id":
            ordered.sort(reverse=descending)
            continue
        present = [i for i in ordered if _path_value(coll.items[i], path) is not None]
        missing = [i for i in ordered if _path_value(coll.items[i], path) is None]
        try:
            present.sort(key=lambda i: _path_value(coll.items[i], path), reverse=descending)
        except TypeError:
            present.sort(key=lambda i: str(_path_value(coll.items[i], path)), reverse=descending)
        ordered = present + missing
    return ordered


def _ordered_ids(coll: Collection, query: Query, candidates: Iterable[str] | None) -> Iterator[str]:
    if candidates is not None:
        return iter(_sorted_ids(coll, candidates, query.sort))
    if query.sort and query.sort[0][0] != "id":
        return iter(_sorted_ids(coll, coll.ids, query.sort))
    ids = coll.ids
    start, stop = id_slice(ids, query.predicate.node if query.predicate else None)
    descending = bool(query.sort) and query.sort[0][1]
    positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
    return (ids[i] for i in positions)


def run_query(
    coll: Collection, query: Query, resolve: Resolver, candidates: Iterable[str] | None = None
) -> Json:
    """A PagedQueryResponse: `{limit, offset, count, total?, results}`."""
    items = coll.items
    test = query.predicate.test if query.predicate else None
    results: list[Json] = []
    seen = 0
    wanted_end = query.offset + query.limit
    for resource_id in _ordered_ids(coll, query, candidates):
        resource = items[resource_id]
        if test is not None and not test(resource):
            continue
        if seen >= query.offset and len(results) < query.limit:
            results.append(resource)
        seen += 1
        if seen >= wanted_end and (
            not query.with_total or (test is not None and seen >= MAX_TOTAL_WITH_PREDICATE)
        ):
            break
    if query.expand:
        results = [expand_all(resource, query.expand, resolve) for resource in results]
    page: Json = {"limit": query.limit, "offset": query.offset, "count": len(results)}
    if query.with_total:
        page["total"] = min(seen, MAX_TOTAL_WITH_PREDICATE) if test is not None else seen
    page["results"] = results
    return page


# --------------------------------------------------------------------------- delivery


class Publisher:
    """Delivers notifications to Google Cloud Pub/Sub destinations, off the request path.

    With no `pubsub_url` the messages are only kept in `published` (for tests); otherwise each
    is POSTed to `{pubsub_url}/v1/projects/{projectId}/topics/{topic}:publish` in a background
    task, retried a few times like the real platform retries a failing destination."""

    def __init__(
        self,
        pubsub_url: str | None,
        timeout_s: float = 5.0,
        max_in_flight: int = 64,
        attempts: int = 5,
    ) -> None:
        self.pubsub_url = pubsub_url.rstrip("/") if pubsub_url else None
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.attempts = attempts
        self.published: deque[Json] = deque(maxlen=100_000)
        self.delivered = 0
        self.failed = 0
        self.not_delivered = 0  # destinations the sandbox stores but does not deliver to
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def publish(self, destination: Json, payload: Json) -> None:
        if destination.get("type") != "GoogleCloudPubSub":
            self.not_delivered += 1
            return
        record: Json = {
            "projectId": destination.get("projectId"),
            "topic": destination.get("topic"),
            "data": payload,
            "attributes": {},
            "publishedAt": now_iso(),
        }
        if self.pubsub_url is None:
            record["status"] = "stored"
            self.published.append(record)
            return
        task = asyncio.get_running_loop().create_task(self._deliver(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, record: Json) -> None:
        url = (
            f"{self.pubsub_url}/v1/projects/{record['projectId']}/topics/{record['topic']}:publish"
        )
        data = json.dumps(record["data"], separators=(",", ":")).encode()
        body = {"messages": [{"data": base64.b64encode(data).decode(), "attributes": {}}]}
        client, slots = self._client_for_loop()
        async with slots:
            for attempt in range(self.attempts):
                if record.get("permanent"):
                    break
                if attempt:
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                if await self._post(client, url, body, record):
                    self.delivered += 1
                    self.published.append(record)
                    return
        record["status"] = "failed"
        self.failed += 1
        self.published.append(record)

    @staticmethod
    async def _post(client: httpx.AsyncClient, url: str, body: Json, record: Json) -> bool:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            record["lastError"] = repr(exc)
            return False
        if response.status_code >= 300:
            record["lastError"] = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                record["permanent"] = True  # e.g. a missing topic: retrying cannot help
            return False
        record["status"] = "delivered"
        try:
            record["messageIds"] = response.json().get("messageIds", [])
        except ValueError:
            record["messageIds"] = []
        return True

    def _client_for_loop(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        # Tests may run the app on several event loops; a client belongs to one loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._slots is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            self._slots = asyncio.Semaphore(self.max_in_flight)
            self._loop = loop
        return self._client, self._slots

    async def drain(self) -> None:
        """Wait for the deliveries scheduled so far (not for those scheduled meanwhile, so that
        it returns under a continuous load too)."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    def clear(self) -> None:
        self.published.clear()
        self.delivered = self.failed = self.not_delivered = 0


# --------------------------------------------------------------------------- emulator state

# (typeId, URL path segment, has a `key` lookup)
RESOURCE_TYPES: tuple[tuple[str, str, bool], ...] = (
    ("product", "products", True),
    ("shipping-method", "shipping-methods", True),
    ("payment", "payments", True),
    ("cart-discount", "cart-discounts", True),
    ("discount-code", "discount-codes", True),
    ("channel", "channels", True),
    ("order", "orders", False),
    ("inventory-entry", "inventory", True),
    ("subscription", "subscriptions", True),
    ("key-value-document", "custom-objects", False),
    ("message", "messages", False),
)

SEED_KEYS: dict[str, str] = {
    "products": "product",
    "shippingMethods": "shipping-method",
    "payments": "payment",
    "cartDiscounts": "cart-discount",
    "discountCodes": "discount-code",
    "channels": "channel",
}

_ORDER_LIST_DEFAULTS = (
    "lineItems",
    "customLineItems",
    "shipping",
    "syncInfo",
    "returnInfo",
    "refusedGifts",
    "discountCodes",
    "directDiscounts",
    "itemShippingAddresses",
)
_ORDER_VALUE_DEFAULTS: dict[str, Any] = {
    "orderState": "Open",
    "origin": "Customer",
    "shippingMode": "Single",
    "taxMode": "Platform",
    "taxRoundingMode": "HalfEven",
    "taxCalculationMode": "LineItemLevel",
    "inventoryMode": "None",
}
_LINE_ITEM_LIST_DEFAULTS = ("discountedPricePerQuantity", "state", "perMethodTaxRate")
_PRODUCT_TOP_LEVEL = (
    "id",
    "version",
    "key",
    "createdAt",
    "lastModifiedAt",
    "productType",
    "taxCategory",
    "state",
    "priceMode",
    "reviewRatingStatistics",
)
_KEY_RE = re.compile(r"^[-_~.a-zA-Z0-9]+$")
_SUBSCRIPTION_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{2,256}$")
_DESTINATION_FIELDS: dict[str, tuple[str, ...]] = {
    "GoogleCloudPubSub": ("projectId", "topic"),
    "SNS": ("topicArn",),
    "SQS": ("queueUrl", "region"),
    "EventBridge": ("region", "accountId"),
    "AzureServiceBus": ("connectionString",),
    "AzureEventGrid": ("uri", "accessKey"),
    "ConfluentCloud": ("bootstrapServer", "apiKey", "apiSecret", "acks", "topic"),
    "IronMQ": ("uri",),
}


class CommercetoolsEmulator:
    """All state of one emulated project, and the operations the routes call."""

    def __init__(
        self,
        project_key: str,
        clients: dict[str, str],
        token_ttl_s: int,
        pubsub_url: str | None,
    ) -> None:
        self.project_key = project_key
        self.clients = dict(clients)
        self.token_ttl_s = token_ttl_s
        self.clock: Callable[[], float] = time.monotonic
        self.tokens: dict[str, tuple[float, str, str]] = {}  # token -> (expiry, scope, client)
        self.collections = {
            type_id: Collection(type_id, "key" if keyed else None)
            for type_id, _, keyed in RESOURCE_TYPES
        }
        self.product_skus: dict[str, set[str]] = {}
        self.inventory_skus: dict[str, set[str]] = {}
        self.inventory_slots: dict[tuple[str, str | None], str] = {}
        self.reserved: dict[str, int] = {}
        self.order_numbers: dict[str, str] = {}
        self.custom_objects: dict[tuple[str, str], str] = {}
        self.containers: dict[str, set[str]] = {}
        self.payload_not_included = False
        self.publisher = Publisher(pubsub_url)
        self.sandbox = SandboxState()
        self.graphql: GraphQLApi | None = None  # set when the app's routes are built

    # ---- auth

    def issue_token(self, authorization: str | None, form: dict[str, str]) -> Json:
        client_id, secret = self._client_credentials(authorization, form)
        if client_id is None or self.clients.get(client_id) != secret:
            raise AuthError(
                401,
                "invalid_client",
                "Please provide valid client credentials using HTTP Basic Authentication.",
            )
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            raise AuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        scope = form.get("scope") or f"manage_project:{self.project_key}"
        for item in scope.split():
            name, _, project = item.partition(":")
            if not name or project.split(":")[0] != self.project_key:
                raise AuthError(400, "invalid_scope", f"Invalid scope: {item}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (self.clock() + self.token_ttl_s, scope, client_id)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl_s,
            "scope": scope,
        }

    @staticmethod
    def _client_credentials(
        authorization: str | None, form: dict[str, str]
    ) -> tuple[str | None, str | None]:
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            client_id, sep, secret = decoded.partition(":")
            return (client_id, secret) if sep else (None, None)
        return form.get("client_id"), form.get("client_secret")

    def authorize(self, authorization: str | None) -> None:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise AuthError(401, "invalid_token", "Missing bearer token.")
        entry = self.tokens.get(authorization[7:].strip())
        if entry is None or entry[0] <= self.clock():
            raise AuthError(401, "invalid_token", "invalid_token")

    def expire_tokens(self) -> int:
        for token, (_, scope, client) in list(self.tokens.items()):
            self.tokens[token] = (0.0, scope, client)
        return len(self.tokens)

    # ---- generic reads

    def resolve(self, type_id: str, resource_id: str) -> Json | None:
        coll = self.collections.get(type_id)
        return coll.get(resource_id) if coll is not None else None

    def get(self, type_id: str, resource_id: str) -> Json:
        resource = self.collections[type_id].get(resource_id)
        if resource is None:
            raise not_found(resource_id)
        return resource

    def get_by_key(self, type_id: str, key: str) -> Json:
        resource = self.collections[type_id].get_by_key(key)
        if resource is None:
            raise not_found(key, by="key")
        return resource

    def query(self, type_id: str, query: Query, candidates: Iterable[str] | None = None) -> Json:
        coll = self.collections[type_id]
        if candidates is None and query.predicate is not None:
            candidates = self._sku_index_candidates(type_id, query.predicate.node)
        return run_query(coll, query, self.resolve, candidates)

    def _sku_index_candidates(self, type_id: str, node: Node) -> set[str] | None:
        index = {"product": self.product_skus, "inventory-entry": self.inventory_skus}.get(type_id)
        skus = sku_candidates(node, nested=type_id == "product") if index is not None else None
        if skus is None or index is None:
            return None
        found: set[str] = set()
        for sku in skus:
            found |= index.get(sku, set())
        return found

    @staticmethod
    def _stamp(resource: Json, now: str) -> Json:
        """Server-set fields first, as the real API orders them."""
        stamped = {
            "id": resource.get("id") or new_id(),
            "version": resource.get("version") or 1,
            "createdAt": resource.get("createdAt") or now,
            "lastModifiedAt": resource.get("lastModifiedAt") or now,
        }
        stamped.update((k, v) for k, v in resource.items() if k not in stamped)
        return stamped

    # ---- catalog resources (seeded only)

    def put_resource(self, type_id: str, raw: Json) -> Json:
        resource = self._stamp(raw, now_iso())
        if type_id == "product":
            resource = self._as_product(resource)
            self._index_product(resource)
        self.collections[type_id].put(resource)
        return resource

    @staticmethod
    def _as_product(product: Json) -> Json:
        """Seeds may give a ProductProjection; store it as a Product with masterData."""
        if "masterData" in product:
            return product
        projection = {k: v for k, v in product.items() if k not in _PRODUCT_TOP_LEVEL}
        projection.setdefault("masterVariant", {"id": 1})
        projection.setdefault("variants", [])
        top = {k: product[k] for k in _PRODUCT_TOP_LEVEL if k in product}
        top["masterData"] = {
            "current": projection,
            "staged": projection,
            "published": True,
            "hasStagedChanges": False,
        }
        return top

    def _index_product(self, product: Json) -> None:
        data = product.get("masterData") or {}
        for projection in (data.get("current"), data.get("staged")):
            if not isinstance(projection, dict):
                continue
            variants = [projection.get("masterVariant"), *(projection.get("variants") or [])]
            for variant in variants:
                sku = variant.get("sku") if isinstance(variant, dict) else None
                if isinstance(sku, str):
                    self.product_skus.setdefault(sku, set()).add(product["id"])

    # ---- orders

    def create_order(self, draft: Json, *, keep_id: bool, publish: bool = True) -> Json:
        if draft.get("totalPrice") is None:
            raise invalid_json("totalPrice: Missing required value")
        for name in ("lineItems", "customLineItems"):
            if name in draft and not isinstance(draft[name], list):
                raise invalid_json(f"{name}: JSON array expected")
        number = draft.get("orderNumber")
        if number is not None and number in self.order_numbers:
            raise duplicate("orderNumber", number)
        if keep_id and draft.get("id") in self.collections["order"].items:
            raise duplicate("id", draft["id"])
        now = now_iso()
        # An import draft cannot set the server-managed fields; the sandbox endpoint and seeds
        # may (stable ids make tests and demos reproducible).
        server_set = () if keep_id else ("id", "version", "lastModifiedAt")
        order = self._stamp({k: v for k, v in draft.items() if k not in server_set}, now)
        self._fill_order_defaults(order)
        self.collections["order"].put(order)
        if number is not None:
            self.order_numbers[number] = order["id"]
        if publish:
            self._order_created(order, now)
        return order

    @staticmethod
    def _fill_order_defaults(order: Json) -> None:
        order["totalPrice"] = typed_money(order["totalPrice"])
        for name in _ORDER_LIST_DEFAULTS:
            order.setdefault(name, [])
        for name, value in _ORDER_VALUE_DEFAULTS.items():
            order.setdefault(name, value)
        order.setdefault("lastMessageSequenceNumber", 1)
        for item in order["lineItems"]:
            if isinstance(item, dict):
                item.setdefault("id", new_id())
                item.setdefault("priceMode", "Platform")
                item.setdefault("lineItemMode", "Standard")
                for name in _LINE_ITEM_LIST_DEFAULTS:
                    item.setdefault(name, [])
        for item in order["customLineItems"]:
            if isinstance(item, dict):
                item.setdefault("id", new_id())

    def get_order_by_number(self, number: str) -> Json:
        order_id = self.order_numbers.get(number)
        order = self.collections["order"].get(order_id) if order_id else None
        if order is None:
            raise not_found(number, by="order number")
        return order

    # ---- messages and notifications

    def _order_created(self, order: Json, now: str) -> None:
        identifiers = {"orderNumber": order["orderNumber"]} if order.get("orderNumber") else {}
        message = {
            "id": new_id(),
            "version": 1,
            "sequenceNumber": 1,
            "resource": {"typeId": "order", "id": order["id"]},
            "resourceVersion": order["version"],
            "resourceUserProvidedIdentifiers": identifiers,
            "type": "OrderCreated",
            "order": order,
            "createdAt": now,
            "lastModifiedAt": now,
        }
        self.collections["message"].put(message)
        for subscription in self.collections["subscription"].items.values():
            if _wants_message(subscription, "order", "OrderCreated"):
                payload = self._message_payload(subscription, message, "order", "orders")
                self.publisher.publish(subscription["destination"], payload)
            if _wants_change(subscription, "order"):
                payload = self._created_payload(subscription, "order", "orders", order, identifiers)
                self.publisher.publish(subscription["destination"], payload)

    def _message_payload(
        self, subscription: Json, message: Json, type_id: str, resource_path: str
    ) -> Json:
        payload: Json = {"notificationType": "Message", "projectKey": self.project_key}
        payload.update(message)
        if self.payload_not_included:
            payload.pop(type_id, None)
            payload["payloadNotIncluded"] = {
                "reason": PAYLOAD_NOT_INCLUDED_REASON,
                "payloadType": message["type"],
            }
        if subscription["format"].get("type") != "CloudEvents":
            return payload
        resource = message.get(type_id, {})
        return {
            "specversion": "1.0",
            "id": message["id"],
            "type": f"com.commercetools.{type_id}.message.{message['type']}",
            "source": f"/{self.project_key}/{resource_path}",
            "subject": message["resource"]["id"],
            "time": resource.get("lastModifiedAt", message["createdAt"]),
            "sequence": str(message["sequenceNumber"]),
            "sequencetype": "Integer",
            "dataref": f"/{self.project_key}/messages/{message['id']}",
            "data": payload,
        }

    def _send_test_message(self, subscription: Json) -> None:
        """Sent on creation (documented) and, here, on a change of destination."""
        identifiers = {"key": subscription["key"]} if subscription.get("key") else {}
        payload = self._created_payload(
            subscription, "subscription", "subscriptions", subscription, identifiers
        )
        self.publisher.publish(subscription["destination"], payload)

    def _created_payload(
        self,
        subscription: Json,
        type_id: str,
        resource_path: str,
        resource: Json,
        identifiers: Json,
    ) -> Json:
        """A ResourceCreated change notification, in the subscription's format."""
        payload: Json = {
            "notificationType": "ResourceCreated",
            "projectKey": self.project_key,
            "resource": {"typeId": type_id, "id": resource["id"]},
            "resourceUserProvidedIdentifiers": identifiers,
            "version": resource["version"],
            "modifiedAt": resource["lastModifiedAt"],
        }
        if subscription["format"].get("type") != "CloudEvents":
            return payload
        return {
            "specversion": "1.0",
            "id": new_id(),
            "type": f"com.commercetools.{type_id}.change.ResourceCreated",
            "source": f"/{self.project_key}/{resource_path}",
            "subject": resource["id"],
            "time": resource["lastModifiedAt"],
            "data": payload,
        }

    # ---- inventory

    def create_inventory(self, draft: Json, *, seeding: bool = False) -> Json:
        entry = self._new_inventory_entry(draft, seeding=seeding)
        self._index_inventory(entry)
        self.collections["inventory-entry"].put(entry)
        return entry

    def seed_inventory(self, drafts: list[Json]) -> int:
        entries: list[Json] = []
        try:
            for draft in drafts:
                entry = self._new_inventory_entry(draft, seeding=True)
                self._index_inventory(entry)  # now, so duplicates within the seed are caught
                entries.append(entry)
        except CtError:
            for entry in entries:
                self._unindex_inventory(entry)
            raise
        self.collections["inventory-entry"].put_many(entries)
        return len(entries)

    def _new_inventory_entry(self, draft: Json, *, seeding: bool) -> Json:
        sku = draft.get("sku")
        if not isinstance(sku, str) or not sku:
            raise invalid_json("sku: Missing required value")
        quantity = require_int(draft, "quantityOnStock") or 0
        channel = self._channel_reference(draft.get("supplyChannel"), lenient=seeding)
        slot = (sku, channel["id"] if channel else None)
        if slot in self.inventory_slots:
            raise duplicate("sku", sku)
        key = draft.get("key")
        if key is not None and key in self.collections["inventory-entry"].by_key:
            raise duplicate("key", key)
        now = now_iso()
        entry = self._stamp({k: draft[k] for k in ("id", "version") if seeding and k in draft}, now)
        if key is not None:
            entry["key"] = key
        entry["sku"] = sku
        if channel is not None:
            entry["supplyChannel"] = channel
        reserved = self._seed_reserved(draft, quantity) if seeding else 0
        self.reserved[entry["id"]] = reserved
        entry["quantityOnStock"] = quantity
        entry["availableQuantity"] = quantity - reserved
        for name in ("restockableInDays", "expectedDelivery", "custom"):
            if draft.get(name) is not None:
                entry[name] = draft[name]
        return entry

    @staticmethod
    def _seed_reserved(draft: Json, quantity: int) -> int:
        if isinstance(draft.get("reserved"), int):
            return int(draft["reserved"])
        if isinstance(draft.get("availableQuantity"), int):
            return quantity - int(draft["availableQuantity"])
        return 0

    def _channel_reference(self, identifier: Any, *, lenient: bool = False) -> Json | None:
        if identifier is None:
            return None
        if not isinstance(identifier, dict):
            raise invalid_json("supplyChannel: JSON object expected")
        channels = self.collections["channel"]
        if "id" in identifier:
            channel = channels.get(identifier["id"])
            if channel is None and lenient:
                return {"typeId": "channel", "id": identifier["id"]}
        else:
            channel = channels.get_by_key(str(identifier.get("key")))
        if channel is None:
            missing = identifier.get("id") or identifier.get("key")
            raise CtError(
                400,
                "ReferencedResourceNotFound",
                f"The referenced object of type 'channel' '{missing}' was not found.",
                typeId="channel",
                **({"id": missing} if "id" in identifier else {"key": missing}),
            )
        return {"typeId": "channel", "id": channel["id"]}

    def _index_inventory(self, entry: Json) -> None:
        channel = entry.get("supplyChannel")
        self.inventory_slots[(entry["sku"], channel["id"] if channel else None)] = entry["id"]
        self.inventory_skus.setdefault(entry["sku"], set()).add(entry["id"])

    def _unindex_inventory(self, entry: Json) -> None:
        channel = entry.get("supplyChannel")
        self.inventory_slots.pop((entry["sku"], channel["id"] if channel else None), None)
        ids = self.inventory_skus.get(entry["sku"])
        if ids is not None:
            ids.discard(entry["id"])
            if not ids:
                del self.inventory_skus[entry["sku"]]

    def update_inventory(self, entry_id: str, body: Json) -> Json:
        entry = self.get("inventory-entry", entry_id)
        actions = _checked_actions(body, entry)
        updated = dict(entry)
        for action in actions:
            self._apply_inventory_action(updated, action)
        if updated == entry:  # like the real API, a no-op update keeps the version
            return entry
        updated["version"] = entry["version"] + 1
        updated["lastModifiedAt"] = now_iso()
        self._unindex_inventory(entry)
        self._index_inventory(updated)
        self.collections["inventory-entry"].put(updated)
        return updated

    def _apply_inventory_action(self, entry: Json, action: Json) -> None:
        name = action.get("action")
        reserved = self.reserved.get(entry["id"], 0)
        if name in ("changeQuantity", "addQuantity", "removeQuantity"):
            quantity = require_int(action, "quantity") or 0
            if name == "addQuantity":
                quantity = entry["quantityOnStock"] + quantity
            elif name == "removeQuantity":
                quantity = entry["quantityOnStock"] - quantity
            entry["quantityOnStock"] = quantity
            entry["availableQuantity"] = quantity - reserved
        elif name in ("setRestockableInDays", "setExpectedDelivery"):
            field_name = name[3].lower() + name[4:]  # setRestockableInDays -> restockableInDays
            _set_or_drop(entry, field_name, action.get(field_name))
        elif name == "setSupplyChannel":
            channel = self._channel_reference(action.get("supplyChannel"))
            slot = (entry["sku"], channel["id"] if channel else None)
            slot_owner = self.inventory_slots.get(slot)
            if slot_owner not in (None, entry["id"]):
                raise duplicate("sku", entry["sku"])
            _set_or_drop(entry, "supplyChannel", channel)
        elif name == "setKey":
            key = action.get("key")
            owner = self.collections["inventory-entry"].by_key.get(key) if key else None
            if owner not in (None, entry["id"]):
                raise duplicate("key", key)
            _set_or_drop(entry, "key", key)
        else:
            raise invalid_json(f"actions -> action: Unknown action '{name}'")

    def delete_inventory(self, entry_id: str, version: int | None) -> Json:
        entry = self.get("inventory-entry", entry_id)
        if version != entry["version"]:
            raise conflict(entry_id, version or 0, entry["version"])
        self._unindex_inventory(entry)
        self.reserved.pop(entry_id, None)
        self.collections["inventory-entry"].remove(entry_id)
        return entry

    # ---- custom objects

    def upsert_custom_object(self, draft: Json) -> tuple[Json, bool]:
        """Returns the object and whether it was created.

        A `version` makes the write optimistic; version 0 means "create only if absent"
        (the usual lock/lease idiom), so it conflicts with an existing object."""
        container, key = draft.get("container"), draft.get("key")
        _check_custom_object_id(container, key)
        if "value" not in draft or draft["value"] is None:
            raise invalid_json("value: Missing required value")
        version = require_int(draft, "version", required=False)
        existing_id = self.custom_objects.get((container, key))  # type: ignore[arg-type]
        coll = self.collections["key-value-document"]
        existing = coll.get(existing_id) if existing_id else None
        if version is not None:
            actual = existing["version"] if existing else 0
            if version != actual:
                subject = existing["id"] if existing else f"({container},{key})"
                raise conflict(subject, version, actual)
        now = now_iso()
        value = strip_nulls(draft["value"])
        if existing is not None:
            updated = {**existing, "version": existing["version"] + 1, "lastModifiedAt": now}
            updated["value"] = value
            coll.put(updated)
            return updated, False
        created = self._stamp({"container": container, "key": key, "value": value}, now)
        self._put_custom_object(created)
        return created, True

    def _put_custom_object(self, obj: Json) -> None:
        self.collections["key-value-document"].put(obj)
        self.custom_objects[(obj["container"], obj["key"])] = obj["id"]
        self.containers.setdefault(obj["container"], set()).add(obj["id"])

    def get_custom_object(self, container: str, key: str) -> Json:
        obj_id = self.custom_objects.get((container, key))
        obj = self.collections["key-value-document"].get(obj_id) if obj_id else None
        if obj is None:
            raise custom_object_not_found(container, key)
        return obj

    def delete_custom_object(self, container: str, key: str, version: int | None) -> Json:
        obj = self.get_custom_object(container, key)
        if version is not None and version != obj["version"]:
            raise conflict(obj["id"], version, obj["version"])
        self.collections["key-value-document"].remove(obj["id"])
        del self.custom_objects[(container, key)]
        self.containers[container].discard(obj["id"])
        return obj

    # ---- subscriptions

    def create_subscription(self, draft: Json, *, send_test: bool = True) -> Json:
        coll = self.collections["subscription"]
        if len(coll) >= MAX_SUBSCRIPTIONS:
            raise CtError(
                400,
                "MaxResourceLimitExceeded",
                f"You have exceeded the limit of {MAX_SUBSCRIPTIONS} resources of type "
                "subscription.",
                exceededResource="subscription",
            )
        key = draft.get("key")
        if key is not None:
            _check_subscription_key(key)
            if key in coll.by_key:
                raise duplicate("key", key)
        subscription = self._stamp({}, now_iso())
        if key is not None:
            subscription["key"] = key
        subscription["destination"] = _checked_destination(draft.get("destination"))
        subscription["messages"] = _checked_list(draft, "messages")
        subscription["changes"] = _checked_list(draft, "changes")
        subscription["format"] = _checked_format(draft.get("format"))
        subscription["status"] = "Healthy"
        _require_messages_or_changes(subscription)
        coll.put(subscription)
        if send_test:
            self._send_test_message(subscription)
        return subscription

    def update_subscription(self, subscription: Json, body: Json) -> Json:
        actions = _checked_actions(body, subscription)
        updated = dict(subscription)
        for action in actions:
            self._apply_subscription_action(updated, action)
        if updated == subscription:
            return subscription
        _require_messages_or_changes(updated)
        updated["version"] = subscription["version"] + 1
        updated["lastModifiedAt"] = now_iso()
        self.collections["subscription"].put(updated)
        if updated["destination"] != subscription["destination"]:
            self._send_test_message(updated)
        return updated

    def _apply_subscription_action(self, subscription: Json, action: Json) -> None:
        name = action.get("action")
        if name == "changeDestination":
            subscription["destination"] = _checked_destination(action.get("destination"))
        elif name in ("setMessages", "setChanges"):
            field_name = "messages" if name == "setMessages" else "changes"
            subscription[field_name] = _checked_list(action, field_name)
        elif name == "setKey":
            key = action.get("key")
            if key is not None:
                _check_subscription_key(key)
                owner = self.collections["subscription"].by_key.get(key)
                if owner not in (None, subscription["id"]):
                    raise duplicate("key", key)
            _set_or_drop(subscription, "key", key)
        else:
            # The format of a subscription cannot be changed: there is no such update action.
            raise invalid_json(f"actions -> action: Unknown action '{name}'")

    def delete_subscription(self, subscription: Json, version: int | None) -> Json:
        if version != subscription["version"]:
            raise conflict(subscription["id"], version or 0, subscription["version"])
        self.collections["subscription"].remove(subscription["id"])
        return subscription

    # ---- seeding and inspection

    def seed(self, data: Json) -> dict[str, int]:
        known = {*SEED_KEYS, "inventory", "orders", "customObjects", "subscriptions"}
        unknown = set(data) - known
        if unknown:
            raise invalid_input(f"Unknown seed keys: {sorted(unknown)}")
        counts: dict[str, int] = {}
        for seed_key, type_id in SEED_KEYS.items():
            for raw in data.get(seed_key) or []:
                self.put_resource(type_id, raw)
            counts[seed_key] = len(data.get(seed_key) or [])
        counts["inventory"] = self.seed_inventory(list(data.get("inventory") or []))
        for raw in data.get("orders") or []:
            self.create_order(raw, keep_id=True, publish=False)
        counts["orders"] = len(data.get("orders") or [])
        for raw in data.get("customObjects") or []:
            self.upsert_custom_object({k: v for k, v in raw.items() if k != "version"})
        counts["customObjects"] = len(data.get("customObjects") or [])
        for raw in data.get("subscriptions") or []:
            self.create_subscription(raw, send_test=False)
        counts["subscriptions"] = len(data.get("subscriptions") or [])
        return counts

    def reset(self) -> None:
        for coll in self.collections.values():
            coll.clear()
        for index in (
            self.product_skus,
            self.inventory_skus,
            self.inventory_slots,
            self.reserved,
            self.order_numbers,
            self.custom_objects,
            self.containers,
        ):
            index.clear()
        self.publisher.clear()
        self.payload_not_included = False

    def summary(self) -> Json:
        counts = {path: len(self.collections[type_id]) for type_id, path, _ in RESOURCE_TYPES}
        publisher = self.publisher
        return {
            "projectKey": self.project_key,
            "counts": counts,
            "tokens": len(self.tokens),
            "published": {
                "stored": len(publisher.published),
                "delivered": publisher.delivered,
                "failed": publisher.failed,
                "pending": publisher.pending,
                "notDelivered": publisher.not_delivered,
            },
            "payloadNotIncluded": self.payload_not_included,
        }


def _wants_message(subscription: Json, resource_type: str, message_type: str) -> bool:
    for item in subscription.get("messages") or []:
        if item.get("resourceTypeId") == resource_type:
            types = item.get("types") or []
            if not types or message_type in types:
                return True
    return False


def _wants_change(subscription: Json, resource_type: str) -> bool:
    return any(item.get("resourceTypeId") == resource_type for item in subscription["changes"])


def _set_or_drop(resource: Json, name: str, value: Any) -> None:
    """Update actions set a field, or remove it when the value is absent."""
    if value is None:
        resource.pop(name, None)
    else:
        resource[name] = value


def _checked_actions(body: Json, resource: Json) -> list[Json]:
    version = require_int(body, "version")
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise invalid_json("actions: JSON array of objects expected")
    if len(actions) > MAX_UPDATE_ACTIONS:
        raise invalid_input(f"At most {MAX_UPDATE_ACTIONS} update actions are allowed.")
    if version != resource["version"]:
        raise conflict(resource["id"], version or 0, resource["version"])
    return actions


def _check_custom_object_id(container: Any, key: Any) -> None:
    for name, value in (("container", container), ("key", key)):
        if not isinstance(value, str) or not value:
            raise invalid_json(f"{name}: Missing required value")
        if len(value) > 256 or not _KEY_RE.match(value):
            raise invalid_input(f"'{name}' does not match the pattern '^[-_~.a-zA-Z0-9]+$'.")


def _check_subscription_key(key: Any) -> None:
    if not isinstance(key, str) or not _SUBSCRIPTION_KEY_RE.match(key):
        raise invalid_input("'key' must match the pattern '^[A-Za-z0-9_-]+$' (2 to 256 chars).")


def _checked_destination(destination: Any) -> Json:
    if not isinstance(destination, dict):
        raise invalid_json("destination: Missing required value")
    kind = destination.get("type")
    required = _DESTINATION_FIELDS.get(str(kind))
    if required is None:
        raise invalid_json(f"destination -> type: Unknown destination type '{kind}'")
    for name in required:
        if not destination.get(name):
            raise invalid_json(f"destination -> {name}: Missing required value")
    checked = dict(destination)
    if kind == "SNS":
        checked.setdefault("authenticationMode", "Credentials")
    return checked


def _checked_list(data: Json, name: str) -> list[Json]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid_json(f"{name}: JSON array of objects expected")
    return [dict(item) for item in value]


def _checked_format(fmt: Any) -> Json:
    if fmt is None:
        return {"type": "Platform"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("Platform", "CloudEvents"):
        raise invalid_json("format -> type: 'Platform' or 'CloudEvents' expected")
    if fmt["type"] == "CloudEvents" and fmt.get("cloudEventsVersion") != "1.0":
        raise invalid_json("format -> cloudEventsVersion: '1.0' expected")
    return dict(fmt)


def _require_messages_or_changes(subscription: Json) -> None:
    if not subscription["messages"] and not subscription["changes"]:
        raise invalid_input("Either 'messages' or 'changes' must be set.")


# --------------------------------------------------------------------------- GraphQL
# A small slice of the real schema: bulk product lookup by SKU and the inventory mutations
# (aliased mutations in one request run serially, as graphql-core executes mutations), with a
# query-complexity limit like the real endpoint's.

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


class GraphQLApi:
    """Resolvers over the emulator state; CtErrors become GraphQL errors with the same code."""

    def __init__(self, emu: CommercetoolsEmulator) -> None:
        self.emu = emu
        self.complexity_limit = GRAPHQL_COMPLEXITY_LIMIT
        self.schema = graphql.build_schema(GRAPHQL_SDL)
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
        try:
            document = graphql.parse(query)
        except graphql.GraphQLError as exc:
            return {"errors": [exc.formatted]}, 400
        errors = graphql.validate(self.schema, document)
        if errors:
            return {"errors": [error.formatted for error in errors]}, 400
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
        return result.formatted, 200

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
        sort=[_parse_sort(text) for text in args.get("sort") or []],
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
    for argument in field_node.arguments:
        if argument.name.value == "limit":
            value = graphql.value_from_ast_untyped(argument.value, variables)
            if isinstance(value, int):
                return max(1, value)
    return default


def _graphql_route(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    api = GraphQLApi(emu)
    emu.graphql = api

    @app.post(f"{base}/graphql")
    async def graphql_endpoint(request: Request) -> Response:
        data, status = api.execute(await read_object(request))
        return ok(data, status)


# --------------------------------------------------------------------------- routes


def _auth_routes(app: FastAPI, emu: CommercetoolsEmulator) -> None:
    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(body).items()}
        for name, value in request.query_params.items():  # also accepted as query parameters
            form.setdefault(name, value)
        return ok(emu.issue_token(request.headers.get("authorization"), form))


def _read_routes(
    app: FastAPI, emu: CommercetoolsEmulator, base: str, type_id: str, path: str
) -> None:
    """Query, get by key and get by id, with reference expansion, for one resource type."""

    @app.get(f"{base}/{path}")
    async def query_resources(request: Request) -> Response:
        return ok(emu.query(type_id, parse_query(request)))

    if emu.collections[type_id].key_field:

        @app.get(f"{base}/{path}/key={{key}}")
        async def get_by_key(key: str, request: Request) -> Response:
            resource = emu.get_by_key(type_id, key)
            return ok(expand_all(resource, parse_expand_params(request), emu.resolve))

    @app.get(f"{base}/{path}/{{resource_id}}")
    async def get_by_id(resource_id: str, request: Request) -> Response:
        resource = emu.get(type_id, resource_id)
        return ok(expand_all(resource, parse_expand_params(request), emu.resolve))


def _order_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/orders/import")
    async def import_order(request: Request) -> Response:
        order = emu.create_order(await read_object(request), keep_id=False)
        return ok(expand_all(order, parse_expand_params(request), emu.resolve), 201)

    @app.get(f"{base}/orders/order-number={{number}}")
    async def get_order_by_number(number: str, request: Request) -> Response:
        order = emu.get_order_by_number(number)
        return ok(expand_all(order, parse_expand_params(request), emu.resolve))


def _inventory_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/inventory")
    async def create_inventory(request: Request) -> Response:
        return ok(emu.create_inventory(await read_object(request)), 201)

    @app.post(f"{base}/inventory/{{entry_id}}")
    async def update_inventory(entry_id: str, request: Request) -> Response:
        return ok(emu.update_inventory(entry_id, await read_object(request)))

    @app.delete(f"{base}/inventory/{{entry_id}}")
    async def delete_inventory(entry_id: str, request: Request) -> Response:
        return ok(emu.delete_inventory(entry_id, version_param(request, required=True)))


def _custom_object_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    @app.post(f"{base}/custom-objects")
    async def upsert(request: Request) -> Response:
        obj, created = emu.upsert_custom_object(await read_object(request))
        return ok(obj, 201 if created else 200)

    @app.get(f"{base}/custom-objects")
    async def query_all(request: Request) -> Response:
        return ok(emu.query("key-value-document", parse_query(request)))

    @app.get(f"{base}/custom-objects/{{container}}")
    async def query_container(container: str, request: Request) -> Response:
        ids = emu.containers.get(container, set())
        return ok(emu.query("key-value-document", parse_query(request), candidates=ids))

    @app.get(f"{base}/custom-objects/{{container}}/{{key}}")
    async def get_one(container: str, key: str) -> Response:
        return ok(emu.get_custom_object(container, key))

    @app.delete(f"{base}/custom-objects/{{container}}/{{key}}")
    async def delete_one(container: str, key: str, request: Request) -> Response:
        version = version_param(request, required=False)
        return ok(emu.delete_custom_object(container, key, version))


def _subscription_routes(app: FastAPI, emu: CommercetoolsEmulator, base: str) -> None:
    def by_key(key: str) -> Json:
        return emu.get_by_key("subscription", key)

    def by_id(subscription_id: str) -> Json:
        return emu.get("subscription", subscription_id)

    @app.post(f"{base}/subscriptions")
    async def create(request: Request) -> Response:
        return ok(emu.create_subscription(await read_object(request)), 201)

    @app.post(f"{base}/subscriptions/key={{key}}")
    async def update_by_key(key: str, request: Request) -> Response:
        return ok(emu.update_subscription(by_key(key), await read_object(request)))

    @app.delete(f"{base}/subscriptions/key={{key}}")
    async def delete_by_key(key: str, request: Request) -> Response:
        version = version_param(request, required=True)
        return ok(emu.delete_subscription(by_key(key), version))

    @app.post(f"{base}/subscriptions/{{subscription_id}}")
    async def update_by_id(subscription_id: str, request: Request) -> Response:
        return ok(emu.update_subscription(by_id(subscription_id), await read_object(request)))

    @app.delete(f"{base}/subscriptions/{{subscription_id}}")
    async def delete_by_id(subscription_id: str, request: Request) -> Response:
        version = version_param(request, required=True)
        return ok(emu.delete_subscription(by_id(subscription_id), version))


def _sandbox_routes(app: FastAPI, emu: CommercetoolsEmulator) -> None:
    prefix = SANDBOX_PREFIX

    @app.post(f"{prefix}/expire-tokens")
    async def expire_tokens() -> Response:
        return ok({"expired": emu.expire_tokens()})

    @app.post(f"{prefix}/orders")
    async def create_order(request: Request) -> Response:
        return ok(emu.create_order(await read_object(request), keep_id=True), 201)

    @app.get(f"{prefix}/messages")
    async def read_message_controls() -> Response:
        return ok({"payload_not_included": emu.payload_not_included})

    @app.put(f"{prefix}/messages")
    async def write_message_controls(request: Request) -> Response:
        body = await read_object(request)
        emu.payload_not_included = bool(body.get("payload_not_included", False))
        return ok({"payload_not_included": emu.payload_not_included})

    @app.get(f"{prefix}/published")
    async def published() -> Response:
        records = list(emu.publisher.published)
        return ok({"count": len(records), "pending": emu.publisher.pending, "messages": records})

    @app.delete(f"{prefix}/published")
    async def clear_published() -> Response:
        emu.publisher.clear()
        return ok({"count": 0})

    @app.post(f"{prefix}/drain")
    async def drain() -> Response:
        await emu.publisher.drain()
        return ok({"pending": emu.publisher.pending})

    @app.post(f"{prefix}/seed")
    async def seed(request: Request) -> Response:
        return ok(emu.seed(await read_object(request)))

    @app.post(f"{prefix}/reset")
    async def reset() -> Response:
        emu.reset()
        return ok(emu.summary())

    @app.get(f"{prefix}/state/summary")
    async def summary() -> Response:
        return ok(emu.summary())


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CtError)
    async def ct_error(_: Request, exc: CtError) -> Response:
        return ok(exc.body(), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"The endpoint '{request.method} {request.url.path}' was not found."
            return ok(CtError(404, "ResourceNotFound", message).body(), 404)
        code = "InvalidOperation" if exc.status_code < 500 else "General"
        return ok(CtError(exc.status_code, code, str(exc.detail)).body(), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return ok(invalid_input(str(exc.errors())).body(), 400)


class BearerAuth:
    """Checks the bearer token of every project API call before routing, as the real API's
    gateway does (so an unknown path under the project also answers 401 without a token).

    A plain ASGI middleware: it costs a few microseconds, where a dependency on every route
    costs tens."""

    def __init__(self, app: ASGIApp, emulator: CommercetoolsEmulator, prefix: str) -> None:
        self.app = app
        self.emulator = emulator
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            try:
                self.emulator.authorize(authorization)
            except CtError as exc:
                await ok(exc.body(), exc.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    project_key: str = "sandbox",
    clients: dict[str, str] | None = None,
    token_ttl_s: int = 172800,
    pubsub_url: str | None = None,
    seed: dict[str, Any] | None = None,
) -> FastAPI:
    """The emulator app; its state is `app.state.emulator` (a `CommercetoolsEmulator`)."""
    emu = CommercetoolsEmulator(project_key, clients or DEFAULT_CLIENTS, token_ttl_s, pubsub_url)
    if seed:
        emu.seed(copy.deepcopy(seed))  # the emulator fills in and later changes what it stores

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await emu.publisher.aclose()

    app = FastAPI(
        title="commercetools sandbox",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.emulator = emu

    base = f"/{project_key}"
    # Route matching is a large share of the per-request cost, so the routes the connector
    # calls most come first. Within a resource, `key=...`, `order-number=...` and `import`
    # come before `{id}`.
    _order_routes(app, emu, base)
    _read_routes(app, emu, base, "order", "orders")
    _inventory_routes(app, emu, base)
    _read_routes(app, emu, base, "inventory-entry", "inventory")
    _custom_object_routes(app, emu, base)
    _graphql_route(app, emu, base)
    _subscription_routes(app, emu, base)
    for type_id, path, _ in RESOURCE_TYPES:
        if type_id not in ("order", "inventory-entry", "key-value-document"):
            _read_routes(app, emu, base, type_id, path)
    _auth_routes(app, emu)
    _sandbox_routes(app, emu)
    _error_handlers(app)
    app.add_middleware(BearerAuth, emulator=emu, prefix=f"{base}/")
    install_controls(app, emu.sandbox, ct_error_body)
    return app


def load_seed_file(path: str | Path) -> dict[str, Any]:
    """Read a seed (the `POST /_sandbox/seed` body) from a JSON file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed file holds one JSON object")
    return data
