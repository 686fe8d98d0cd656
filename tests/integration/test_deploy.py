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
    assert created["messages"] == [{"resourceTypeId": "order", "types": ["OrderCreated"]}]


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
