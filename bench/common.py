"""What the benchmarks share: servers in their own processes, /proc readings, a light load
generator, and the Pub/Sub push envelopes it sends.

Every server (each emulator, the app under test) runs as its own uvicorn process, so that
the operating system accounts CPU time and memory to each one separately, as it would in
production. `python -m bench.common serve KIND PORT` is the launcher those processes run.

The load generator speaks HTTP/1.1 over plain asyncio streams rather than through httpx:
it shares the machine's two cores with everything it measures, and an httpx request costs
several times the CPU of writing a request and reading a Content-Length body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from connector.deploy import CHANNEL_DRAFT
from sandbox import catalog
from sandbox.server import LOOPBACK, free_port
from sandbox.stack import CTP_CLIENT, NS_USER, PROJECT_KEY, Stack

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOG_DIR = Path(tempfile.gettempdir()) / "newstore-connector-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUBSCRIPTION = "projects/sandbox-gcp/subscriptions/newstore-connector-event"

Json = dict[str, Any]
# Prefixes of the connector's configuration variables (the tests clear the same ones).
OWN_SETTINGS = ("CTP_", "NEW_STORE_", "ORDER_", "CONNECT_", "AUTH_", "LIFECYCLE_")
# The NewStore emulator's controls in a benchmark process, as JSON (`EmulatorControls`).
NEWSTORE_CONTROLS_VARIABLE = "BENCH_NEWSTORE_CONTROLS"
# The benchmarks' NewStore is a production tenant (200 calls/s, docs.newstore.com
# "API rate limiting"), as `bench.inventory_bench --newstore-rate 200` assumes; its other
# limits (fulfill_order's 20/s) are the emulator's defaults. Set the variable to change it.
BENCH_NEWSTORE_CONTROLS: Json = {"tenant_rate_limit": 200.0}

# --- servers in their own processes ---------------------------------------------------------


@dataclass
class ServerProcess:
    """One uvicorn server in a child process; `pid` is the Python process itself."""

    kind: str
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_kib(self.pid) / 1024

    def stop(self) -> None:
        """Terminate this one process (by its own pid) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


def start_server(
    kind: str,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    ready_path: str = "/_sandbox/controls",
) -> ServerProcess:
    """Launch `python -m bench.common serve KIND PORT`; return once it answers."""
    port = free_port()
    # One log per server and port: benchmarks that run at the same time do not collide.
    log_path = (log_dir or LOG_DIR) / f"{kind}-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    child_env = {**_inherited_env(), **(env or {})}
    # The project first, then whatever the caller had (e.g. a profiling or patch directory).
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.common", "serve", kind, str(port)],
        env=child_env,
        # Not the project root: the apps must not pick up a developer's `.env` file.
        cwd=log_path.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(kind, f"http://{LOOPBACK}:{port}", process, log)
    try:
        wait_ready(server, ready_path)
    except BaseException:
        server.stop()
        raise
    return server


def _inherited_env() -> dict[str, str]:
    """This process's environment without the connector's own settings: a developer's
    `CTP_*` or `AUTH_*` variables must not change what is measured."""
    return {name: value for name, value in os.environ.items() if not name.startswith(OWN_SETTINGS)}


def wait_ready(server: ServerProcess, path: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.kind} exited with {server.process.returncode}")
            try:
                if client.get(f"{server.url}{path}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{server.kind} did not answer on {server.url} within {timeout_s:g} s")


def event_app_env(ctp_url: str, newstore_url: str) -> dict[str, str]:
    """The variables that point a production-configured event app at the emulators."""
    return Stack(ctp_url=ctp_url, newstore_url=newstore_url, pubsub_url="").env()


def _serve(kind: str, port: int) -> None:
    """The child side of `start_server`."""
    import uvicorn

    if kind == "event":
        # Exactly as production runs it: the console entry point `newstore-connector-event`,
        # settings from the environment, its own uvicorn options, on $PORT. It listens on
        # every interface, as in a container; the benchmark only ever sends to loopback.
        from event.app import serve

        os.environ["PORT"] = str(port)
        serve()
        return
    if kind == "lifecycle":
        # Likewise: `newstore-connector-lifecycle`, LIFECYCLE_API_KEY from the environment.
        from lifecycle.app import serve as serve_lifecycle

        os.environ["PORT"] = str(port)
        serve_lifecycle()
        return
    if kind == "ctp":
        from sandbox import commercetools

        # with the `newstore` channel that post-deploy creates (the order syncInfo's)
        seed = {**catalog.commercetools_seed(), "channels": [CHANNEL_DRAFT]}
        app = commercetools.create_app(
            project_key=PROJECT_KEY, clients=dict([CTP_CLIENT]), seed=seed
        )
    elif kind == "newstore":
        from sandbox import newstore

        raw = os.environ.get(NEWSTORE_CONTROLS_VARIABLE)
        controls = json.loads(raw) if raw else BENCH_NEWSTORE_CONTROLS
        app = newstore.create_app(
            users=dict([NS_USER]), seed=catalog.newstore_seed(), controls=controls
        )
    elif kind == "pubsub":
        from sandbox import pubsub

        # Pub/Sub's own defaults (retry policy 10 s .. 600 s, ack deadline 10 s); the
        # benchmark sets the rest through /_sandbox/controls and the subscription.
        app = pubsub.create_app()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)


def server_stack() -> dict[str, str]:
    """Which event loop and HTTP parser uvicorn's `auto` settings pick on this machine."""
    picked = {"loop": "asyncio", "http": "h11"}
    try:
        import uvloop  # noqa: F401

        picked["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        picked["http"] = "httptools"
    except ImportError:
        pass
    return picked


# --- /proc ------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime + stime of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the peak resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def machine_busy_seconds() -> float:
    """CPU seconds that all cores of the machine spent busy so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# --- orders and envelopes ------------------------------------------------------------------


@dataclass(frozen=True)
class SeededOrder:
    order_id: str
    number: int
    order: Json


def order_batch(first_number: int, count: int) -> tuple[list[SeededOrder], Json]:
    """`count` realistic orders and the `/_sandbox/seed` body that stores them unpublished."""
    orders: list[SeededOrder] = []
    payments: list[Json] = []
    for number in range(first_number, first_number + count):
        draft = catalog.order_draft(number)
        order = {**draft.order, "id": str(uuid.uuid4()), "version": 1}
        orders.append(SeededOrder(order["id"], number, order))
        payments.append(draft.payment)
    return orders, {"payments": payments, "orders": [o.order for o in orders]}


def seed_orders(ctp_url: str, orders_seed: Json, batch: int = 500) -> None:
    """Store orders in the commercetools emulator without publishing, a few hundred a call."""
    with httpx.Client(base_url=ctp_url, timeout=60, trust_env=False) as client:
        payments, orders = orders_seed["payments"], orders_seed["orders"]
        for start in range(0, len(orders), batch):
            body = {
                "payments": payments[start : start + batch],
                "orders": orders[start : start + batch],
            }
            client.post("/_sandbox/seed", json=body).raise_for_status()


def order_created_push(seeded: SeededOrder, message_id: str) -> bytes:
    """A Pub/Sub push request body: an `OrderCreated` message in the Platform format, with
    the order embedded as commercetools sends it (the app fetches it again all the same)."""
    message = {
        "notificationType": "Message",
        "projectKey": PROJECT_KEY,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, message_id)),
        "version": 1,
        "sequenceNumber": 1,
        "resource": {"typeId": "order", "id": seeded.order_id},
        "resourceVersion": 1,
        "type": "OrderCreated",
        "order": seeded.order,
        "createdAt": "2026-11-29T10:00:00.000Z",
        "lastModifiedAt": "2026-11-29T10:00:00.000Z",
    }
    data = base64.b64encode(json.dumps(message, separators=(",", ":")).encode()).decode()
    envelope = {
        "message": {
            "data": data,
            "attributes": {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-11-29T10:00:00.000Z",
            "publish_time": "2026-11-29T10:00:00.000Z",
        },
        "subscription": SUBSCRIPTION,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


# --- emulator controls and counters --------------------------------------------------------


def put_controls(url: str, **controls: Any) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls, trust_env=False).raise_for_status()


def reset_counters(url: str) -> None:
    httpx.post(f"{url}/_sandbox/counters/reset", trust_env=False).raise_for_status()


def read_counters(url: str) -> dict[str, int]:
    reply = httpx.get(f"{url}/_sandbox/counters", trust_env=False)
    reply.raise_for_status()
    return dict(reply.json()["by_endpoint"])


def endpoint_category(label: str) -> str:
    """What an emulator endpoint label (`"METHOD /route"`) is, for the connector."""
    method, _, path = label.partition(" ")
    if path.endswith(("(fault)", "(429)")):
        return "injected_fault"
    if path.endswith("(rate limited)"):  # refused by the emulator's own rate limit: a 429
        return "rate_limited"
    if path.endswith(("/oauth/token", "/v0/token", "/openid-connect/token")):
        return "token"
    if method == "GET" and path.startswith(f"/{PROJECT_KEY}/orders/"):
        return "order_read"
    if method == "POST" and path == "/v0/d/fulfill_order":
        return "injection"
    if method == "POST" and path == f"/{PROJECT_KEY}/custom-objects":
        return "record_write"
    if method == "POST" and path.startswith(f"/{PROJECT_KEY}/orders/"):
        return "sync_write"  # updateSyncInfo: NewStore's order id onto the order
    if method == "GET" and path.startswith(f"/{PROJECT_KEY}/channels/"):
        return "channel_read"
    if method == "GET" and path.startswith(f"/{PROJECT_KEY}/custom-objects/"):
        return "record_read"
    return "other"


# What each API's requests are for the connector, listed even when none were made.
CATEGORIES = {
    "commercetools": (
        "token",
        "channel_read",
        "order_read",
        "sync_write",
        "record_write",
        "record_read",
    ),
    "newstore": ("token", "injection"),
}


def by_category(counters: Mapping[str, int], api: str | None = None) -> dict[str, int]:
    totals: dict[str, int] = dict.fromkeys(CATEGORIES.get(api or "", ()), 0)
    for label, count in counters.items():
        category = endpoint_category(label)
        totals[category] = totals.get(category, 0) + count
    return totals


# --- a light HTTP/1.1 load generator --------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads Content-Length answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        try:
            return await self._read_response(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            await self.close()  # the next request opens a new connection
            raise

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(share * len(ordered))))
    return ordered[rank - 1]


def write_json(path: Path, data: Json) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str]) -> None:
    if len(argv) == 3 and argv[0] == "serve":
        _serve(argv[1], int(argv[2]))
        return
    raise SystemExit(
        "usage: python -m bench.common serve {ctp|newstore|pubsub|event|lifecycle} PORT"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
