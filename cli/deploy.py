"""`newstore-connector post-deploy` / `pre-undeploy`: the deploy scripts.

They read `CONNECT_*` and `SUBSCRIPTION_FORMAT` like every other variable: from the
environment, or a `.env` file in the working directory (the environment wins).
"""

from __future__ import annotations

import os

import typer
from pydantic_settings import BaseSettings

from cli.common import EXIT_CONFIG, EXIT_FAILED, fail, out, print_json, run
from cli.doctor import diagnose
from connector import deploy
from connector.commercetools import NEWSTORE_CHANNEL_KEY, CommercetoolsClient
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, Settings, check_all, settings_config
from lifecycle import registration
from lifecycle.upkeep import configured_lifecycle

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


def post_deploy_command(
    as_json: bool = JSON,
    skip_doctor: bool = typer.Option(
        False,
        "--skip-doctor",
        help="Do not run the doctor afterwards (for a deploy job without NewStore variables).",
    ),
) -> None:
    """Create or update the order messages subscription, the newstore channel and, when the
    lifecycle app is deployed, NewStore's event stream integration (Connect's postDeploy);
    then run the doctor: exit 1 with its report when a prerequisite is missing (with
    `--json`, the deploy's object and the doctor's, one JSON document per line)."""

    async def post_deploy(settings: Settings) -> deploy.DeployResult:
        env = deploy_environment()
        # every missing variable at once, the topic's and the API's, before any request
        check_all(lambda: settings.commercetools, lambda: _destination(env))
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.post_deploy(ctp, env)

    _report(run(post_deploy), _lifecycle_integration(remove=False), as_json)
    # The preflight: a deploy whose prerequisites are missing fails here, with the report,
    # rather than with the first order.
    if not skip_doctor and not diagnose(as_json):
        fail("post-deploy: the doctor found a missing prerequisite (above)", EXIT_FAILED)


def _destination(env: dict[str, str]) -> None:
    try:
        deploy.subscription_draft(env)
    except deploy.DeployConfigError as error:
        raise ConfigError(str(error)) from None


def pre_undeploy_command(as_json: bool = JSON) -> None:
    """Delete the subscription and the event stream integration (Connect's preUndeploy);
    fine if there is none."""

    async def pre_undeploy(settings: Settings) -> deploy.DeployResult:
        async with CommercetoolsClient(settings.commercetools) as ctp:
            return await deploy.pre_undeploy(ctp)

    _report(run(pre_undeploy), _lifecycle_integration(remove=True), as_json)


def _lifecycle_integration(*, remove: bool) -> registration.RegistrationResult | None:
    """The NewStore Event Stream integration of the lifecycle app, when it is deployed
    (LIFECYCLE_API_KEY set): registered (LIFECYCLE_CALLBACK_URL) or removed."""
    lifecycle = configured_lifecycle()
    if lifecycle is None:
        return None

    async def change(settings: Settings) -> registration.RegistrationResult:
        async with NewStoreClient(settings.newstore) as newstore:
            if remove:
                return await registration.remove_integration(newstore, lifecycle)
            return await registration.ensure_integration(newstore, lifecycle)

    try:
        return run(change)
    except registration.RegistrationError as error:
        fail(f"lifecycle: {error}", EXIT_CONFIG)


def _report(
    result: deploy.DeployResult,
    integration: registration.RegistrationResult | None,
    as_json: bool,
) -> None:
    if as_json:
        report: dict[str, object] = {
            "subscription": deploy.SUBSCRIPTION_KEY,
            "action": result.action,
            "id": result.subscription_id,
        }
        if result.channel is not None:
            report["channel"] = {"key": NEWSTORE_CHANNEL_KEY, "action": result.channel}
        if integration is not None:
            report["event_stream_integration"] = {
                "id": integration.integration_id,
                "action": integration.action,
            }
        print_json(report)
        return
    console = out()
    console.print(f"subscription {deploy.SUBSCRIPTION_KEY}: {result.action}")
    if result.channel is not None:
        console.print(f"channel {NEWSTORE_CHANNEL_KEY}: {result.channel}")
    if integration is not None:
        console.print(
            f"event stream integration {integration.integration_id}: {integration.action}"
        )
