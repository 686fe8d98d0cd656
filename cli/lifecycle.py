"""`newstore-connector lifecycle ...`: the NewStore Event Stream integration and the inbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from cli.common import EXIT_CONFIG, fail, out, print_json, run
from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, Settings
from lifecycle import registration
from lifecycle.apply import LifecycleApplier
from lifecycle.inbox import Inbox
from lifecycle.settings import LifecycleSettings, load_lifecycle_settings

lifecycle_app = typer.Typer(
    no_args_is_help=True, help="NewStore's Event Stream integration and the lifecycle inbox."
)


def _settings() -> LifecycleSettings:
    try:
        return load_lifecycle_settings()
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)


def _when(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: not an ISO 8601 date-time: {value!r}", EXIT_CONFIG)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@lifecycle_app.command("replay")
def replay_command(
    since: str = typer.Option(..., "--since", help="start of the window, ISO 8601 (UTC if naive)"),
    until: str = typer.Option(..., "--until", help="end of the window, ISO 8601"),
) -> None:
    """Re-send NewStore's events of a past window (a temporary integration), for a gap
    after an outage. Applying an event twice changes nothing."""
    lifecycle = _settings()
    start, end = _when(since, "--since"), _when(until, "--until")

    async def replay(settings: Settings) -> registration.RegistrationResult:
        async with NewStoreClient(settings.newstore) as newstore:
            return await registration.replay(newstore, lifecycle, start, end)

    try:
        result = run(replay)
    except registration.RegistrationError as error:
        fail(f"replay: {error}", EXIT_CONFIG)
    out().print(f"integration {result.integration_id}: {result.action} ({result.status})")


@lifecycle_app.command("status")
def status_command() -> None:
    """Show the event stream integration as NewStore has it (the api_key is masked)."""
    lifecycle = _settings()

    async def status(settings: Settings) -> dict[str, Any] | None:
        async with NewStoreClient(settings.newstore) as newstore:
            return await newstore.event_stream_integration(lifecycle.integration_id)

    found = run(status)
    if found is None:
        fail(f"no integration {lifecycle.integration_id}")
    params = found.get("callback_parameters")
    if isinstance(params, dict) and "api_key" in params:
        params["api_key"] = "**********"
    print_json(found)


@lifecycle_app.command("inbox")
def inbox_command(
    limit: int = typer.Option(100, min=1, max=500, help="at most this many (1-500)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List the events waiting in the inbox (and the parked ones)."""
    lifecycle = _settings()

    async def entries(settings: Settings) -> list[dict[str, Any]]:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await Inbox(ctp, lifecycle.inbox_container, 1).entries(limit)

    found = run(entries)
    if as_json:
        print_json(found)
        return
    table = Table("key", "status", "reason", "attempts", "queued at")
    for entry in found:
        value = entry.get("value") or {}
        table.add_row(
            entry["key"],
            str(value.get("status")),
            str(value.get("reason")),
            str(value.get("attempts")),
            str(value.get("queued_at")),
        )
    out().print(table)


@lifecycle_app.command("drain")
def drain_command(
    parked: bool = typer.Option(False, "--parked", help="retry the parked events too"),
) -> None:
    """Apply the inbox's events now (the job does this on every run)."""
    lifecycle = _settings()

    async def drain(settings: Settings) -> dict[str, Any]:
        async with (
            CommercetoolsClient(settings.commercetools) as ctp,
            NewStoreClient(settings.newstore) as newstore,
        ):
            inbox = Inbox(ctp, lifecycle.inbox_container, lifecycle.inbox_max_attempts)
            applier = LifecycleApplier(ctp, newstore, lifecycle)
            report = await inbox.drain(
                applier, limit=lifecycle.inbox_drain_limit, parked_too=parked
            )
            return report.summary()

    print_json(run(drain))


@lifecycle_app.command("dismiss")
def dismiss_command(key: str) -> None:
    """Delete one inbox entry (an event an operator decided not to apply)."""
    lifecycle = _settings()

    async def dismiss(settings: Settings) -> bool:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await Inbox(ctp, lifecycle.inbox_container, 1).dismiss(key)

    if not run(dismiss):
        fail(f"no inbox entry {key}")
    out().print(f"dismissed {key}")
