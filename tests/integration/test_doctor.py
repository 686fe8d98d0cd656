"""`newstore-connector doctor` against the sandbox: all ✓ when set up, and each fault a ✗
that names the fix; post-deploy fails with that report when a prerequisite is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app
from connector.deploy import SUBSCRIPTION_KEY
from sandbox.commercetools.faults import limit_client_scopes, set_subscription_status
from sandbox.stack import CTP_CLIENT, NS_USER, Stack, running_stack

runner = CliRunner()
EVENT_SCOPES = [
    "manage_orders",
    "view_payments",
    "view_shipping_methods",
    "view_cart_discounts",
    "view_discount_codes",
    "view_channels",
    "manage_key_value_documents",
]


@pytest.fixture(scope="module")
def module_stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture
def stack(module_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The module's sandbox with the connector's variables, deployed, one order injected;
    every fault a test makes is undone afterwards."""
    for name, value in module_stack.env().items():
        monkeypatch.setenv(name, value)
    assert runner.invoke(app, ["post-deploy"]).exit_code == 0
    if not module_stack.ctp.collections["order"].items:
        module_stack.create_order(1)
        module_stack.wait_idle()
    products = dict(module_stack.newstore.products)
    levels = module_stack.newstore.service_levels
    yield module_stack
    module_stack.ctp.client_scopes.clear()
    module_stack.newstore.products.clear()
    module_stack.newstore.products.update(products)
    module_stack.newstore.service_levels = levels
    existing = module_stack.ctp.collections["subscription"].get_by_key(SUBSCRIPTION_KEY)
    if existing is not None:
        set_subscription_status(module_stack.ctp, SUBSCRIPTION_KEY, "Healthy")


def doctor(*args: str) -> tuple[int, dict[str, dict[str, str]], str]:
    result = runner.invoke(app, ["doctor", "--json", *args])
    body = json.loads(result.output)
    return result.exit_code, {check["name"]: check for check in body["checks"]}, result.output


def test_a_set_up_sandbox_passes_every_check(stack: Stack) -> None:
    code, checks, _ = doctor()

    assert code == 0
    assert {name: check["outcome"] for name, check in checks.items()} == {
        "commercetools token": "pass",
        "NewStore token": "pass",
        "rate budget": "pass",
        "commercetools scopes": "pass",
        "order expansion": "pass",
        "subscription": "pass",
        "service levels": "pass",
        "products": "pass",
        "event stream": "skip",
    }
    assert "not configured" in checks["event stream"]["reason"]


def test_the_lines_carry_a_mark_each(stack: Stack) -> None:
    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 0
    lines = [line for line in result.output.splitlines() if not line.startswith("    ")]
    assert len(lines) == 9
    assert all(line[0] in "✓–" for line in lines)


def test_a_missing_scope_is_named_with_the_fix(stack: Stack) -> None:
    limit_client_scopes(stack.ctp, CTP_CLIENT[0], [s for s in EVENT_SCOPES if s != "view_payments"])

    code, checks, _ = doctor()

    assert code == 1
    scopes = checks["commercetools scopes"]
    assert scopes["outcome"] == "fail"
    assert "event app: view_payments" in scopes["reason"]
    assert "job app: view_products, manage_products" in scopes["reason"]
    assert "post-deploy: manage_subscriptions" in scopes["reason"]
    assert "view_payments:sandbox" in scopes["fix"]


def test_manage_scopes_include_their_view_scopes(stack: Stack) -> None:
    limit_client_scopes(
        stack.ctp,
        CTP_CLIENT[0],
        [
            "manage_orders",
            "manage_payments",
            "manage_shipping_methods",
            "manage_cart_discounts",
            "manage_discount_codes",
            "manage_key_value_documents",
            "manage_products",
            "manage_subscriptions",
        ],
    )

    code, checks, _ = doctor()

    assert checks["commercetools scopes"]["outcome"] == "pass"
    assert code == 0


def test_a_missing_subscription_says_run_post_deploy(stack: Stack) -> None:
    assert runner.invoke(app, ["pre-undeploy"]).exit_code == 0

    code, checks, _ = doctor()

    assert code == 1
    assert checks["subscription"]["outcome"] == "fail"
    assert "no subscription" in checks["subscription"]["reason"]
    assert "post-deploy" in checks["subscription"]["fix"]


def test_a_subscription_to_another_topic_is_a_broken_destination(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECT_GCP_TOPIC_NAME", "orders-v2")

    code, checks, _ = doctor()

    assert code == 1
    reason = checks["subscription"]["reason"]
    assert "topic=commercetools-orders" in reason and "topic=orders-v2" in reason


def test_a_subscription_in_configuration_error_fails(stack: Stack) -> None:
    set_subscription_status(stack.ctp, SUBSCRIPTION_KEY, "ConfigurationError")

    code, checks, _ = doctor()

    assert code == 1
    assert "ConfigurationError" in checks["subscription"]["reason"]
    assert "Pub/Sub Publisher" in checks["subscription"]["fix"]


def test_an_unknown_sku_is_named(stack: Stack) -> None:
    order = next(iter(stack.ctp.collections["order"].items.values()))
    sku = order["lineItems"][0]["variant"]["sku"]
    del stack.newstore.products[sku]

    code, checks, _ = doctor()

    assert code == 1
    assert checks["products"]["outcome"] == "fail"
    assert sku in checks["products"]["reason"]
    assert "NEW_STORE_PRODUCT_ID_SOURCE" in checks["products"]["fix"]


def test_a_shipping_method_that_is_no_service_level_is_named(stack: Stack) -> None:
    stack.newstore.service_levels = ["GROUND"]

    code, checks, _ = doctor()

    assert code == 1
    assert "EXPRESS -> EXPRESS" in checks["service levels"]["reason"]


def test_service_levels_are_skipped_when_newstore_shows_none(stack: Stack) -> None:
    stack.newstore.service_levels = None

    code, checks, _ = doctor()

    assert code == 0
    assert checks["service levels"]["outcome"] == "skip"
    assert "EXPRESS, GROUND" in checks["service levels"]["reason"]


def test_rate_budget_counts_every_instance(stack: Stack) -> None:
    code, checks, _ = doctor("--max-instances", "2")

    assert code == 1
    assert "NEW_STORE_INJECT_RATE to 10" in checks["rate budget"]["fix"]


def test_rate_budget_adds_the_job(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_NEWSTORE_RATE_LIMIT", "90")

    code, checks, _ = doctor()

    assert code == 1
    assert "110/s" in checks["rate budget"]["reason"]


def test_a_wrong_secret_fails_the_tokens_and_shows_no_secret(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTP_CLIENT_SECRET", "wrong-ctp-secret-123")
    monkeypatch.setenv("NEW_STORE_PASSWORD", "wrong-ns-password-456")

    code, checks, output = doctor()
    plain = runner.invoke(app, ["doctor"]).output

    assert code == 1
    assert checks["commercetools token"]["outcome"] == "fail"
    assert "401" in checks["commercetools token"]["reason"]
    assert checks["NewStore token"]["outcome"] == "fail"
    for secret in ("wrong-ctp-secret-123", "wrong-ns-password-456", CTP_CLIENT[1], NS_USER[1]):
        assert secret not in output and secret not in plain


def test_post_deploy_fails_with_the_report_when_a_prerequisite_is_missing(stack: Stack) -> None:
    stack.newstore.service_levels = ["GROUND"]

    result = runner.invoke(app, ["post-deploy"])

    assert result.exit_code == 1
    assert "✗ service levels" in result.output
    assert "missing prerequisite" in result.output


def test_scopes_are_those_of_the_api_client_not_of_this_jobs_ctp_scope(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deploy job narrows its own token (docs/deploy.md); the apps can still get theirs.
    monkeypatch.setenv("CTP_SCOPE", "manage_subscriptions:sandbox")

    code, checks, _ = doctor()

    assert checks["commercetools scopes"]["outcome"] == "pass"
    assert code == 0


def test_post_deploy_can_skip_the_doctor(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEW_STORE_BASE_URL")
    assert runner.invoke(app, ["post-deploy"]).exit_code == 1  # the doctor: no NewStore

    result = runner.invoke(app, ["post-deploy", "--skip-doctor"])

    assert result.exit_code == 0
    assert "unchanged" in result.output


def test_an_unreachable_newstore_is_a_failed_check_not_a_traceback(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_STORE_BASE_URL", "http://127.0.0.1:9")

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit 1, nothing raised
    failing = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert len(failing) == 1 and failing[0].startswith("✗ NewStore token: newstore:")
