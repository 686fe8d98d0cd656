"""The values of a large JSON array, one at a time, without holding the document in memory.

An export of a large catalog is a JSON array of hundreds of thousands of rows (about 75 MB at
300k rows). `json.load` would build every row before the first is summed; here the stream is
read in chunks and each value is decoded with the standard library's own decoder
(`JSONDecoder.raw_decode`), so memory holds one chunk and one value, whatever the file size
(measured in docs/inventory.md). No dependency: the rows are small and the C scanner does
the decoding.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

import msgspec

T = TypeVar("T")

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


# --- in batches, typed ------------------------------------------------------------------------

BATCH_BYTES = 1 << 20  # a window: its rows and their copies stay a few MB
# A row's first key, as the array's first object spells it: rows of one export are written
# by one serialiser, so each top-level object starts with the same key.
_FIRST_KEY = re.compile(rb'\s*\{\s*("(?:[^"\\]|\\.)*")\s*:')
_ANY_OBJECT_END = re.compile(rb"\}\s*,\s*(?=\{)")
_CANDIDATES = 8  # cuts tried, last first, before the window is read on
_TAIL = 1 << 16  # where the cuts are looked for: the window's last bytes
_BOM = b"\xef\xbb\xbf"


class ReadsBytes(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


_SPACE = b" \t\r\n"


def iter_array_batches(
    stream: ReadsBytes,
    batch_decoder: Callable[[bytes], list[T]],
    fallback: Callable[[Any], T],
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[list[T]]:
    """The items of a top-level JSON array of objects, a few megabytes of them at a time,
    each batch decoded at once by `batch_decoder` (msgspec: it builds only the fields its
    type declares, several times faster than `json`; docs/inventory.md, "At 1M SKUs").

    A window of the stream is cut between two objects: after a `}`, a `,` and the next
    object's first key as the first row spells it. The text may match inside a row too
    (a nested object, a string); decoding `[` + the text up to the cut + `]` then fails,
    because its brackets or quotes do not close, and an earlier cut is tried. Decoding
    succeeds only when the cut is between two top-level values, so no row is ever split or
    merged. A batch the typed decoder refuses (a row of another shape) is decoded again
    untyped and each value passed to `fallback`. Anything that is not an array (JSON lines)
    is read by `iter_json_values`, a value at a time.

    Raises `ValueError` (msgspec's errors become one) for anything malformed, including an
    array cut short."""
    head = stream.read(batch_bytes)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    stripped = head.lstrip(_SPACE)
    if not stripped.startswith(b"["):
        rest = io.BufferedReader(_Prefixed(stripped, stream))
        text = io.TextIOWrapper(rest, encoding="utf-8")
        for value in iter_json_values(text):
            yield [fallback(value)]
        return
    window = stripped[1:]
    key = _FIRST_KEY.match(window)
    between = (
        re.compile(rb"\}\s*,\s*(?=\{\s*" + re.escape(key.group(1)) + rb"\s*:)")
        if key
        else _ANY_OBJECT_END
    )
    ended = False
    while True:
        while not ended and len(window) < batch_bytes:
            more = stream.read(batch_bytes)
            ended = not more
            window += more
        if ended:
            yield from _last_batch(window, batch_decoder, fallback)
            return
        cut = _decode_upto_cut(window, between, batch_decoder, fallback)
        if cut is None:  # no complete row found in the window: read on
            if len(window) > MAX_VALUE_CHARS + batch_bytes:
                raise ValueError(f"a JSON value longer than {MAX_VALUE_CHARS} bytes")
            more = stream.read(batch_bytes)
            ended = not more
            window += more
            continue
        batch, start = cut
        yield batch
        window = window[start:]


def _decode_upto_cut(
    window: bytes,
    between: re.Pattern[bytes],
    batch_decoder: Callable[[bytes], list[T]],
    fallback: Callable[[Any], T],
) -> tuple[list[T], int] | None:
    """The rows of the window up to its last cut that decodes, and where the next row
    starts; None when none of the last `_CANDIDATES` cuts decodes."""
    cuts = list(between.finditer(window, max(0, len(window) - _TAIL)))
    if not cuts:
        cuts = list(between.finditer(window))
    for cut in reversed(cuts[-_CANDIDATES:]):
        try:
            batch = _decode_batch(b"[" + window[: cut.start() + 1] + b"]", batch_decoder, fallback)
        except ValueError:
            continue
        return batch, cut.end()
    return None


def _last_batch(
    window: bytes, batch_decoder: Callable[[bytes], list[T]], fallback: Callable[[Any], T]
) -> Iterator[list[T]]:
    """The rest of the array: its last rows, its `]`, then nothing but whitespace."""
    body = window.rstrip(_SPACE)
    if not body.endswith(b"]"):
        raise ValueError("the JSON array is cut short: no closing ']'")
    if body[:-1].strip(_SPACE):
        yield _decode_batch(b"[" + body, batch_decoder, fallback)
    elif body.count(b"]") != 1:
        raise ValueError("data after the end of the JSON array")


def _decode_batch(
    text: bytes, batch_decoder: Callable[[bytes], list[T]], fallback: Callable[[Any], T]
) -> list[T]:
    try:
        return batch_decoder(text)
    except msgspec.ValidationError:
        pass  # well-formed, another shape: each value as it is
    except msgspec.DecodeError as error:
        raise ValueError(str(error)) from None
    try:
        values = msgspec.json.decode(text)
    except msgspec.DecodeError as error:
        raise ValueError(str(error)) from None
    return [fallback(value) for value in values]


class _Prefixed(io.RawIOBase):
    """What was read already, then the rest of the stream (for the JSON-lines path)."""

    def __init__(self, head: bytes, stream: ReadsBytes) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._head or self._stream.read(len(buffer))
        if self._head:
            data, self._head = data[: len(buffer)], data[len(buffer) :]
        buffer[: len(data)] = data
        return len(data)
