"""The streaming JSON array reader: the same values as json.loads, whatever the chunking."""

from __future__ import annotations

import io
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.jsonarray import iter_array_batches, iter_json_values

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def read(text: str, chunk: int = 7) -> list[Any]:
    return list(iter_json_values(io.StringIO(text), chunk_chars=chunk))


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(values, max_size=8), chunk=st.integers(1, 40), indent=st.sampled_from([None, 1])
)
def test_any_array_in_any_chunking_reads_like_json_loads(
    items: list[Any], chunk: int, indent: int | None
) -> None:
    text = json.dumps(items, indent=indent)
    assert read(text, chunk) == json.loads(text)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_numbers_cut_by_a_chunk_boundary_are_read_whole(chunk: int) -> None:
    assert read("[12345, -6.5e3,7,  890 ]", chunk) == [12345, -6500.0, 7, 890]


def test_empty_inputs() -> None:
    assert read("") == [] and read("  \n") == [] and read(" [ ] \n") == []


def test_json_lines_are_read_too() -> None:
    assert read('{"a": 1}\n{"a": 2}\n', 3) == [{"a": 1}, {"a": 2}]
    assert read("1 23\n-4.5e1", 1) == [1, 23, -45.0]


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1}, {"a": 2}',  # cut short: must never pass for a complete file
        '[{"a": 1}, {"a": 2',
        '[{"a": 1} {"a": 2}]',
        '[{"a": 1}] [2]',
        "[1,]",
    ],
)
def test_broken_arrays_raise(text: str) -> None:
    with pytest.raises(ValueError):
        read(text, 4)


# --- in batches (iter_array_batches): the same values, however the windows are cut ---------

finite = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
finite |= st.floats(allow_nan=False, allow_infinity=False)  # what JSON can hold
finite_values = st.recursive(
    finite,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.sampled_from(["id", "a", "b"]), finite_values, max_size=3)
# Strings that look like a cut between two rows: a cut there must never split a row.
tricky = st.sampled_from(['}, {"id": ', '},{"id":1}', '"}]', "\\", '\\"},{"id"', "é"])


def batches_of(data: bytes, batch: int) -> list[Any]:
    def typed(text: bytes) -> list[Any]:
        return list(msgspec.json.decode(text))

    stream = io.BytesIO(data)
    return [item for part in iter_array_batches(stream, typed, lambda v: v, batch) for item in part]


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(objects | st.fixed_dictionaries({"id": tricky, "x": tricky}), max_size=12),
    batch=st.integers(1, 120),
    indent=st.sampled_from([None, 1]),
    ascii_only=st.booleans(),
)
def test_batches_of_any_array_of_objects_read_like_json_loads(
    items: list[Any], batch: int, indent: int | None, ascii_only: bool
) -> None:
    data = json.dumps(items, indent=indent, ensure_ascii=ascii_only).encode()
    assert batches_of(data, batch) == items


def test_batches_fall_back_untyped_for_a_batch_the_typed_decoder_refuses() -> None:
    class Row(msgspec.Struct):
        id: int

    decode = msgspec.json.Decoder(list[Row]).decode
    data = json.dumps([{"id": 1}, {"id": "two"}, {"id": 3}]).encode()
    read = [r for part in iter_array_batches(io.BytesIO(data), decode, lambda v: v) for r in part]
    assert read == [{"id": 1}, {"id": "two"}, {"id": 3}]  # the refused batch, as values


def test_batches_read_json_lines_and_a_byte_order_mark() -> None:
    assert batches_of(b'{"a": 1}\n{"a": 2}\n', 4) == [{"a": 1}, {"a": 2}]
    assert batches_of(b'\xef\xbb\xbf[{"a": 1}]', 4) == [{"a": 1}]
    assert batches_of(b"", 4) == [] and batches_of(b" [ ] ", 4) == []


@pytest.mark.parametrize("batch", [1, 5, 1000])
@pytest.mark.parametrize(
    "data",
    [
        b'[{"a": 1}, {"a": 2}',  # cut short: must never pass for a complete file
        b'[{"a": 1}, {"a": 2',
        b'[{"a": 1} {"a": 2}]',
        b'[{"a": 1}] [2]',
        b'[{"a": 1},]',
        b'[{"a": 1}, {"a": "}, {\\"a\\": 2}]',
    ],
)
def test_broken_arrays_raise_in_batches_too(data: bytes, batch: int) -> None:
    with pytest.raises(ValueError):
        batches_of(data, batch)
