"""The streaming JSON array reader: the same values as json.loads, whatever the chunking."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.jsonarray import iter_json_values

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
