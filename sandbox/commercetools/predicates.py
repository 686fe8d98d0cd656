"""The `where` Query Predicate parser and evaluator of the commercetools emulator.

A parser for the subset of the Query Predicate language the connector needs: comparisons,
`in`, `is [not] defined`, `is [not] empty`, `contains`, nested `field(...)` (any element of an
array matches), `and`, `or`, `not(...)`. Predicates are compiled to closures once (and cached).
It also reads a parsed predicate for the store's shortcuts: the SKUs a match must carry and
the id range top-level `id` comparisons allow.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.commercetools.errors import invalid_input

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
    return _compile_bool(node.op, [_compile(item) for item in node.items])


def _compile_bool(op: str, parts: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    # Plain loops, not all()/any() over a generator: the test runs for every entry a page
    # scans, and a generator per call costs as much as the comparisons.
    if len(parts) == 1:
        return parts[0]
    if op == "and":

        def every(obj: Any) -> bool:
            for part in parts:  # noqa: SIM110
                if not part(obj):
                    return False
            return True

        return every

    def some(obj: Any) -> bool:
        for part in parts:  # noqa: SIM110
            if part(obj):
                return True
        return False

    return some


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
    # `test` without the top-level id comparisons `id_slice` applies: for the entries of
    # that slice; None when nothing else is left to test
    test_in_id_slice: Callable[[Any], bool] | None


@functools.lru_cache(maxsize=512)
def parse_predicate(text: str) -> Predicate:
    try:
        node = _Parser(text).parse()
    except PredicateSyntaxError as exc:
        raise invalid_input(
            f"Malformed parameter: where: Syntax error while parsing 'where'. {exc}"
        ) from None
    rest = [part for part in conjuncts(node) if not _is_id_bound(part)]
    in_slice = _compile_bool("and", [_compile(part) for part in rest]) if rest else None
    return Predicate(node, _compile(node), in_slice)


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
    return field_candidates(node, "sku", nested)


def field_candidates(node: Node, name: str, nested: bool = False) -> set[str] | None:
    """String values of field `name` one of which any match must have, or None when the
    predicate does not say (`name = "x"`, `name in (...)`, and their and/or)."""
    if isinstance(node, Cmp) and node.field == name and node.op == "=":
        return {node.value} if isinstance(node.value, str) else set()
    if isinstance(node, In) and node.field == name and not node.negate:
        return {value for value in node.values if isinstance(value, str)}
    if isinstance(node, Nested) and nested:
        return field_candidates(node.inner, name, nested)
    if isinstance(node, BoolOp):
        found = [field_candidates(item, name, nested) for item in node.items]
        if node.op == "or":
            if any(part is None for part in found):
                return None
            return set().union(*found)  # type: ignore[arg-type]
        known = [part for part in found if part is not None]
        return set.intersection(*known) if known else None
    return None


_ID_BOUNDS = (">", ">=", "<", "<=", "=")


def _is_id_bound(part: Node) -> bool:
    """A top-level conjunct `id_slice` applies exactly (string ids sort as bisect does)."""
    return (
        isinstance(part, Cmp)
        and part.field == "id"
        and isinstance(part.value, str)
        and part.op in _ID_BOUNDS
    )


def id_slice(ids: list[str], node: Node | None) -> tuple[int, int]:
    """Index range of the sorted ids allowed by top-level `id > "x"`-style conjuncts."""
    start, stop = 0, len(ids)
    for part in conjuncts(node):
        if not _is_id_bound(part):
            continue
        assert isinstance(part, Cmp)
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
