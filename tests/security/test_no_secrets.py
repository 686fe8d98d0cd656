"""No log line, error or answer of the event app contains a secret, on any outcome path.

The event app runs as its own process, as deployed, against the sandbox emulators; its whole
stdout and stderr and every answer are scanned for the configured secrets (CTP client
secret, NewStore password, the bearer token of AUTH_BEARER_TOKEN), the Basic credentials
built from them, and the access tokens the emulators issued to it. Each run also checks
that the outcome paths it meant to provoke did happen, so that the scan covers them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.server import free_port
from sandbox.stack import CTP_CLIENT, NS_USER, Stack, running_stack
from tests.helpers import order_created_message, push_envelope, store_order

BEARER = "bearer-secret-for-the-scan-0123456789abcdef"
WRONG_NS_PASSWORD = "wrong-newstore-password-5a1b"
WRONG_CTP_SECRET = "wrong-ctp-client-secret-9c2d"

# The image's entry command: the event app exactly as production runs it.
EVENT_APP = ["-m", "cli.serve"]


@dataclass
class Run:
    """One app process: what it printed and what it answered."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[httpx.Response] = field(default_factory=list)
    output: str = ""

    def post(self, body: Any = None, content: bytes | None = None, **headers: str) -> Any:
        sent = {**self.headers, **headers}
        with httpx.Client(timeout=30) as client:
            if content is None:
                response = client.post(f"{self.url}/event", json=body, headers=sent)
            else:
                response = client.post(f"{self.url}/event", content=content, headers=sent)
        self.answers.append(response)
        return response.json()

    def deliver(self, order_id: str, published_at: str | None = None, **kwargs: Any) -> Any:
        message = order_created_message(order_id, **kwargs)
        return self.post(push_envelope(message, published_at=published_at))

    def transcript(self) -> str:
        answers = [f"{r.status_code} {json.dumps(dict(r.headers))} {r.text}" for r in self.answers]
        return "\n".join([self.output, *answers])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(with_event_app=False) as running:
        yield running


@contextmanager
def event_app(stack: Stack, tmp_path: Path, program: list[str], **env: str) -> Iterator[Run]:
    port = free_port()
    log_file = tmp_path / f"app-{port}.log"
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "APP": "event",
        "PORT": str(port),
        **stack.env(),
        **env,
    }
    run = Run(url=f"http://127.0.0.1:{port}")
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, *program], env=environment, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            _wait_started(process, run.url)
            yield run
        finally:
            process.terminate()
            process.wait(timeout=15)
            run.output = log_file.read_text()


def _wait_started(process: subprocess.Popen[bytes], url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the event app did not start")


def set_controls(url: str, **controls: Any) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls).raise_for_status()


def issued_tokens(stack: Stack) -> list[str]:
    return [*stack.ctp.tokens, *stack.newstore.tokens]


def assert_no_secret(transcript: str, secrets: list[str]) -> None:
    basic = base64.b64encode(f"{CTP_CLIENT[0]}:{CTP_CLIENT[1]}".encode()).decode()
    for secret in [*secrets, basic]:
        assert secret and secret not in transcript, f"a secret leaked ({len(secret)} chars)"


def outcomes(run: Run) -> set[tuple[int, str]]:
    """(status, reason or outcome or error code) of every answer."""
    seen = set()
    for response in run.answers:
        body = response.json()
        label = body.get("reason") or body.get("outcome") or body.get("error")
        seen.add((response.status_code, str(label)))
    return seen


# --- the runs ------------------------------------------------------------------------------


def test_every_outcome_of_the_event_app_keeps_secrets(stack: Stack, tmp_path: Path) -> None:
    with event_app(
        stack,
        tmp_path,
        EVENT_APP,
        AUTH_BEARER_TOKEN=BEARER,
    ) as run:
        run.headers = {"authorization": f"Bearer {BEARER}"}
        provoke_every_outcome(stack, run)
        provoke_refusals(run)

    assert {
        (200, "injected"),
        (200, "already_injected"),
        (200, "ignored"),
        (200, "order_not_found"),
        (200, "missing_sku"),
        (200, "order_too_large"),
        (200, "newstore_rejected"),
        (200, "unreadable_order"),
        (200, "transient_failure_parked"),
        (503, "transient_failure"),
        (400, "malformed_push_request"),
        (400, "json_too_deep"),
        (413, "payload_too_large"),
        (401, "unauthenticated"),
        (403, "forbidden"),
    } <= outcomes(run)
    assert run.output.count('"message": "delivery"') >= 15  # the logs were captured
    assert run.output.count('"message": "request refused"') == 5
    assert_no_secret(run.transcript(), [CTP_CLIENT[1], NS_USER[1], BEARER, *issued_tokens(stack)])


def provoke_every_outcome(stack: Stack, run: Run) -> None:
    orders = stack.ctp.collections["order"]
    injected = store_order(stack, 101)
    run.deliver(injected)
    run.deliver(injected)  # redelivery: the same NewStore order
    # NewStore already holds another payload under this order's external_id: already_injected
    changed = store_order(stack, 150)
    earlier = dict(stack.newstore.orders[injected].payload, external_id=changed)
    stack.newstore.inject(earlier)
    run.deliver(changed)
    run.deliver(store_order(stack, 102), cloud_events=True)
    subscription_test = {"typeId": "subscription", "id": "s"}
    run.post(push_envelope({"notificationType": "ResourceCreated", "resource": subscription_test}))
    run.post(push_envelope({**order_created_message("o"), "type": "OrderStateChanged"}))
    run.deliver("00000000-0000-0000-0000-000000000000")  # order_not_found
    no_sku = store_order(stack, 103)
    del orders.get(no_sku)["lineItems"][0]["variant"]["sku"]
    run.deliver(no_sku)
    too_large = store_order(stack, 104)
    orders.get(too_large)["lineItems"][0]["quantity"] = 101
    run.deliver(too_large)
    rejected = store_order(stack, 105)
    orders.get(rejected)["lineItems"][0]["variant"]["sku"] = "NOT-IN-NEWSTORE"
    run.deliver(rejected)
    unreadable = store_order(stack, 106)
    orders.get(unreadable)["lineItems"][0]["quantity"] = "many"
    run.deliver(unreadable)
    provoke_transient_failures(stack, run)
    provoke_token_expiry(stack, run)


def provoke_transient_failures(stack: Stack, run: Run) -> None:
    outage = store_order(stack, 107)
    set_controls(stack.newstore_url, fault_rate=1.0)
    run.deliver(outage)  # 503 retry
    run.deliver(outage, published_at="2026-01-01T00:00:00Z")  # old enough: parked as failed
    set_controls(stack.newstore_url, fault_rate=0.0, rate_limit_rate=1.0, retry_after_s=60)
    run.deliver(store_order(stack, 108))  # 429 -> 503
    set_controls(stack.newstore_url, rate_limit_rate=0.0, lost_response_rate=1.0)
    lost = store_order(stack, 109)
    run.deliver(lost)
    set_controls(stack.newstore_url, lost_response_rate=0.0)
    run.deliver(lost)  # healed: the same order
    set_controls(stack.ctp_url, fault_rate=1.0)
    run.deliver(store_order(stack, 110))  # commercetools down: nothing can be recorded
    set_controls(stack.ctp_url, fault_rate=0.0)


def provoke_token_expiry(stack: Stack, run: Run) -> None:
    stack.ctp.expire_tokens()
    stack.newstore.expire_tokens()
    run.deliver(store_order(stack, 111))  # both clients fetch new tokens


def provoke_refusals(run: Run) -> None:
    run.post(content=b"{not json")
    run.post({"message": {"data": "%%% not base64"}})
    run.post({"message": {}})
    run.post(content=("[" * 70 + "]" * 70).encode())
    run.post(content=b"x" * (1024 * 1024 + 1))
    run.post({}, authorization="")  # missing -> 401
    run.post({}, authorization=f"Bearer {BEARER[:-1]}?")  # wrong -> 403
    basic = base64.b64encode(f"{CTP_CLIENT[0]}:{CTP_CLIENT[1]}".encode()).decode()
    run.post({}, authorization=f"Basic {basic}")  # someone sends the CTP credentials


def test_refused_newstore_credentials_and_a_crash_keep_secrets(
    stack: Stack, tmp_path: Path
) -> None:
    with event_app(stack, tmp_path, EVENT_APP, NEW_STORE_PASSWORD=WRONG_NS_PASSWORD) as run:
        refused = run.deliver(store_order(stack, 201))
        deep = "[" * 100_000 + "]" * 100_000  # refused by the JSON depth guard, before any work
        crashed = run.post(
            {"message": {"data": base64.b64encode(deep.encode()).decode(), "messageId": "m"}}
        )

    assert refused["outcome"] == "retry"
    assert crashed["error"] == "json_too_deep"
    assert_no_secret(run.transcript(), [CTP_CLIENT[1], WRONG_NS_PASSWORD, *issued_tokens(stack)])


def test_refused_commercetools_credentials_keep_secrets(stack: Stack, tmp_path: Path) -> None:
    with event_app(stack, tmp_path, EVENT_APP, CTP_CLIENT_SECRET=WRONG_CTP_SECRET) as run:
        refused = run.deliver(store_order(stack, 301))

    assert refused["outcome"] == "retry"
    assert_no_secret(run.transcript(), [WRONG_CTP_SECRET, NS_USER[1]])


@pytest.mark.parametrize(
    ("broken", "secret"),
    [
        ({"CTP_REGION": "mars"}, None),
        ({"NEW_STORE_BASE_URL": "not a url"}, None),
        ({"AUTH_BEARER_TOKEN": "too-short-secret"}, "too-short-secret"),
    ],
    ids=["region", "url", "bearer"],
)
def test_configuration_errors_keep_secrets(
    stack: Stack, tmp_path: Path, broken: dict[str, str], secret: str | None
) -> None:
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "PORT": str(free_port()),
        "APP": "event",
        **stack.env(),
        **broken,
    }

    result = subprocess.run(
        [sys.executable, *EVENT_APP],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot start: " in output and "Traceback" not in output
    assert next(iter(broken)) in output  # the message names the variable
    assert_no_secret(output, [CTP_CLIENT[1], NS_USER[1], *([secret] if secret else [])])
