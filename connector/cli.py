"""The `newstore-connector` command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from connector.logs import configure_logging
from connector.settings import ConfigError, Settings
from job.cli import inventory_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
orders_app = typer.Typer(no_args_is_help=True, help="Order injection records and replays.")
app.add_typer(orders_app, name="orders")
app.add_typer(inventory_app, name="inventory")
console = Console()

T = TypeVar("T")
INJECTED = ("injected", "already_injected")


def run(coroutine_factory: Callable[[Settings], Awaitable[T]]) -> T:
    """Run one async command; a configuration error is a clear message and exit code 2."""
    configure_logging("WARNING")
    try:
        return asyncio.run(coroutine_factory(Settings()))
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None


@orders_app.command("show")
def orders_show(order_id: str) -> None:
    """Print the injection record of one order."""

    async def show(settings: Settings) -> dict[str, Any] | None:
        from event.app import build_injector

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
        from event.app import build_injector

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
        from event.app import build_injector

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
        from event.app import build_injector

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


@app.command("post-deploy")
def post_deploy_command() -> None:
    """Create or update the OrderCreated subscription (Connect's postDeploy)."""
    from connector import deploy
    from connector.commercetools import CommercetoolsClient

    async def post_deploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.post_deploy(ctp, deploy.process_env())

    try:
        result = run(post_deploy)
    except deploy.DeployConfigError as error:
        console.print(f"[red]post-deploy: {error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {result.action}")


@app.command("pre-undeploy")
def pre_undeploy_command() -> None:
    """Delete the OrderCreated subscription (Connect's preUndeploy); fine if there is none."""
    from connector import deploy
    from connector.commercetools import CommercetoolsClient

    async def pre_undeploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.pre_undeploy(ctp)

    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {run(pre_undeploy).action}")


@app.command("demo")
def demo_command(orders: int = typer.Option(4, min=1, max=50, help="orders to create")) -> None:
    """Run the whole connector on the embedded sandbox, then exit (no accounts needed)."""
    from sandbox.demo import run_demo

    run_demo(orders)


@app.command("sandbox")
def sandbox_command() -> None:
    """Keep the sandbox and both apps running, and print the URLs and environment to use."""
    from sandbox.demo import run_sandbox

    run_sandbox()


def main() -> None:
    app()
