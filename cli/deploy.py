"""`newstore-connector post-deploy` / `pre-undeploy`: Connect's deploy scripts."""

from __future__ import annotations

import os

import typer

from cli.common import console, run
from connector import deploy
from connector.commercetools import NEWSTORE_CHANNEL_KEY, CommercetoolsClient
from connector.newstore import NewStoreClient
from connector.settings import Settings
from lifecycle import registration
from lifecycle.upkeep import configured_lifecycle


def post_deploy_command() -> None:
    """Create or update the order messages subscription and the newstore channel (Connect's
    postDeploy)."""

    async def post_deploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.post_deploy(ctp, dict(os.environ))

    try:
        result = run(post_deploy)
    except deploy.DeployConfigError as error:
        console.print(f"[red]post-deploy: {error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {result.action}")
    console.print(f"channel {NEWSTORE_CHANNEL_KEY}: {result.channel}")
    _lifecycle_integration(remove=False)


def pre_undeploy_command() -> None:
    """Delete the OrderCreated subscription (Connect's preUndeploy); fine if there is none."""

    async def pre_undeploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.pre_undeploy(ctp)

    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {run(pre_undeploy).action}")
    _lifecycle_integration(remove=True)


def _lifecycle_integration(*, remove: bool) -> None:
    """The NewStore Event Stream integration of the lifecycle app, when it is deployed
    (LIFECYCLE_API_KEY set): registered (LIFECYCLE_CALLBACK_URL) or removed."""
    lifecycle = configured_lifecycle()
    if lifecycle is None:
        return

    async def change(settings: Settings) -> registration.RegistrationResult:
        async with NewStoreClient(settings.newstore) as newstore:
            if remove:
                return await registration.remove_integration(newstore, lifecycle)
            return await registration.ensure_integration(newstore, lifecycle)

    try:
        result = run(change)
    except registration.RegistrationError as error:
        console.print(f"[red]lifecycle: {error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"event stream integration {result.integration_id}: {result.action}")
