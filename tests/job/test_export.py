"""The export source: start, poll, download, parse, aggregate; against the NewStore emulator
(and a scripted transport for what the emulator cannot do: 403, a failing download)."""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from connector.newstore import NewStoreClient
from connector.settings import NewStoreSettings
from job.export import (
    EXPORT_TIMEOUT,
    ExportFailed,
    ExportSource,
    ExportUnavailable,
    PollPolicy,
    export_rows,
    read_export_file,
)
from sandbox.newstore import NewStoreEmulator
from tests.job.conftest import FAST_RETRY, NS_URL

NODES = ("DC01", "STORE01", "STORE02")
FAST_POLLS = PollPolicy(timeout_s=2.0, first_s=0.001, max_s=0.005)


def seed(emulator: NewStoreEmulator, products: int = 3, atp: int = 10) -> None:
    emulator.clear()
    emulator.set_stock(
        {"product_id": f"P{p}", "sku": f"SKU-{p}", "fulfillment_node_id": node, "atp": atp}
        for p in range(products)
        for node in NODES
    )


def source(newstore: NewStoreClient, cursor: int | None = None, **kwargs: Any) -> ExportSource:
    return ExportSource(newstore, kwargs.pop("match_field", "sku"), cursor, FAST_POLLS, **kwargs)


def calls(emulator: NewStoreEmulator, label: str) -> int:
    return emulator.sandbox.counters[label]


async def test_a_full_export_then_a_delta_with_every_node_of_the_changed_product(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    ns_emulator.controls.export_delta_rows = "product"  # the other reading of the docs
    full = await source(newstore).read()
    assert full.atp == {"SKU-0": 30, "SKU-1": 30, "SKU-2": 30}
    assert (full.delta, full.complete, full.rows, full.cursor) == (False, True, 9, 1)

    ns_emulator.set_stock([{"product_id": "P1", "fulfillment_node_id": "STORE01", "atp": -4}])
    delta = await source(newstore, full.cursor).read()
    # one node of three changed: the aggregate is over all three, from the delta alone
    assert delta.atp == {"SKU-1": 16}
    assert (delta.delta, delta.rows, delta.cursor) == (True, 3, 2)
    assert calls(ns_emulator, "POST /v0/d/availabilities/bulk") == 2


async def test_match_on_product_id_reads_no_identifiers(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator, products=2)
    snapshot = await source(newstore, match_field="product_id").read()
    assert snapshot.atp == {"P0": 30, "P1": 30}


@pytest.mark.parametrize("file_format", ["json", "zip"])
async def test_zipped_and_plain_exports_read_the_same(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator, file_format: str
) -> None:
    seed(ns_emulator, products=50)
    ns_emulator.controls.export_format = file_format  # type: ignore[assignment]
    snapshot = await source(newstore).read()
    assert snapshot.atp == {f"SKU-{p}": 30 for p in range(50)}
    assert snapshot.rows == 150


async def test_polls_wait_longer_each_time_up_to_a_bound(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    ns_emulator.controls.export_processing_polls = 6
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    policy = PollPolicy(timeout_s=600, first_s=0.25, max_s=2.0)
    snapshot = await ExportSource(newstore, "sku", None, policy, sleep=sleep).read()
    assert snapshot.complete
    assert slept == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]  # 6 answers 'processing', then done


async def test_an_export_that_never_finishes_ends_at_its_deadline(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    ns_emulator.controls.export_never_finish = True
    now = [0.0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    policy = PollPolicy(timeout_s=60, first_s=1, max_s=10)
    export = ExportSource(newstore, "sku", 7, policy, sleep=sleep, clock=lambda: now[0])
    snapshot = await export.read()

    assert (snapshot.complete, snapshot.stopped, snapshot.atp) == (False, EXPORT_TIMEOUT, {})
    assert snapshot.export_id and snapshot.cursor is None
    assert now[0] == 60  # the last poll falls on the deadline, not after it
    # polls after 1, 2, 4, 8, then every 10 s (55 s), and the last 5 s later, at the deadline
    assert calls(ns_emulator, "GET /v0/d/availabilities/bulk/{export_id}") == 9


async def test_the_run_stopping_ends_the_wait_without_a_reason_of_its_own(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    ns_emulator.controls.export_never_finish = True
    snapshot = await source(newstore).read(stop=lambda: True)
    assert (snapshot.complete, snapshot.stopped) == (False, None)
    assert calls(ns_emulator, "POST /v0/d/availabilities/bulk") == 0  # none started in vain

    answers = iter([False, False, True])  # the run must stop while it waits for the export
    snapshot = await source(newstore).read(stop=lambda: next(answers))
    assert (snapshot.complete, snapshot.stopped) == (False, None) and snapshot.export_id


async def test_a_failed_export_is_an_error(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    ns_emulator.controls.export_fail = True
    with pytest.raises(ExportFailed, match="failed: export failed"):
        await source(newstore).read()


async def test_an_empty_delta_without_a_link_is_nothing_changed(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator)
    full = await source(newstore).read()
    ns_emulator.controls.empty_delta_cursor_zero = True  # last_updated_at 0 and no link
    before = newstore.requests

    quiet = await source(newstore, full.cursor).read()

    assert (quiet.complete, quiet.delta, quiet.atp, quiet.rows, quiet.cursor) == (
        True,
        True,
        {},
        0,
        0,
    )
    # the start and two polls ('processing', then 'finished'): nothing to download
    assert newstore.requests - before == 3


async def test_a_full_export_without_a_link_is_still_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"id": "e1", "state": "processing"})
        return httpx.Response(200, json={"state": "finished", "last_updated_at": 0})

    async with scripted(handler) as client:
        with pytest.raises(ExportFailed, match="without a link"):
            await source(client).read()


async def test_a_zip_with_macosx_members_and_dotfiles_reads_only_the_export(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    seed(ns_emulator, products=5)
    ns_emulator.controls.export_format = "zip"
    ns_emulator.controls.export_zip_extras = True
    snapshot = await source(newstore).read()
    assert snapshot.atp == {f"SKU-{p}": 30 for p in range(5)}
    assert (snapshot.rows, snapshot.rows_without_key) == (15, 0)


@pytest.mark.parametrize("state", ["error", "cancelled", "queued"])
async def test_an_undocumented_state_is_waited_on_up_to_the_export_timeout(state: str) -> None:
    polls: list[str] = []
    now = [0.0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"id": "e1", "state": "processing"})
        polls.append(request.url.path)
        return httpx.Response(200, json={"id": "e1", "state": state})

    policy = PollPolicy(timeout_s=30, first_s=1, max_s=10)
    async with scripted(handler) as client:
        export = ExportSource(client, "sku", 3, policy, sleep=sleep, clock=lambda: now[0])
        with capture_logs() as logs:
            snapshot = await export.read()
    assert (snapshot.complete, snapshot.stopped) == (False, EXPORT_TIMEOUT)
    assert now[0] == 30 and len(polls) == 6  # 1, 2, 4, 8, 10, and the last at the deadline
    undocumented = [line for line in logs if "undocumented state" in line["event"]]
    assert len(undocumented) == 1 and undocumented[0]["state"] == state  # logged once


async def test_a_disabled_export_api_is_unavailable(
    newstore: NewStoreClient, ns_emulator: NewStoreEmulator
) -> None:
    ns_emulator.controls.export_api_enabled = False
    with pytest.raises(ExportUnavailable) as raised:
        await source(newstore).read()
    assert raised.value.status == 404


# --- a scripted NewStore, for what the emulator does not do ---------------------------------


def scripted(handler: Callable[[httpx.Request], httpx.Response]) -> NewStoreClient:
    def with_token(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v0/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return handler(request)

    settings = NewStoreSettings(base_url=NS_URL, shop="s", username="u", password="p")
    http = httpx.AsyncClient(transport=httpx.MockTransport(with_token))
    return NewStoreClient(settings, http=http, retry=FAST_RETRY)


async def test_a_403_from_the_export_api_is_unavailable_after_a_fresh_token() -> None:
    starts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(request.url.path)
        return httpx.Response(403, json={"error_code": "forbidden", "message": "no"})

    async with scripted(handler) as client:
        with pytest.raises(ExportUnavailable) as raised:
            await source(client).read()
    assert raised.value.status == 403
    assert len(starts) == 2  # NewStore answers an expired token with 403: retried once


async def test_the_download_is_retried_from_the_start_and_sends_no_token() -> None:
    rows = [{"product_id": "P", "fulfillment_node_id": "N", "atp": 4, "external_identifiers": []}]
    body = json.dumps(rows).encode()
    downloads: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v0/d/availabilities/bulk":
            return httpx.Response(201, json={"id": "e1", "state": "processing"})
        if request.url.path.startswith("/v0/d/availabilities/bulk/"):
            link = "https://storage.test/e1.json?signature=x"
            return httpx.Response(
                200, json={"state": "finished", "link": link, "last_updated_at": 9}
            )
        downloads.append(request)
        return httpx.Response(503 if len(downloads) == 1 else 200, content=body)

    async with scripted(handler) as client:
        snapshot = await source(client, match_field="product_id").read()
    assert (snapshot.atp, snapshot.cursor) == ({"P": 4}, 9)
    assert len(downloads) == 2
    assert all("authorization" not in request.headers for request in downloads)


# --- the file ---------------------------------------------------------------------------------

ROWS = [
    {
        "product_id": "P1",
        "fulfillment_node_id": node,
        "atp": atp,
        "external_identifiers": [
            {"catalog": "c", "locale": "l", "identifiers": {}},
            {"catalog": "c", "locale": "m", "identifiers": {"sku": "SKU-1"}},
        ],
    }
    for node, atp in (("A", 3), ("B", 4))
] + [{"product_id": "P2", "fulfillment_node_id": "A", "atp": 5, "external_identifiers": None}]


def as_file(data: bytes) -> Any:
    file = tempfile.TemporaryFile()  # noqa: SIM115 (the caller's `with` closes it)
    file.write(data)
    return file


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("part-1.json", data)
        archive.writestr("empty/", b"")
        archive.writestr("__MACOSX/._part-1.json", b"\x00\x05\x16\x07 not json")
        archive.writestr("nested/.DS_Store", b"\x00\x00\x00\x01Bud1")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "encode",
    [lambda d: d, zipped, gzip.compress, lambda d: b"\xef\xbb\xbf" + d],
    ids=["json", "zip", "gzip", "bom"],
)
def test_every_file_format_gives_the_same_rows(encode: Callable[[bytes], bytes]) -> None:
    with as_file(encode(json.dumps(ROWS).encode())) as file:
        read = [(r.product_id, r.fulfillment_node_id, r.atp) for r in export_rows(file)]
        assert read == [(r["product_id"], r["fulfillment_node_id"], r["atp"]) for r in ROWS]
        snapshot = read_export_file(file, "sku")
    # the SKU is the first identifier that names one; P2 has none and is counted, not summed
    assert (snapshot.atp, snapshot.rows, snapshot.rows_without_key) == ({"SKU-1": 7}, 2, 1)


def test_a_row_the_file_repeats_is_counted_once() -> None:
    repeated = [*ROWS, ROWS[0]]  # SKU-1 at node A twice: 3 + 4, not 3 + 4 + 3
    with as_file(json.dumps(repeated).encode()) as file:
        snapshot = read_export_file(file, "sku")
    assert (snapshot.atp, snapshot.nodes) == ({"SKU-1": 7}, {"SKU-1": {"A": 3, "B": 4}})
    assert (snapshot.rows, snapshot.duplicate_rows) == (2, 1)


def only_junk() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("__MACOSX/._x.json", b"\x00\x05")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data", [b'[{"product_id": "P"', b"PK\x03\x04broken", b"\x1f\x8bxx", only_junk()]
)
def test_an_unreadable_file_is_an_export_failure(data: bytes) -> None:
    with as_file(data) as file, pytest.raises(ExportFailed, match="unreadable"):
        read_export_file(file, "sku")


def test_rows_that_are_not_objects_count_as_rows_without_a_key() -> None:
    with as_file(json.dumps([1, None, ROWS[0], "x"]).encode()) as file:
        snapshot = read_export_file(file, "sku")
    assert (snapshot.atp, snapshot.rows, snapshot.rows_without_key) == ({"SKU-1": 3}, 1, 3)


def test_rows_of_another_shape_are_read_leniently_as_before() -> None:
    """A row whose identifiers are not objects makes the typed decoder refuse its batch:
    the batch is read again untyped, the other rows count as they always did."""
    odd = {**ROWS[0], "external_identifiers": ["SKU-9", {"identifiers": "SKU-8"}]}
    with as_file(json.dumps([odd, ROWS[1], {**ROWS[2], "atp": 2.0}]).encode()) as file:
        snapshot = read_export_file(file, "product_id")
    assert (snapshot.atp, snapshot.rows, snapshot.rows_without_key) == ({"P1": 7, "P2": 2}, 3, 0)
