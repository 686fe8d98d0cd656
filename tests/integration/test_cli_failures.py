"""Every CLI command against an unreachable host and a refused secret: one line on stderr
naming what failed, a non-zero exit code, no traceback, and no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from event.handler import OrderInjector
from sandbox.server import free_port
from sandbox.stack import CTP_CLIENT, NS_USER, PROJECT_KEY, Stack
from tests.helpers import store_order

runner = CliRunner()
ROOT = str(Path(__file__).resolve().parents[2])
WRONG_CTP_SECRET = "wrong-ctp-secret-8d1f"
WRONG_NS_PASSWORD = "wrong-ns-password-52c9"
SECRETS = (CTP_CLIENT[1], NS_USER[1], WRONG_CTP_SECRET, WRONG_NS_PASSWORD)
ORDER = "0b4c7a52-7d4e-4f4e-9a39-3f1e1f4c0d11"
COMMANDS = {
    "orders show": ["orders", "show", ORDER],
    "orders list": ["orders", "list", "--status", "all"],
    "orders failed": ["orders", "failed"],
    "orders dismiss": ["orders", "dismiss", ORDER, "--reason", "test order"],
    "orders replay": ["orders", "replay", ORDER],
    "orders replay-failed": ["orders", "replay-failed"],
    "inventory sync": ["inventory", "sync"],
    "inventory sync --dry-run": ["inventory", "sync", "--dry-run", "--json"],
    "post-deploy": ["post-deploy"],
    "pre-undeploy": ["pre-undeploy"],
}
EXIT_UPSTREAM = 3


def unreachable(stack: Stack) -> tuple[dict[str, str], str]:
    closed = free_port()
    down = f"http://127.0.0.1:{closed}"
    env = stack.env() | {"CTP_API_URL": down, "CTP_AUTH_URL": down, "NEW_STORE_BASE_URL": down}
    return env, f"connection refused by 127.0.0.1:{closed}"


def refused_secrets(stack: Stack) -> tuple[dict[str, str], str]:
    wrong = {"CTP_CLIENT_SECRET": WRONG_CTP_SECRET, "NEW_STORE_PASSWORD": WRONG_NS_PASSWORD}
    return stack.env() | wrong, "token request refused"


SCENARIOS = {"unreachable": unreachable, "wrong secret": refused_secrets}


def assert_one_clear_line(stderr: str, stdout: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in stdout + stderr
    for secret in SECRETS:
        assert secret not in stdout + stderr


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_against_a_failing_upstream_is_one_line_and_exit_3(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, command: str, scenario: str
) -> None:
    env, expected = SCENARIOS[scenario](stack)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = runner.invoke(app, COMMANDS[command])

    assert result.exit_code == EXIT_UPSTREAM, result.output
    assert_one_clear_line(result.stderr, result.stdout, expected)
    if scenario == "wrong secret":
        assert "(HTTP 401)" in result.stderr and "127.0.0.1" in result.stderr  # the host


@pytest.mark.parametrize("command", ["orders replay", "inventory sync"])
def test_the_installed_command_prints_no_log_lines_or_traceback(
    stack: Stack, command: str, tmp_path: Path
) -> None:
    """A real process: nothing but the one line reaches stderr (logs included)."""
    env, expected = unreachable(stack)
    ran = subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *COMMANDS[command]],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, **env},
        cwd=tmp_path,
    )

    assert ran.returncode == EXIT_UPSTREAM
    assert_one_clear_line(ran.stderr, ran.stdout, expected)


def test_debug_shows_the_traceback_without_local_variables(stack: Stack, tmp_path: Path) -> None:
    env, _ = refused_secrets(stack)
    ran = subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", "--debug", "orders", "failed"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "COLUMNS": "200", **env},
        cwd=tmp_path,
    )

    assert ran.returncode != 0
    assert "Traceback" in ran.stderr and "UpstreamError" in ran.stderr
    assert " locals " not in ran.stderr  # rich's box of each frame's variables
    for secret in SECRETS:
        assert secret not in ran.stdout + ran.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_bad_variable_is_one_line_and_exit_2(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("CTP_REGION", "mars-1.gcp")
    monkeypatch.setenv("INVENTORY_CONCURRENCY", "0")

    result = runner.invoke(app, COMMANDS[command])

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: configuration: ") for line in lines)
    named = {line.removeprefix("error: configuration: ").split(":")[0] for line in lines}
    assert {"CTP_CLIENT_ID", "CTP_CLIENT_SECRET", "CTP_PROJECT_KEY", "CTP_REGION"} <= named
    assert len(named) == len(lines)  # one line per variable
    assert "Traceback" not in result.output


def test_limit_out_of_range_is_a_usage_error_not_a_traceback() -> None:
    for limit in ("0", "501"):
        result = runner.invoke(app, ["orders", "list", "--limit", limit])
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert "Invalid value for '--limit'" in result.output


def test_a_dismissed_record_stays_but_is_no_longer_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    typo = "no-such-order-1"
    assert runner.invoke(app, ["orders", "replay", typo]).exit_code == 1  # order_not_found

    dismissed = runner.invoke(app, ["orders", "dismiss", typo, "--reason", "mistyped id"])
    failed = runner.invoke(app, ["orders", "failed", "--json"])
    replayed = runner.invoke(app, ["orders", "replay-failed", "--json"])
    shown = runner.invoke(app, ["orders", "show", typo, "--json"])
    again = runner.invoke(app, ["orders", "dismiss", typo, "--reason", "twice"])

    assert dismissed.exit_code == 0, dismissed.output
    assert typo not in failed.stdout
    assert replayed.exit_code == 0 and replayed.stdout.strip() == "[]"
    assert '"dismissed_reason": "mistyped id"' in shown.stdout
    assert '"status": "dismissed"' in shown.stdout
    assert again.exit_code == 1 and "is dismissed, not failed or retrying" in again.stderr


CONTAINER = "newstore-connector-orders"


def seed_records(stack: Stack, status: str, count: int, prefix: str) -> list[str]:
    keys = [f"{prefix}{i:07d}-7d4e-4f4e-9a39-3f1e1f4c0d11" for i in range(count)]  # UUID-long
    value = {"status": status, "reason": "order_not_found", "attempts": 1}
    objects = [{"container": CONTAINER, "key": k, "value": {"order_id": k, **value}} for k in keys]
    stack.ctp.seed({"customObjects": objects})
    return keys


def custom_object_queries(stack: Stack) -> int:
    by_endpoint = httpx.get(f"{stack.ctp_url}/_sandbox/counters").json()["by_endpoint"]
    return sum(n for k, n in by_endpoint.items() if k.startswith(f"GET /{PROJECT_KEY}/custom-"))


def test_listing_pages_past_500_and_the_count_line_honours_the_limit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "80")  # what a CI log or a pipe would say
    failed = seed_records(stack, "failed", 1203, "f")
    retrying = seed_records(stack, "retrying", 7, "r")
    dismissed = seed_records(stack, "dismissed", 3, "d")
    httpx.post(f"{stack.ctp_url}/_sandbox/counters/reset")

    listing = ["orders", "list", "--status", "failed", "--all", "--limit", "500", "--json"]
    everything = runner.invoke(app, listing)
    queries = custom_object_queries(stack)
    first = runner.invoke(app, ["orders", "list", "--limit", "500"])
    every = runner.invoke(app, ["orders", "list", "--status", "all", "--all", "--json"])
    only_retrying = runner.invoke(app, ["orders", "list", "--status", "retrying", "--json"])

    listed = [r["order_id"] for r in json.loads(everything.stdout)["records"]]
    assert listed == failed  # all 1,203, in key order, none twice
    assert queries == 3  # 500 + 500 + 203
    assert f"500 failed record(s); more after {failed[499]}" in first.stdout
    assert failed[0] in first.stdout and failed[499] in first.stdout  # ids whole, piped
    assert failed[500] not in first.stdout
    every_id = [r["order_id"] for r in json.loads(every.stdout)["records"]]
    assert sorted(every_id) == sorted([*failed, *retrying, *dismissed])
    assert [r["order_id"] for r in json.loads(only_retrying.stdout)["records"]] == retrying


def test_replay_failed_pages_and_stays_under_the_newstore_rate_limit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    orders = [store_order(stack, n) for n in range(1, 31)]
    value = {"status": "failed", "reason": "transient_failure_parked", "attempts": 3}
    stack.ctp.seed(
        {
            "customObjects": [
                {"container": CONTAINER, "key": o, "value": {"order_id": o, **value}}
                for o in orders
            ]
        }
    )
    monkeypatch.setenv("NEW_STORE_INJECT_RATE", "20")

    result = runner.invoke(
        app, ["orders", "replay-failed", "--limit", "7", "--concurrency", "16", "--json"]
    )

    assert result.exit_code == 0, result.output
    summaries = json.loads(result.stdout)
    assert sorted(s["order_id"] for s in summaries) == sorted(orders)  # five pages, each once
    assert all(s["outcome"] == "injected" for s in summaries)
    counters = httpx.get(f"{stack.newstore_url}/_sandbox/counters").json()["by_endpoint"]
    injections = {k: v for k, v in counters.items() if "fulfill_order" in k}
    assert sum(injections.values()) == 30  # one each, no 429 (it would be counted apart)
    assert not any("rate limited" in k for k in injections)


def test_replay_failed_keeps_at_most_concurrency_replays_in_flight(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    orders = [store_order(stack, n) for n in range(1, 13)]
    value = {"status": "failed", "reason": "transient_failure_parked", "attempts": 1}
    objects = [
        {"container": CONTAINER, "key": o, "value": {"order_id": o, **value}} for o in orders
    ]
    stack.ctp.seed({"customObjects": objects})
    in_flight, most = 0, 0
    original = OrderInjector.inject

    async def counting(self: OrderInjector, *args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.02)  # let the others start, if the bound lets them
            return await original(self, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(OrderInjector, "inject", counting)

    result = runner.invoke(app, ["orders", "replay-failed", "--concurrency", "3", "--json"])

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 12
    assert most == 3
