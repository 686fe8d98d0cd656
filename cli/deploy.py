"""`newstore-connector post-deploy` / `pre-undeploy`: Connect's deploy scripts."""

from __future__ import annotations

import os

import typer

from cli.common import console, run
from cli.doctor import diagnose
from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.settings import Settings


def post_deploy_command(
    skip_doctor: bool = typer.Option(
        False,
        "--skip-doctor",
        help="Do not run the doctor afterwards (for a deploy job without NewStore variables).",
    ),
) -> None:
    """Create or update the OrderCreated subscription (Connect's postDeploy), then run the
    doctor: exit 1 with its report when a prerequisite is missing."""

    async def post_deploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.post_deploy(ctp, dict(os.environ))

    try:
        result = run(post_deploy)
    except deploy.DeployConfigError as error:
        console.print(f"[red]post-deploy: {error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {result.action}")
    # The preflight: a deploy whose prerequisites are missing fails here, with the report,
    # rather than with the first order.
    if not skip_doctor and not diagnose():
        console.print("[red]post-deploy: the doctor found a missing prerequisite (above)[/red]")
        raise typer.Exit(1)


def pre_undeploy_command() -> None:
    """Delete the OrderCreated subscription (Connect's preUndeploy); fine if there is none."""

    async def pre_undeploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.pre_undeploy(ctp)

    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {run(pre_undeploy).action}")
