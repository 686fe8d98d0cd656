"""`newstore-connector doctor`: the preflight, run before and after a deploy (post-deploy
runs it too). One line per check, ✓ / ✗ / – with the reason, and the fix under a ✗;
`--json` for scripts. Exit code 0 only when no check failed (a skipped one is fine).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

import typer
from rich.markup import escape

from cli.common import out
from connector import checks, deploy
from connector.checks import Check, Outcome
from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.logs import configure_logging
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, Settings
from event.customization import service_level_for_key
from event.order import ORDER_EXPANSIONS
from event.settings import load_order_settings
from job.settings import load_inventory_settings
from lifecycle.upkeep import event_stream_integration

# A preflight answers within seconds: one quick retry, never the job's long waits.
DOCTOR_RETRY = RetryPolicy(max_attempts=2, budget_s=2.0)
MARKS = {Outcome.PASS: "[green]✓[/green]", Outcome.FAIL: "[red]✗[/red]", Outcome.SKIP: "–"}


def config_check(name: str, error: ConfigError) -> Check:
    return checks.failed(name, str(error), "set the variables named above (README, Configuration)")


def wanted_destination(env: Mapping[str, str]) -> dict[str, Any] | None:
    """Where post-deploy would point the subscription; None without CONNECT_* variables."""
    try:
        return deploy.destination_from_env(env)
    except deploy.DeployConfigError:
        return None


async def run_checks(
    settings: Settings, env: Mapping[str, str], max_instances: int = 1
) -> list[Check]:
    """Every check, in order; a configuration error is a failed check, never an exception."""
    results: list[Check] = []
    try:
        orders = load_order_settings()
        inventory = load_inventory_settings()
    except ConfigError as error:
        return [config_check("configuration", error)]
    results.append(
        checks.check_rate_budget(
            orders.new_store_inject_rate, inventory.newstore_rate_limit, max_instances
        )
    )
    try:
        ctp_settings = settings.commercetools
        ns_settings = settings.newstore
    except ConfigError as error:
        return [config_check("configuration", error), *results]
    async with (
        CommercetoolsClient(ctp_settings, retry=DOCTOR_RETRY) as ctp,
        NewStoreClient(ns_settings, retry=DOCTOR_RETRY) as ns,
    ):
        ctp_token, ns_token = await asyncio.gather(
            checks.check_commercetools_token(ctp), checks.check_newstore_token(ns)
        )
        results[:0] = [ctp_token, ns_token]
        if ctp_token.outcome is Outcome.FAIL:
            return results
        results.append(await checks.check_scopes(ctp))
        results.append(await checks.check_order_expansion(ctp, ORDER_EXPANSIONS))
        results.append(await checks.check_subscription(ctp, wanted_destination(env)))
        if ns_token.outcome is Outcome.FAIL:
            return results
        results.append(await checks.check_service_levels(ctp, ns, service_level_for_key))
        results.append(
            await checks.check_products(
                ctp, ns, orders.new_store_product_id_source, orders.new_store_default_locale
            )
        )
        results.append(await checks.check_event_stream(ns, event_stream_integration(env)))
    return results


def all_passed(results: list[Check]) -> bool:
    return all(check.outcome is not Outcome.FAIL for check in results)


def print_report(results: list[Check]) -> None:
    console = out()
    for check in results:
        line = f"{MARKS[check.outcome]} {escape(check.name)}: {escape(check.reason)}"
        console.print(line, highlight=False, soft_wrap=True)
        if check.fix and check.outcome is not Outcome.PASS:
            console.print(f"    fix: {escape(check.fix)}", highlight=False, soft_wrap=True)


def report_json(results: list[Check]) -> str:
    return json.dumps({"ok": all_passed(results), "checks": [c.as_dict() for c in results]})


def diagnose(as_json: bool = False, max_instances: int = 1) -> bool:
    """Run and print every check; True when none failed."""
    configure_logging("WARNING")
    results = asyncio.run(run_checks(Settings(), dict(os.environ), max_instances))
    if as_json:
        typer.echo(report_json(results))
    else:
        print_report(results)
    return all_passed(results)


def doctor_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of lines."),
    max_instances: int = typer.Option(
        1, "--max-instances", min=1, help="The most event app instances that may run at once."
    ),
) -> None:
    """Check every prerequisite of the connector, each with the reason and the fix."""
    if not diagnose(as_json, max_instances):
        raise typer.Exit(1)
