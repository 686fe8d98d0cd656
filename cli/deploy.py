"""`newstore-connector post-deploy` / `pre-undeploy`: the deploy scripts.

They read `CONNECT_*` and `SUBSCRIPTION_FORMAT` like every other variable: from the
environment, or a `.env` file in the working directory (the environment wins).
"""

from __future__ import annotations

import os

import typer
from pydantic_settings import BaseSettings

from cli.common import out, print_json, run
from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.settings import ConfigError, Settings, check_all, settings_config

JSON = typer.Option(False, "--json", help="print JSON instead of a sentence")


class DeployVariables(BaseSettings):
    """What post-deploy reads besides the API settings; all optional here, checked by
    `connector.deploy` (which names what is missing)."""

    model_config = settings_config("")

    connect_gcp_topic_name: str | None = None
    connect_gcp_project_id: str | None = None
    connect_aws_topic_arn: str | None = None
    subscription_format: str | None = None


def deploy_environment() -> dict[str, str]:
    """os.environ, with the deploy variables also read from `.env`."""
    found = DeployVariables().model_dump(exclude_none=True)
    return {name.upper(): str(value) for name, value in found.items()} | dict(os.environ)


def post_deploy_command(as_json: bool = JSON) -> None:
    """Create or update the OrderCreated subscription (Connect's postDeploy)."""

    async def post_deploy(settings: Settings) -> deploy.DeployResult:
        env = deploy_environment()
        # every missing variable at once, the topic's and the API's, before any request
        check_all(lambda: settings.commercetools, lambda: _destination(env))
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.post_deploy(ctp, env)

    _report(run(post_deploy), as_json)


def _destination(env: dict[str, str]) -> None:
    try:
        deploy.subscription_draft(env)
    except deploy.DeployConfigError as error:
        raise ConfigError(str(error)) from None


def pre_undeploy_command(as_json: bool = JSON) -> None:
    """Delete the OrderCreated subscription (Connect's preUndeploy); fine if there is none."""

    async def pre_undeploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.pre_undeploy(ctp)

    _report(run(pre_undeploy), as_json)


def _report(result: deploy.DeployResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "subscription": deploy.SUBSCRIPTION_KEY,
                "action": result.action,
                "id": result.subscription_id,
            }
        )
    else:
        out().print(f"subscription {deploy.SUBSCRIPTION_KEY}: {result.action}")
