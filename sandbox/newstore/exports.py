"""Availability Export jobs of the NewStore emulator and the encoding of their files: the
`ExportJob` record, a finished job's rows as the JSON array the link serves, and the zip
holding that JSON file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec


@dataclass(slots=True)
class ExportJob:
    id: str
    cursor: int | None
    state: str = "processing"
    polls: int = 0
    last_updated_at: int | None = None
    format: str = "json"
    rows: int = 0  # rows of the file, counted when the job finishes
    # "json" (the file, built once when the job finishes) and, when served, "zip"; emptied
    # when the job's link expires. A bytearray: copying 641 MiB into bytes would cost more
    # than a second.
    files: dict[str, bytes | bytearray] = field(default_factory=dict)


# (product_id, [(node, (atp, revision)), ...]): one product's rows of an export
ProductRows = tuple[str, Iterable[tuple[str, Sequence[int]]]]


# The rows as msgspec structs: msgspec writes the 3M rows of a 1M-SKU export in a third of
# the time f-string templates took, and the emulator's one event loop is blocked meanwhile.
# Field order is the file's key order. No cycles: gc=False keeps them out of the collector.
class _Sku(msgspec.Struct, gc=False):
    sku: str


class _ExternalIdentifiers(msgspec.Struct, gc=False):
    catalog: str
    locale: str
    identifiers: _Sku


class _Row(msgspec.Struct, gc=False):
    product_id: str
    fulfillment_node_id: str
    atp: int
    present_atp: int
    future_atp: int
    revision: int
    external_identifiers: tuple[_ExternalIdentifiers]


_ROWS_PER_CHUNK = 60_000  # rows held as structs at a time (a few MB), not the whole export


def encode_export(
    products_rows: Iterable[ProductRows],
    skus: Mapping[str, str],
    catalog_name: str,
    catalog_locale: str,
) -> tuple[bytearray, int]:
    """The JSON array of the rows, and how many there are.

    Chunks are encoded into one growing buffer, each one's `[` over the last one's `]`:
    slicing and joining per-chunk bytes cost as much as the encoding itself."""
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    chunk: list[_Row] = []
    add = chunk.append
    rows = 0

    def flush() -> None:
        at = len(buffer) - 1 if buffer else 0
        encoder.encode_into(chunk, buffer, at)
        if at:
            buffer[at] = ord(",")
        chunk.clear()

    for product_id, entries in products_rows:
        identifiers = (
            _ExternalIdentifiers(
                catalog_name, catalog_locale, _Sku(skus.get(product_id, product_id))
            ),
        )
        for node, (atp, revision) in entries:
            add(_Row(product_id, node, atp, atp, 0, revision, identifiers))
        if len(chunk) >= _ROWS_PER_CHUNK:
            rows += len(chunk)
            flush()
    rows += len(chunk)
    if chunk or not buffer:
        flush()
    return buffer, rows


# What an archiver on macOS adds beside the data: an AppleDouble resource fork (binary, not
# JSON) under __MACOSX/, and a Finder .DS_Store.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)


def zip_export(job: ExportJob, data: bytes | bytearray, extras: bool = False) -> bytes:
    """A zip holding the job's JSON file (the `zip` export format); with `extras`, also a
    directory entry, a `__MACOSX/` resource fork and a `.DS_Store`, as a zip made on a Mac
    holds (assumption: NewStore's docs do not list the members of an export zip)."""
    name = f"availabilities_{job.id}.json"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if extras:
            z.writestr("export/", b"")
            z.writestr(f"__MACOSX/._{name}", APPLE_DOUBLE)
            z.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(32))
        z.writestr(name, data)
    return buffer.getvalue()
