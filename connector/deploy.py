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

from connector.commercetools import NEWSTORE_CHANNEL_KEY, CommercetoolsClient, CommercetoolsError

# The drafts are plain JSON: the typed models of the `commercetools` package cost every app
# ~38 MB of memory to import, for a few small dicts. tests/unit/test_deploy_drafts.py checks
# every draft built here against those models (and the OpenAPI contract tests against the
# spec), so the JSON cannot drift from the SubscriptionDraft schema.
SUBSCRIPTION_KEY = "newstore-connector-order-created"
ORDER_MESSAGES = ["OrderCreated", "OrderStateChanged"]
CHANNEL_DRAFT: dict[str, Any] = {"key": NEWSTORE_CHANNEL_KEY, "roles": ["OrderExport"]}


def messages_for(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The order messages (MessageSubscription) the event app needs under ORDER_INJECT_WHEN."""
    when = env.get("ORDER_INJECT_WHEN", "created")
    if when not in ("created", "confirmed", "paid"):
        raise DeployConfigError("ORDER_INJECT_WHEN must be created, confirmed or paid")
    types = [*ORDER_MESSAGES, "OrderPaymentStateChanged"] if when == "paid" else ORDER_MESSAGES
    return [{"resourceTypeId": "order", "types": list(types)}]


class DeployConfigError(ValueError):
    """A variable that the deploy scripts need is missing or invalid."""


@dataclass(frozen=True)
class DeployResult:
    action: str  # created | updated | unchanged | deleted | absent
    subscription_id: str | None = None
    channel: str | None = None  # the newstore channel: created | exists


def destination_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """GCP Pub/Sub from CONNECT_GCP_*, else AWS SNS from CONNECT_AWS_TOPIC_ARN (IAM)."""
    topic, project = env.get("CONNECT_GCP_TOPIC_NAME"), env.get("CONNECT_GCP_PROJECT_ID")
    if topic and project:
        return {"type": "GoogleCloudPubSub", "projectId": project, "topic": topic}
    if env.get("CONNECT_AWS_TOPIC_ARN"):
        return {
            "type": "SNS",
            "topicArn": env["CONNECT_AWS_TOPIC_ARN"],
            "authenticationMode": "IAM",
        }
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
    message_format: dict[str, Any] = (
        {"type": "CloudEvents", "cloudEventsVersion": "1.0"}
        if wanted == "CloudEvents"
        else {"type": "Platform"}
    )
    return {
        "destination": destination_from_env(env),
        "key": SUBSCRIPTION_KEY,
        "messages": messages_for(env),
        "format": message_format,
    }


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
