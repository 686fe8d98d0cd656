"""post-deploy's drafts are plain JSON (connector/deploy.py): each one, under every setting
that shapes it, is exactly what the `commercetools` package's typed SubscriptionDraft
builds and reads back, so the JSON cannot drift from the schema."""

from __future__ import annotations

import subprocess
import sys

import pytest
from commercetools.platform.models import (
    AwsAuthenticationMode,
    CloudEventsFormat,
    GoogleCloudPubSubDestination,
    MessageSubscription,
    MessageSubscriptionResourceTypeId,
    PlatformFormat,
    SnsDestination,
    SubscriptionDraft,
)

from connector import deploy

GCP = {"CONNECT_GCP_TOPIC_NAME": "orders", "CONNECT_GCP_PROJECT_ID": "shop-prod"}
AWS = {"CONNECT_AWS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:orders"}


@pytest.mark.parametrize("destination", [GCP, AWS], ids=["gcp", "aws"])
@pytest.mark.parametrize("when", ["created", "confirmed", "paid"])
@pytest.mark.parametrize("message_format", ["Platform", "CloudEvents"])
def test_every_draft_is_what_the_typed_models_build(
    destination: dict[str, str], when: str, message_format: str
) -> None:
    env = {**destination, "ORDER_INJECT_WHEN": when, "SUBSCRIPTION_FORMAT": message_format}
    types = ["OrderCreated", "OrderStateChanged"]
    if when == "paid":
        types.append("OrderPaymentStateChanged")
    typed = SubscriptionDraft(
        key="newstore-connector-order-created",
        destination=GoogleCloudPubSubDestination(project_id="shop-prod", topic="orders")
        if destination is GCP
        else SnsDestination(
            topic_arn=AWS["CONNECT_AWS_TOPIC_ARN"], authentication_mode=AwsAuthenticationMode.IAM
        ),
        messages=[
            MessageSubscription(
                resource_type_id=MessageSubscriptionResourceTypeId.ORDER, types=types
            )
        ],
        format=CloudEventsFormat(cloud_events_version="1.0")
        if message_format == "CloudEvents"
        else PlatformFormat(),  # type: ignore[no-untyped-call]
    )
    draft = deploy.subscription_draft(env)
    assert draft == typed.serialize()
    assert SubscriptionDraft.deserialize(draft).serialize() == draft


def test_the_apps_do_not_import_the_commercetools_package() -> None:
    """Its models cost each app ~38 MB of memory; only tests and tools need them."""
    code = (
        "import sys, event.app, job.app, lifecycle.app; "
        "print(any(m.split('.')[0] == 'commercetools' for m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
