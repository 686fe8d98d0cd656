"""The `newstore-connector` command line against the sandbox, as an operator uses it."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from sandbox.server import free_port
from sandbox.stack import Stack
from tests.helpers import store_order

CONTAINER = "newstore-connector-orders"
runner = CliRunner()


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    return stack


def test_replay_injects_and_show_prints_the_record(cli_env: Stack) -> None:
    order_id = store_order(cli_env, 21)

    replay = runner.invoke(app, ["orders", "replay", order_id])
    show = runner.invoke(app, ["orders", "show", order_id])

    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.output)["outcome"] == "injected"
    record = json.loads(show.output)
    assert record["status"] == "injected"
    assert record["newstore_order_id"] == json.loads(replay.output)["newstore_order_id"]


def test_failed_lists_permanent_failures_and_replay_fixes_them(cli_env: Stack) -> None:
    order_id = store_order(cli_env, 22)
    order = cli_env.ctp.collections["order"].get(order_id)
    sku = order["lineItems"][0]["variant"].pop("sku")

    first = runner.invoke(app, ["orders", "replay", order_id])
    listed = runner.invoke(app, ["orders", "failed"], env={"COLUMNS": "200"})

    assert first.exit_code == 1
    assert order_id in listed.output and "missing_sku" in listed.output
    order["lineItems"][0]["variant"]["sku"] = sku  # the operator fixes the data
    fixed = runner.invoke(app, ["orders", "replay", order_id])
    assert json.loads(fixed.output)["outcome"] == "injected"
    assert order_id not in runner.invoke(app, ["orders", "failed"]).output


def test_show_unknown_order_exits_non_zero(cli_env: Stack) -> None:
    result = runner.invoke(app, ["orders", "show", "no-such-order"])
    assert result.exit_code == 1
    assert "no record" in result.output


def test_missing_configuration_is_named() -> None:
    result = runner.invoke(app, ["orders", "show", "x"])
    assert result.exit_code == 2
    assert "CTP_CLIENT_ID" in result.output


def test_event_app_refuses_to_start_without_configuration(tmp_path) -> None:
    started = subprocess.run(
        [sys.executable, "-c", "from event.app import serve; serve()"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PORT": str(free_port())},
        cwd=tmp_path,
    )
    assert started.returncode != 0
    assert "CTP_CLIENT_ID: Field required" in started.stdout + started.stderr


def test_replay_failed_heals_every_parked_order_after_an_outage(cli_env: Stack) -> None:
    orders = [store_order(cli_env, n) for n in (23, 24)]
    # Both have been failing (retrying) since January; a replay carries no publish time, so
    # the first recorded failure dates them.
    retrying = {"status": "retrying", "attempts": 3, "first_failed_at": "2026-01-01T00:00:00Z"}
    cli_env.ctp.seed(
        {
            "customObjects": [
                {"container": CONTAINER, "key": o, "value": {"order_id": o, **retrying}}
                for o in orders
            ]
        }
    )
    httpx.put(f"{cli_env.newstore_url}/_sandbox/controls", json={"fault_rate": 1.0})
    for order_id in orders:  # NewStore still down: each is parked as failed
        runner.invoke(app, ["orders", "replay", order_id], env={"ORDER_PARK_AFTER_S": "60"})
    listed = runner.invoke(app, ["orders", "failed"], env={"COLUMNS": "200"}).output
    assert all(o in listed for o in orders)
    httpx.put(f"{cli_env.newstore_url}/_sandbox/controls", json={"fault_rate": 0.0})

    result = runner.invoke(app, ["orders", "replay-failed"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "2 of 2 replayed into NewStore" in result.output
    assert {o.external_id for o in cli_env.newstore.orders.values()} == set(orders)


def test_show_tells_an_injected_and_cancelled_order(cli_env: Stack) -> None:
    order_id = store_order(cli_env, 25)
    replay = json.loads(runner.invoke(app, ["orders", "replay", order_id]).output)
    cli_env.ctp.seed(
        {
            "customObjects": [
                {
                    "container": "newstore-connector-cancellations",
                    "key": order_id,
                    "value": {"order_id": order_id, "status": "cancelled", "source": "connector"},
                }
            ]
        }
    )

    shown = json.loads(runner.invoke(app, ["orders", "show", order_id]).output)

    assert (shown["status"], shown["newstore_order_id"]) == (
        "injected",
        replay["newstore_order_id"],
    )
    assert "syncInfo" in shown["recorded_in"]
    assert shown["cancellation"]["status"] == "cancelled"
