"""`newstore-connector orders ...`: injection records and replays."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from cli.common import console, run
from connector.http import NotFoundError
from connector.settings import Settings
from event.app import build_injector
from event.cancellation import Canceller
from event.envelope import is_resource_id
from event.handler import OrderInjector
from event.records import FAILURE_STATUSES

orders_app = typer.Typer(no_args_is_help=True, help="Order injection records and replays.")
INJECTED = ("injected", "already_injected")
CANCELLED = ("cancelled", "already_cancelled")


async def order_outcome(injector: OrderInjector, order_id: str) -> dict[str, Any] | None:
    """What is known of one order: NewStore's order id from its syncInfo (where a success is
    written), else its injection record, and its cancellation record if it has one."""
    record = await injector.records.get(order_id)
    try:
        synced = await injector.sync.injected_as(order_id)
    except NotFoundError:
        synced = None
    cancellation = await Canceller(injector).records.get(order_id)
    if synced is not None:
        outcome: dict[str, Any] = {
            "order_id": order_id,
            "status": "injected",
            "newstore_order_id": synced,
            "recorded_in": "the order's syncInfo (channel newstore)",
        }
        if record is not None:  # a failure the success superseded, or a success record
            outcome["record"] = record
    elif record is not None:
        outcome = record
    elif cancellation is None:
        return None
    else:
        outcome = {"order_id": order_id}
    if cancellation is not None:
        outcome["cancellation"] = cancellation
    return outcome


@orders_app.command("show")
def orders_show(order_id: str) -> None:
    """Print what is known of one order: injected (NewStore's id in its syncInfo) or its
    injection record, and its cancellation record."""

    async def show(settings: Settings) -> dict[str, Any] | None:
        async with build_injector(settings) as injector:
            return await order_outcome(injector, order_id)

    record = run(show)
    if record is None:
        console.print(f"no record for order {order_id}")
        raise typer.Exit(1)
    console.print_json(json.dumps(record))


@orders_app.command("failed")
def orders_failed(limit: int = typer.Option(100, help="at most this many")) -> None:
    """List the orders whose injection or cancellation failed permanently (an injection
    failure whose order has been injected since is superseded: deleted, not listed)."""

    async def failed(settings: Settings) -> list[dict[str, Any]]:
        async with build_injector(settings) as injector:
            injections = await injector.records.failed(limit, sync=injector.sync)
            cancellations = await Canceller(injector).records.failed(limit)
            return [{**r, "kind": "injection"} for r in injections] + [
                {**r, "kind": "cancellation"} for r in cancellations
            ]

    records = run(failed)
    table = Table("order id", "kind", "reason", "attempts", "updated at", "error")
    for record in records:
        error = record.get("error") or {}
        table.add_row(
            record["order_id"],
            record["kind"],
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
            await _know_the_failure(injector, order_id)
            return (await injector.inject(order_id)).summary()

    summary = run(replay)
    console.print_json(json.dumps(summary))
    if summary["outcome"] not in INJECTED:
        raise typer.Exit(1)


@orders_app.command("replay-failed")
def orders_replay_failed(limit: int = typer.Option(100, help="at most this many")) -> None:
    """Replay every order whose injection or cancellation is recorded as failed, one after
    another (e.g. after an outage)."""

    async def replay_all(settings: Settings) -> list[dict[str, Any]]:
        async with build_injector(settings.validate_all()) as injector:
            summaries = []
            for record in await injector.records.failed(limit, sync=injector.sync):
                injector.failure_recorded.add(record["order_id"], True)  # to be superseded
                summaries.append((await injector.inject(record["order_id"])).summary())
            canceller = Canceller(injector)
            for record in await canceller.records.failed(limit):
                summaries.append((await canceller.cancel(record["order_id"])).summary())
            return summaries

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
    still_failing = sum(1 for s in summaries if s["outcome"] not in INJECTED + CANCELLED)
    console.print(f"{len(summaries) - still_failing} of {len(summaries)} replayed into NewStore")
    if still_failing:
        raise typer.Exit(1)


async def _know_the_failure(injector: OrderInjector, order_id: str) -> None:
    """A replayed order's failure record is this process's to supersede: its success deletes
    it. An id that is no commercetools id is left to `inject` to refuse, unrequested."""
    if not is_resource_id(order_id):
        return
    record = await injector.records.get(order_id)
    if record is not None and record.get("status") in FAILURE_STATUSES:
        injector.failure_recorded.add(order_id, True)
