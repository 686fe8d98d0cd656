"""`newstore-connector inventory ...`: the inventory sync from a terminal."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBars
from rich.table import Table

from cli.common import EXIT_FAILED, EXIT_UPSTREAM, err, fail, out, print_json, run
from connector.settings import Settings, check_all
from job.settings import load_inventory_settings
from job.sync import Status, SyncReport, build_sync

inventory_app = typer.Typer(
    no_args_is_help=True, help="Inventory sync: NewStore ATP -> commercetools stock."
)


@inventory_app.callback()
def inventory() -> None:
    """Inventory sync: NewStore ATP -> commercetools stock."""
    # A callback keeps `sync` a sub-command even while it is the only command.


PHASES = {
    "newstore": "NewStore stock pages",
    "export": "NewStore export polls",
    "commercetools": "commercetools entry pages",
    "products": "product look-ups",
    "writes": "writes",
}
FAILED_SHOWN = 20


class ProgressBars:
    """`job.bounded.Progress` drawn as rich progress bars, one per phase."""

    def __init__(self, console: Console, shown: bool = True) -> None:
        self._bars = RichBars(
            SpinnerColumn(),
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not shown,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressBars:
        self._bars.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._bars.stop()

    def start(self, phase: str, total: int | None) -> None:
        self._tasks[phase] = self._bars.add_task(PHASES.get(phase, phase), total=total)

    def advance(self, phase: str, amount: int = 1) -> None:
        self._bars.advance(self._tasks[phase], amount)


@inventory_app.command("sync")
def sync(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="read both sides and print the plan; write nothing"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run one inventory sync (the same as the job app's POST /job)."""

    async def sync_once(settings: Settings) -> SyncReport:
        check_all(settings.validate_all, load_inventory_settings)
        sync = build_sync(settings, load_inventory_settings())
        try:
            shown = not as_json and sys.stderr.isatty()  # bars on stderr: stdout stays the summary
            with ProgressBars(err(), shown) as bars:
                return await sync.run(dry_run, bars)
        finally:
            await sync.aclose()

    report = run(sync_once)
    summary = report.summary()
    if as_json:
        print_json({**summary, "sample": report.sample})
    else:
        console = out()
        console.print(summary_table(summary))
        if report.sample is not None:
            console.print(sample_table(report.sample))
        if report.failed:
            console.print(failed_table(summary["failed"][:FAILED_SHOWN]))
    if report.status is Status.ERROR:  # could not run: an upstream down or refusing
        fail(f"inventory sync: {summary.get('error') or 'failed'}", EXIT_UPSTREAM)
    ended_well = report.status in (Status.OK, Status.DRY_RUN, Status.SKIPPED)
    if not ended_well or report.failed:
        fail(
            f"inventory sync {report.status.value}: {summary['failed_total']} SKU(s) failed, "
            f"{summary['remaining']} remaining",
            EXIT_FAILED,
        )


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table("", "", title="inventory sync", show_header=False)
    rows = {
        "status": summary["status"],
        "mode": _mode(summary),
        "created": summary["created"],
        "updated": summary["updated"],
        "unchanged": summary["unchanged"],
        "skipped (no product)": summary["skipped_no_product"],
        "failed": summary["failed_total"],
        "remaining": summary["remaining"],
        "negative ATP written as 0": summary["negative_clamped"],
        "entries not in NewStore": summary["not_in_newstore"],
        "NewStore stock rows": summary["stock_rows"],
        "requests NewStore": summary["requests"].get("newstore"),
        "requests commercetools": summary["requests"].get("commercetools"),
        "duration (s)": summary["duration_s"],
    }
    planned = summary.get("planned")
    if planned:
        rows["planned updates / creates"] = f"{planned['updates']} / {planned['creates']}"
    cursor = summary.get("cursor")
    if cursor:
        rows["cursor before / exported / after"] = (
            f"{cursor['before']} / {cursor['exported']} / {cursor['after']}"
        )
    for key in ("export_id", "stopped", "error"):
        if summary.get(key):
            rows[key.replace("_", " ")] = summary[key]
    for name, value in rows.items():
        table.add_row(name, str(value))
    return table


def _mode(summary: dict[str, Any]) -> str:
    """e.g. `incremental (delta since cursor 41)`; empty when the run did not get that far."""
    mode = summary.get("mode")
    if not mode:
        return ""
    reason = summary.get("mode_reason")
    return f"{mode} ({reason})" if reason else str(mode)


def sample_table(sample: list[dict[str, Any]]) -> Table:
    table = Table("sku", "action", "from", "to", title="sample of planned changes")
    for change in sample:
        before = "" if change["from"] is None else str(change["from"])
        table.add_row(change["sku"], change["action"], before, str(change["to"]))
    return table


def failed_table(failed: list[dict[str, str]]) -> Table:
    table = Table("sku", "reason", title="failed SKUs")
    for item in failed:
        table.add_row(item["sku"], item["reason"])
    return table
