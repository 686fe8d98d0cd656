"""post-deploy and pre-undeploy: idempotent, and never a window without the subscription."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from connector.deploy import SUBSCRIPTION_KEY
from sandbox.stack import Stack

runner = CliRunner()


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    return stack


def subscription(stack: Stack) -> dict | None:
    return stack.ctp.collections["subscription"].get_by_key(SUBSCRIPTION_KEY)


def test_post_deploy_twice_changes_nothing_the_second_time(cli_env: Stack) -> None:
    first = runner.invoke(app, ["post-deploy"])
    created = dict(subscription(cli_env))
    second = runner.invoke(app, ["post-deploy"])

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "created" in first.output and "unchanged" in second.output
    assert subscription(cli_env) == created
    assert created["destination"] == {
        "type": "GoogleCloudPubSub",
        "projectId": "sandbox-gcp",
        "topic": "commercetools-orders",
    }
    order_messages = ["OrderCreated", "OrderStateChanged"]
    assert created["messages"] == [{"resourceTypeId": "order", "types": order_messages}]
    assert "channel newstore: exists" in second.output


def test_post_deploy_creates_the_newstore_channel_once(
    cli_env: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = cli_env.ctp.collections["channel"]
    channels.remove(channels.get_by_key("newstore")["id"])  # a project never deployed

    first = runner.invoke(app, ["post-deploy"])
    second = runner.invoke(app, ["post-deploy"])

    assert "channel newstore: created" in first.output
    assert "channel newstore: exists" in second.output
    channel = channels.get_by_key("newstore")
    assert channel is not None and channel["roles"] == ["OrderExport"]


def test_post_deploy_subscribes_to_payment_states_only_when_paid_decides(
    cli_env: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDER_INJECT_WHEN", "paid")

    assert runner.invoke(app, ["post-deploy"]).exit_code == 0

    types = subscription(cli_env)["messages"][0]["types"]
    assert types == ["OrderCreated", "OrderStateChanged", "OrderPaymentStateChanged"]


def test_post_deploy_updates_in_place_when_the_topic_changes(
    cli_env: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(app, ["post-deploy"])
    before = dict(subscription(cli_env))
    monkeypatch.setenv("CONNECT_GCP_TOPIC_NAME", "orders-v2")

    result = runner.invoke(app, ["post-deploy"])

    after = subscription(cli_env)
    assert "updated" in result.output
    assert after["id"] == before["id"]  # updated in place, never deleted and re-created
    assert after["destination"]["topic"] == "orders-v2"


def test_post_deploy_on_aws_uses_sns(cli_env: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECT_GCP_TOPIC_NAME")
    monkeypatch.delenv("CONNECT_GCP_PROJECT_ID")
    monkeypatch.setenv("CONNECT_AWS_TOPIC_ARN", "arn:aws:sns:us-east-2:123456789012:orders")

    assert runner.invoke(app, ["post-deploy"]).exit_code == 0
    assert subscription(cli_env)["destination"] == {
        "type": "SNS",
        "topicArn": "arn:aws:sns:us-east-2:123456789012:orders",
        "authenticationMode": "IAM",
    }


def test_post_deploy_without_a_destination_is_a_clear_error(
    cli_env: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONNECT_GCP_TOPIC_NAME")

    result = runner.invoke(app, ["post-deploy"])

    assert result.exit_code == 2
    assert "CONNECT_GCP_TOPIC_NAME" in result.output and "CONNECT_AWS_TOPIC_ARN" in result.output
    assert subscription(cli_env) is None


def test_pre_undeploy_twice_deletes_then_exits_zero(cli_env: Stack) -> None:
    runner.invoke(app, ["post-deploy"])

    first = runner.invoke(app, ["pre-undeploy"])
    second = runner.invoke(app, ["pre-undeploy"])

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "deleted" in first.output and "absent" in second.output
    assert subscription(cli_env) is None
