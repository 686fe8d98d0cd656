"""`newstore-connector orders ...`: injection records and replays."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from cli.common import console, run
from connector.settings import Settings
from event.app import build_injector

orders_app = typer.Typer(no_args_is_help=True, help="Order injection records and replays.")
INJECTED = ("injected", "already_injected")


@orders_app.command("show")
def orders_show(order_id: str) -> None:
    """Print the injection record of one order."""

    async def show(settings: Settings) -> dict[str, Any] | None:
        async with build_injector(settings) as injector:
            return await injector.records.get(order_id)

    record = run(show)
    if record is None:
        console.print(f"no record for order {order_id}")
        raise typer.Exit(1)
    console.print_json(json.dumps(record))


@orders_app.command("failed")
def orders_failed(limit: int = typer.Option(100, help="at most this many")) -> None:
    """List the orders whose injection failed permanently."""

    async def failed(settings: Settings) -> list[dict[str, Any]]:
        async with build_injector(settings) as injector:
            return await injector.records.failed(limit)

    records = run(failed)
    table = Table("order id", "reason", "attempts", "updated at", "error")
    for record in records:
        error = record.get("error") or {}
        table.add_row(
            record["order_id"],
            str(record.get("reason")),
            str(record.get("attempts")),
            str(record.get("updated_at")),
            str(error.get("error_code") or error.get("message") or "")[:60],
        )
    console.print(table)
    console.print(f"{len(records)} failed order(s)")


@orders_app.command("replay")
def orders_replay(order_id: str) -> None:
    """Inject one order again, under the same outcome rules as the event app."""

    async def replay(settings: Settings) -> dict[str, Any]:
        async with build_injector(settings.validate_all()) as injector:
            return (await injector.inject(order_id)).summary()

    summary = run(replay)
    console.print_json(json.dumps(summary))
    if summary["outcome"] not in INJECTED:
        raise typer.Exit(1)


@orders_app.command("replay-failed")
def orders_replay_failed(limit: int = typer.Option(100, help="at most this many")) -> None:
    """Replay every order recorded as failed, one after another (e.g. after an outage)."""

    async def replay_all(settings: Settings) -> list[dict[str, Any]]:
        async with build_injector(settings.validate_all()) as injector:
            failed = await injector.records.failed(limit)
            return [(await injector.inject(r["order_id"])).summary() for r in failed]

    summaries = run(replay_all)
    table = Table("order id", "outcome", "NewStore order id", "reason")
    for summary in summaries:
        table.add_row(
            summary["order_id"],
            summary["outcome"],
            summary.get("newstore_order_id", ""),
            summary.get("reason", ""),
        )
    console.print(table)
    still_failing = sum(1 for s in summaries if s["outcome"] not in INJECTED)
    console.print(f"{len(summaries) - still_failing} of {len(summaries)} replayed into NewStore")
    if still_failing:
        raise typer.Exit(1)
