"""Storage and queries of the commercetools emulator: a `Collection` of one resource type (ids
kept sorted, with a key index), the query parameters of a request (`limit`, `offset`, `where`,
`sort`, `withTotal`, `expand`) parsed into a `Query`, and `run_query`, which answers a
PagedQueryResponse with the real API's limits.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from sandbox.commercetools.common import Json
from sandbox.commercetools.errors import invalid_input
from sandbox.commercetools.expansion import ExpandPath, Resolver, expand_all, parse_expand
from sandbox.commercetools.predicates import Predicate, id_slice, parse_predicate

MAX_LIMIT = 500
MAX_OFFSET = 10_000
# With a query predicate the real API stops counting `total` at the maximum offset.
MAX_TOTAL_WITH_PREDICATE = 10_000


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
        sort=[parse_sort(text) for text in params.getlist("sort")],
        limit=limit,
        offset=offset,
        with_total=params.get("withTotal", "true").lower() != "false",
        expand=parse_expand_params(request),
    )


def parse_sort(text: str) -> tuple[str, bool]:
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


def _ordered_ids(
    coll: Collection, query: Query, candidates: Iterable[str] | None
) -> tuple[Iterable[str], Callable[[Any], bool] | None]:
    """The ids to scan in order, and the test each must pass."""
    predicate = query.predicate
    test = predicate.test if predicate else None
    if candidates is not None:
        return _sorted_ids(coll, candidates, query.sort), test
    if query.sort and query.sort[0][0] != "id":
        return _sorted_ids(coll, coll.ids, query.sort), test
    ids = coll.ids
    start, stop = id_slice(ids, predicate.node if predicate else None)
    descending = bool(query.sort) and query.sort[0][1]
    positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
    in_slice = map(ids.__getitem__, positions)  # lazily: a page stops after `limit` matches
    return in_slice, predicate.test_in_id_slice if predicate else None


def run_query(
    coll: Collection, query: Query, resolve: Resolver, candidates: Iterable[str] | None = None
) -> Json:
    """A PagedQueryResponse: `{limit, offset, count, total?, results}`."""
    items = coll.items
    ordered, test = _ordered_ids(coll, query, candidates)
    counted = query.predicate is not None  # with a predicate, `total` stops at a maximum
    results: list[Json] = []
    seen = 0
    wanted_end = query.offset + query.limit
    for resource_id in ordered:
        resource = items[resource_id]
        if test is not None and not test(resource):
            continue
        if seen >= query.offset and len(results) < query.limit:
            results.append(resource)
        seen += 1
        if seen >= wanted_end and (
            not query.with_total or (counted and seen >= MAX_TOTAL_WITH_PREDICATE)
        ):
            break
    if query.expand:
        results = [expand_all(resource, query.expand, resolve) for resource in results]
    page: Json = {"limit": query.limit, "offset": query.offset, "count": len(results)}
    if query.with_total:
        page["total"] = min(seen, MAX_TOTAL_WITH_PREDICATE) if counted else seen
    page["results"] = results
    return page
