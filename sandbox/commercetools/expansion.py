"""Reference expansion (`expand=lineItems[*].variant...`) for the commercetools emulator: parsing
expand paths, and copying a resource with the References along a path given their `obj`. The
stored data is never changed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from sandbox.commercetools.common import Json
from sandbox.commercetools.errors import invalid_input

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
