"""Every entry point names every bad variable at once, one JSON line each, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.server import free_port

ROOT = str(Path(__file__).resolve().parents[2])  # this checkout, not an installed copy

COMMON_BAD = {"NEW_STORE_BASE_URL": "not-a-url", "AUTH_BEARER_TOKEN": "too-short"}
EXPECTED_COMMON = ["CTP_CLIENT_ID", "CTP_CLIENT_SECRET", "CTP_PROJECT_KEY", "NEW_STORE_SHOP"]
ENTRY_POINTS = {
    "cli.serve event": (["-m", "cli.serve", "event"], {"ORDER_PARK_AFTER_S": "1"}),
    "cli.serve job": (["-m", "cli.serve", "job"], {"INVENTORY_CONCURRENCY": "0"}),
    "newstore-connector-event": (
        ["-c", "from event.app import serve; serve()"],
        {"ORDER_PARK_AFTER_S": "1"},
    ),
    "newstore-connector-job": (
        ["-c", "from job.app import serve; serve()"],
        {"INVENTORY_CONCURRENCY": "0"},
    ),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_an_app_names_every_bad_variable_at_once_without_a_traceback(
    entry: str, tmp_path: Path
) -> None:
    arguments, own_bad = ENTRY_POINTS[entry]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "PORT": str(free_port())}
    env |= COMMON_BAD | own_bad
    started = subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # no .env file
    )

    output = started.stdout + started.stderr
    assert started.returncode != 0
    assert "Traceback" not in output
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    refused = [line["variable"] for line in lines if "variable" in line]
    expected = [*EXPECTED_COMMON, "NEW_STORE_BASE_URL", "AUTH_BEARER_TOKEN", *own_bad]
    assert sorted(refused) == sorted(set(expected))  # each once, all in one start
    assert "too-short" not in output and "not-a-url" not in output  # values never echoed
