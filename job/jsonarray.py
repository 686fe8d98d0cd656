"""The values of a large JSON array, one at a time, without holding the document in memory.

An export of a large catalog is a JSON array of hundreds of thousands of rows (about 75 MB at
300k rows). `json.load` would build every row before the first is summed; here the stream is
read in chunks and each value is decoded with the standard library's own decoder
(`JSONDecoder.raw_decode`), so memory holds one chunk and one value, whatever the file size
(measured in docs/inventory.md). No dependency: the rows are small and the C scanner does
the decoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

CHUNK_CHARS = 1 << 16
# One value never needs more than this; a longer one is a broken file, not a row to wait for.
MAX_VALUE_CHARS = 16 << 20

_NON_SPACE = re.compile(r"\S")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
_decode = json.JSONDecoder().raw_decode


class _Scanner:
    """A window over a text stream: what is not yet consumed, refilled chunk by chunk."""

    def __init__(self, stream: TextIO, chunk_chars: int) -> None:
        self.stream = stream
        self.chunk_chars = chunk_chars
        self.text = ""
        self.pos = 0
        self.ended = False

    def more(self) -> bool:
        """Append the next chunk, dropping what was consumed; False at the end of the stream."""
        if self.ended:
            return False
        chunk = self.stream.read(self.chunk_chars)
        if not chunk:
            self.ended = True
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        if len(self.text) > MAX_VALUE_CHARS + self.chunk_chars:
            raise ValueError(f"a JSON value longer than {MAX_VALUE_CHARS} characters")
        return True

    def peek(self) -> str:
        """The next character that is not whitespace, not consumed ('' at the end)."""
        while True:
            found = _NON_SPACE.search(self.text, self.pos)
            if found:
                self.pos = found.start()
                return self.text[self.pos]
            self.pos = len(self.text)
            if not self.more():
                return ""

    def take(self) -> None:
        self.pos += 1

    def value(self) -> Any:
        if not self.peek():  # (raw_decode does not skip whitespace itself)
            raise ValueError("a JSON value was expected, found the end of the data")
        while True:
            try:
                value, end = _decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.more():  # the value goes on in the next chunk
                    continue
                raise
            # A number is the one value that does not say where it ends: if only number
            # characters follow it in the window ("-6" of "-6.5e3"), read on and decode again.
            if _is_number(value) and _NUMBER_CHARS.fullmatch(self.text, end) and self.more():
                continue
            self.pos = end
            return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def iter_json_values(stream: TextIO, chunk_chars: int = CHUNK_CHARS) -> Iterator[Any]:
    """The items of a top-level JSON array; or, for a stream of values that is not an array
    (JSON lines), each value. An empty stream has none.

    Raises `ValueError` (`json.JSONDecodeError` is one) for anything malformed, including an
    array that is cut short: a truncated download must never pass for a complete one.
    """
    scanner = _Scanner(stream, chunk_chars)
    first = scanner.peek()
    if first != "[":
        while scanner.peek():
            yield scanner.value()
        return
    scanner.take()
    if scanner.peek() == "]":
        scanner.take()
    else:
        yield from _items(scanner)
    if scanner.peek():
        raise ValueError("data after the end of the JSON array")


def _items(scanner: _Scanner) -> Iterator[Any]:
    while True:
        yield scanner.value()
        separator = scanner.peek()
        scanner.take()
        if separator == "]":
            return
        if separator != ",":
            found = repr(separator) if separator else "the end of the data"
            raise ValueError(f"expected ',' or ']' in the JSON array, found {found}")
