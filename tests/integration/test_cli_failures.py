"""Every CLI command against an unreachable host and a refused secret: one line on stderr
naming what failed, a non-zero exit code, no traceback, and no secret anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from sandbox.server import free_port
from sandbox.stack import CTP_CLIENT, NS_USER, Stack
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
    assert store_order  # the helper module is shared with the other CLI tests
