"""Connect's postDeploy / preUndeploy: the `OrderCreated` subscription, idempotently.

post-deploy creates the subscription under a fixed key, or updates it in place (never
delete-then-create, so the project is never without it). The event app accepts both
message formats, so an existing subscription's format is left as it is: commercetools has
no update action for the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commercetools.platform.models import (
    AwsAuthenticationMode,
    CloudEventsFormat,
    Destination,
    GoogleCloudPubSubDestination,
    MessageSubscription,
    MessageSubscriptionResourceTypeId,
    PlatformFormat,
    SnsDestination,
    SubscriptionDraft,
)

from connector.commercetools import CommercetoolsClient, CommercetoolsError

SUBSCRIPTION_KEY = "newstore-connector-order-created"
MESSAGES = [
    MessageSubscription(
        resource_type_id=MessageSubscriptionResourceTypeId.ORDER, types=["OrderCreated"]
    )
]


class DeployConfigError(ValueError):
    """A variable that the deploy scripts need is missing or invalid."""


@dataclass(frozen=True)
class DeployResult:
    action: str  # created | updated | unchanged | deleted | absent
    subscription_id: str | None = None


def destination_from_env(env: Mapping[str, str]) -> Destination:
    """GCP Pub/Sub from CONNECT_GCP_*, else AWS SNS from CONNECT_AWS_TOPIC_ARN."""
    topic, project = env.get("CONNECT_GCP_TOPIC_NAME"), env.get("CONNECT_GCP_PROJECT_ID")
    if topic and project:
        return GoogleCloudPubSubDestination(project_id=project, topic=topic)
    if env.get("CONNECT_AWS_TOPIC_ARN"):
        return SnsDestination(
            topic_arn=env["CONNECT_AWS_TOPIC_ARN"], authentication_mode=AwsAuthenticationMode.IAM
        )
    missing = [n for n in ("CONNECT_GCP_TOPIC_NAME", "CONNECT_GCP_PROJECT_ID") if not env.get(n)]
    raise DeployConfigError(
        f"missing {' and '.join(missing)} (Google Cloud), or CONNECT_AWS_TOPIC_ARN (AWS): "
        "the subscription needs a destination"
    )


def subscription_draft(env: Mapping[str, str]) -> dict[str, Any]:
    """The SubscriptionDraft JSON; SUBSCRIPTION_FORMAT=CloudEvents picks that format."""
    wanted = env.get("SUBSCRIPTION_FORMAT", "Platform")
    if wanted not in ("Platform", "CloudEvents"):
        raise DeployConfigError("SUBSCRIPTION_FORMAT must be Platform or CloudEvents")
    message_format = (
        CloudEventsFormat(cloud_events_version="1.0")
        if wanted == "CloudEvents"
        else PlatformFormat()  # type: ignore[no-untyped-call]
    )
    draft = SubscriptionDraft(
        key=SUBSCRIPTION_KEY,
        destination=destination_from_env(env),
        messages=MESSAGES,
        format=message_format,
    )
    return dict(draft.serialize())


def update_actions(existing: dict[str, Any], draft: dict[str, Any]) -> list[dict[str, Any]]:
    """What turns the existing subscription into the draft; [] when nothing differs."""
    actions: list[dict[str, Any]] = []
    if existing.get("destination") != draft["destination"]:
        actions.append({"action": "changeDestination", "destination": draft["destination"]})
    if existing.get("messages") != draft["messages"]:
        actions.append({"action": "setMessages", "messages": draft["messages"]})
    return actions


async def post_deploy(ctp: CommercetoolsClient, env: Mapping[str, str]) -> DeployResult:
    draft = subscription_draft(env)
    existing = await ctp.get_subscription(SUBSCRIPTION_KEY)
    if existing is None:
        created = await ctp.create_subscription(draft)
        return DeployResult("created", created["id"])
    actions = update_actions(existing, draft)
    if not actions:
        return DeployResult("unchanged", existing["id"])
    updated = await ctp.update_subscription(SUBSCRIPTION_KEY, existing["version"], actions)
    return DeployResult("updated", updated["id"])


async def pre_undeploy(ctp: CommercetoolsClient) -> DeployResult:
    existing = await ctp.get_subscription(SUBSCRIPTION_KEY)
    if existing is None:
        return DeployResult("absent")
    try:
        await ctp.delete_subscription(SUBSCRIPTION_KEY, existing["version"])
    except CommercetoolsError as error:
        if error.status != 404:  # deleted meanwhile by a concurrent run: that is the goal
            raise
    return DeployResult("deleted", existing["id"])
