"""`newstore-connector orders ...`: injection records, replays and dismissals.

Every command that prints data takes `--json`; tables never cut ids when piped. Listing and
`replay-failed` page through the records by key (`--limit` records per page, at most
commercetools' 500), so nothing beyond a first page is out of reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from cli.common import EXIT_FAILED, EXIT_UPSTREAM, fail, out, print_json, run
from connector.commercetools import CommercetoolsClient
from connector.http import NotFoundError
from connector.settings import Settings, check_all
from event.app import build_injector
from event.cancellation import Canceller
from event.envelope import is_resource_id
from event.handler import OrderInjector
from event.records import (
    FAILURE_STATUSES,
    MAX_PAGE,
    NotDismissable,
    OrderRecords,
    RecordStatus,
)
from event.settings import load_order_settings

orders_app = typer.Typer(no_args_is_help=True, help="Order injection records and replays.")
INJECTED = ("injected", "already_injected")
CANCELLED = ("cancelled", "already_cancelled")
ERROR_SHOWN = 60  # characters of an error in a table cell (the JSON has all of it)


class Listed(StrEnum):
    FAILED = "failed"
    RETRYING = "retrying"
    DISMISSED = "dismissed"
    ALL = "all"  # every record, successes included


STATUSES = {
    Listed.FAILED: [RecordStatus.FAILED],
    Listed.RETRYING: [RecordStatus.RETRYING],
    Listed.DISMISSED: [RecordStatus.DISMISSED],
    Listed.ALL: [],  # no filter
}

JSON = typer.Option(False, "--json", help="print JSON instead of a table")
LIMIT = typer.Option(100, "--limit", min=1, max=MAX_PAGE, help=f"records per page (1-{MAX_PAGE})")
AFTER = typer.Option(None, "--after", help="start after this order id (the last one shown)")
STATUS = typer.Option(Listed.FAILED, "--status", help="which records")
ALL_PAGES = typer.Option(False, "--all", help="every page, not only the first")


def injector(settings: Settings) -> OrderInjector:
    """Both APIs and the order settings, every bad variable of all of them reported at once."""
    check_all(settings.validate_all, load_order_settings)
    return build_injector(settings)


def records_only(settings: Settings) -> OrderRecords:
    """The records alone (commercetools only): what listing and dismissing need."""
    check_all(lambda: settings.commercetools, load_order_settings)
    container = load_order_settings().order_records_container
    return OrderRecords(CommercetoolsClient(settings.commercetools), container)


async def pages(
    records: OrderRecords, statuses: list[RecordStatus], limit: int, after: str | None
) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
    while True:
        page = await records.page(statuses, limit, after)
        yield page.records, page.next_after
        if page.next_after is None:
            return
        after = page.next_after


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
def orders_show(order_id: str, as_json: bool = JSON) -> None:
    """Print what is known of one order: injected (NewStore's id in its syncInfo) or its
    injection record, and its cancellation record (always JSON)."""

    async def show(settings: Settings) -> dict[str, Any] | None:
        async with injector(settings) as injecting:
            return await order_outcome(injecting, order_id)

    record = run(show)
    if record is None:
        fail(f"no record for order {order_id}")
    print_json(record) if as_json else out().print_json(data=record)


@orders_app.command("list")
def orders_list(
    status: Listed = STATUS,
    limit: int = LIMIT,
    after: str | None = AFTER,
    all_pages: bool = ALL_PAGES,
    as_json: bool = JSON,
) -> None:
    """List injection records: failed (the default), retrying, dismissed, or all of them."""
    listed, next_after = run(_collect(STATUSES[status], limit, after, all_pages))
    if as_json:
        print_json({"records": listed, "next_after": next_after})
        return
    console = out()
    console.print(records_table(listed))
    more = f"; more after {next_after} (--after {next_after}, or --all)" if next_after else ""
    console.print(f"{len(listed)} {status.value} record(s){more}")


@orders_app.command("failed")
def orders_failed(
    limit: int = LIMIT,
    after: str | None = AFTER,
    all_pages: bool = ALL_PAGES,
    as_json: bool = JSON,
) -> None:
    """List the orders whose injection failed permanently (`orders list --status failed`)."""
    orders_list(Listed.FAILED, limit, after, all_pages, as_json)


def _collect(statuses: list[RecordStatus], limit: int, after: str | None, all_pages: bool) -> Any:
    async def collect(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
        records = records_only(settings)
        listed: list[dict[str, Any]] = []
        next_after: str | None = None
        try:
            async for page, following in pages(records, statuses, limit, after):
                listed, next_after = listed + page, following
                if not all_pages:
                    break
        finally:
            await records.ctp.aclose()
        return listed, next_after

    return collect


def records_table(records: list[dict[str, Any]]) -> Table:
    table = Table("order id", "status", "reason", "attempts", "updated at", "error")
    for record in records:
        error = record.get("error") or {}
        detail = error.get("error_code") or error.get("message") or ""
        table.add_row(
            record.get("order_id", ""),
            str(record.get("status")),
            str(record.get("dismissed_reason") or record.get("reason") or ""),
            str(record.get("attempts", "")),
            str(record.get("updated_at", "")),
            str(detail)[:ERROR_SHOWN],
        )
    return table


@orders_app.command("dismiss")
def orders_dismiss(
    order_id: str,
    reason: str = typer.Option(..., "--reason", min=1, help="why it needs nothing more"),
    as_json: bool = JSON,
) -> None:
    """Dismiss a failed or retrying record: kept, with the reason, but no longer listed as
    failed nor replayed by `replay-failed`."""
    if not reason.strip():
        fail("--reason must say why", 2)

    async def dismiss(settings: Settings) -> dict[str, Any] | str:
        records = records_only(settings)
        try:
            return await records.dismiss(order_id, reason.strip())
        except NotDismissable as refused:
            return str(refused)
        finally:
            await records.ctp.aclose()

    record = run(dismiss)
    if isinstance(record, str):
        fail(record)
    if as_json:
        print_json(record)
    else:
        out().print(f"order {order_id} dismissed (was {record['dismissed_from']}): {reason}")


@orders_app.command("replay")
def orders_replay(order_id: str, as_json: bool = JSON) -> None:
    """Inject one order again, under the same outcome rules as the event app."""

    async def replay(settings: Settings) -> dict[str, Any]:
        async with injector(settings) as injecting:
            await _know_the_failure(injecting, order_id)
            return (await injecting.inject(order_id)).summary()

    summary = run(replay)
    print_json(summary) if as_json else out().print_json(data=summary)
    if summary["outcome"] not in INJECTED:
        fail(f"order {order_id} not injected: {_why(summary)}", _exit_code([summary]))


@orders_app.command("replay-failed")
def orders_replay_failed(
    limit: int = LIMIT,
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, max=32, help="replays in flight (1-32)"
    ),
    as_json: bool = JSON,
) -> None:
    """Replay every order whose injection or cancellation is recorded as failed, every page
    of them (e.g. after an outage).

    At most `--concurrency` at a time; fulfill_order is paced to NEW_STORE_INJECT_RATE as
    in the event app (the same rate gate), so a large backlog never meets NewStore's 429."""

    async def replay_all(settings: Settings) -> list[dict[str, Any]]:
        async with injector(settings) as injecting:
            slots = asyncio.Semaphore(concurrency)

            async def replay(order_id: str) -> dict[str, Any]:
                async with slots:
                    return (await injecting.inject(order_id)).summary()

            async def cancel(order_id: str) -> dict[str, Any]:
                async with slots:
                    return (await canceller.cancel(order_id)).summary()

            summaries: list[dict[str, Any]] = []
            failed = [RecordStatus.FAILED]
            async for page, _ in pages(injecting.records, failed, limit, None):
                current = await injecting.records.drop_superseded(page, injecting.sync)
                for record in current:  # this process supersedes them when they succeed
                    injecting.failure_recorded.add(str(record["order_id"]), True)
                summaries += await asyncio.gather(*(replay(str(r["order_id"])) for r in current))
            canceller = Canceller(injecting)
            async for page, _ in pages(canceller.records, failed, limit, None):
                summaries += await asyncio.gather(*(cancel(str(r["order_id"])) for r in page))
            return summaries

    summaries = run(replay_all)
    still_failing = [s for s in summaries if s["outcome"] not in INJECTED + CANCELLED]
    if as_json:
        print_json(summaries)
    else:
        console = out()
        table = Table("order id", "outcome", "NewStore order id", "reason")
        for summary in summaries:
            table.add_row(
                summary["order_id"],
                summary["outcome"],
                summary.get("newstore_order_id", ""),
                summary.get("reason", ""),
            )
        console.print(table)
        replayed = len(summaries) - len(still_failing)
        console.print(f"{replayed} of {len(summaries)} replayed into NewStore")
    if still_failing:
        first = still_failing[0]
        fail(
            f"{len(still_failing)} not injected; first {first['order_id']}: {_why(first)}",
            _exit_code(still_failing),
        )


def _exit_code(not_injected: list[dict[str, Any]]) -> int:
    """3 when an upstream kept the orders out (they will go in later), 1 when they failed."""
    retry = all(s["outcome"] == "retry" for s in not_injected)
    return EXIT_UPSTREAM if retry else EXIT_FAILED


def _why(summary: dict[str, Any]) -> str:
    """The outcome, its reason and the upstream's message, on one line."""
    error = summary.get("error") or {}
    parts = [summary["outcome"], summary.get("reason")]
    if isinstance(error, dict):
        parts += [error.get("service"), error.get("message") or error.get("error_code")]
    text = ": ".join(str(p) for p in parts if p)
    if isinstance(error, dict) and error.get("status"):
        text += f" (HTTP {error['status']})"
    if isinstance(error, dict) and error.get("host") and str(error["host"]) not in text:
        text += f" from {error['host']}"
    return text


async def _know_the_failure(injector: OrderInjector, order_id: str) -> None:
    """A replayed order's failure record is this process's to supersede: its success deletes
    it. An id that is no commercetools id is left to `inject` to refuse, unrequested."""
    if not is_resource_id(order_id):
        return
    record = await injector.records.get(order_id)
    if record is not None and record.get("status") in FAILURE_STATUSES:
        injector.failure_recorded.add(order_id, True)
