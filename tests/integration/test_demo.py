"""The README's first command: the demo runs the whole lifecycle and exits 0."""

from __future__ import annotations

from typer.testing import CliRunner

from sandbox.cli import app


def test_demo_runs_end_to_end() -> None:
    result = CliRunner().invoke(app, ["demo", "--orders", "2"], env={"COLUMNS": "160"})

    assert result.exit_code == 0, result.output
    for step in (
        "subscription newstore-connector-order-created created",
        "orders injected",
        "event stream integration commercetools-connector created",
        "shipmentState Shipped, 1 delivery, tracking UPS 1Z999AA10123456784",
        "cancelled in commercetools -> NewStore order",
        "inventory sync",
        "per-store stock (supply channels)",
        "New York Store",
        "failed 0",
        "deleted",
        "demo finished",
    ):
        assert step in result.output
    assert "not injected" not in result.output
