"""Connect's postDeploy / preUndeploy: the order messages subscription and the `newstore`
Channel, idempotently.

post-deploy creates the subscription under a fixed key, or updates it in place (never
delete-then-create, so the project is never without it). The event app accepts both
message formats, so an existing subscription's format is left as it is: commercetools has
no update action for the format. The subscription carries `OrderCreated` and
`OrderStateChanged` (cancellations, and ORDER_INJECT_WHEN=confirmed), and
`OrderPaymentStateChanged` with ORDER_INJECT_WHEN=paid.

post-deploy also creates the `newstore` Channel (role OrderExport) that the event app writes
NewStore's order ids into order syncInfo under; pre-undeploy leaves it, since the orders'
syncInfo keeps referring to it.
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

from connector.commercetools import NEWSTORE_CHANNEL_KEY, CommercetoolsClient, CommercetoolsError

SUBSCRIPTION_KEY = "newstore-connector-order-created"
ORDER_MESSAGES = ["OrderCreated", "OrderStateChanged"]
MESSAGES = [
    MessageSubscription(
        resource_type_id=MessageSubscriptionResourceTypeId.ORDER, types=ORDER_MESSAGES
    )
]
CHANNEL_DRAFT: dict[str, Any] = {"key": NEWSTORE_CHANNEL_KEY, "roles": ["OrderExport"]}


def messages_for(env: Mapping[str, str]) -> list[MessageSubscription]:
    """The order messages the event app needs under ORDER_INJECT_WHEN."""
    when = env.get("ORDER_INJECT_WHEN", "created")
    if when not in ("created", "confirmed", "paid"):
        raise DeployConfigError("ORDER_INJECT_WHEN must be created, confirmed or paid")
    if when != "paid":
        return MESSAGES
    types = [*ORDER_MESSAGES, "OrderPaymentStateChanged"]
    return [
        MessageSubscription(resource_type_id=MessageSubscriptionResourceTypeId.ORDER, types=types)
    ]


class DeployConfigError(ValueError):
    """A variable that the deploy scripts need is missing or invalid."""


@dataclass(frozen=True)
class DeployResult:
    action: str  # created | updated | unchanged | deleted | absent
    subscription_id: str | None = None
    channel: str | None = None  # the newstore channel: created | exists


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
        messages=messages_for(env),
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
    channel = await ensure_channel(ctp)  # first: the app writes under it from its first order
    existing = await ctp.get_subscription(SUBSCRIPTION_KEY)
    if existing is None:
        created = await ctp.create_subscription(draft)
        return DeployResult("created", created["id"], channel)
    actions = update_actions(existing, draft)
    if not actions:
        return DeployResult("unchanged", existing["id"], channel)
    updated = await ctp.update_subscription(SUBSCRIPTION_KEY, existing["version"], actions)
    return DeployResult("updated", updated["id"], channel)


async def ensure_channel(ctp: CommercetoolsClient) -> str:
    """Create the `newstore` Channel unless it exists; `created` or `exists`. A concurrent
    run that created it first answers DuplicateField: it exists."""
    if await ctp.get_channel(NEWSTORE_CHANNEL_KEY) is not None:
        return "exists"
    try:
        await ctp.create_channel(CHANNEL_DRAFT)
    except CommercetoolsError as error:
        if "DuplicateField" not in error.codes:
            raise
        return "exists"
    return "created"


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
