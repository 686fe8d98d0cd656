"""The job app over real HTTP on loopback, against both emulators, and the CLI beside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from cli.inventory import inventory_app
from connector.http import RetryPolicy
from connector.settings import Settings
from job.app import create_app
from job.settings import InventorySettings
from sandbox import catalog
from sandbox.commercetools.errors import invalid_input
from sandbox.server import serve_in_thread
from sandbox.stack import Stack, running_stack
from tests.job.conftest import no_inventory_variables

pytestmark = pytest.mark.usefixtures(no_inventory_variables.__name__)

CHANNEL = {"typeId": "channel", "id": "store-1"}
EXTRA_SKUS = 100  # 300 more stock rows: paging past 200 rows


def sku(i: int) -> str:
    return f"SKU-{i:07d}"


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack(with_event_app=False) as running:
        running.newstore.bulk_seed_stock(EXTRA_SKUS)
        products = [{"masterVariant": {"id": 1, "sku": sku(i)}} for i in range(1, 61)]
        inventory: list[dict[str, Any]] = [
            {"sku": sku(i), "quantityOnStock": i % 4, "reserved": i % 2} for i in range(1, 41)
        ]
        inventory.append({"sku": sku(1), "quantityOnStock": 999, "supplyChannel": CHANNEL})
        running.ctp.seed({"products": products, "inventory": inventory})
        yield running


def job_client(stack: Stack, settings: Settings | None = None, **inventory: Any) -> Any:
    app = create_app(settings or stack.settings(), InventorySettings(**inventory))
    return serve_in_thread(app)


def targets(stack: Stack) -> dict[str, int]:
    """NewStore's aggregate ATP per SKU, from the emulator's own state."""
    emulator = stack.newstore
    return {
        emulator.products[product]: sum(atp for atp, _ in nodes.values())
        for product, nodes in emulator.stock.items()
    }


def channel_less(stack: Stack) -> dict[str, int]:
    entries = stack.ctp.collections["inventory-entry"].items.values()
    return {e["sku"]: e["quantityOnStock"] for e in entries if "supplyChannel" not in e}


def test_health_needs_no_upstream(stack: Stack) -> None:
    with job_client(stack) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}


@pytest.mark.parametrize("mode", ["full", "auto"])
def test_a_full_run_makes_commercetools_equal_newstore_and_a_second_run_writes_nothing(
    stack: Stack, mode: str
) -> None:
    with job_client(stack, concurrency=4, graphql_batch=7, sync_mode=mode) as url:
        first = httpx.post(f"{url}/job", timeout=60)
        second = httpx.post(f"{url}/job", timeout=60)

    assert first.status_code == 200
    body = first.json()
    # 8 catalog SKUs with products and no entry, 40 entries, 20 more products without entry,
    # 40 SKUs with neither.
    assert body["status"] == "ok" and body["failed"] == []
    assert body["created"] == 8 + 20
    assert body["skipped_no_product"] == 40
    assert body["created"] + body["updated"] + body["unchanged"] == 8 + 60
    assert body["stock_rows"] == 24 + 3 * EXTRA_SKUS
    assert body["requests"]["newstore"] >= 5  # a token and 4 pages of at most 100 rows
    held = channel_less(stack)
    with_product = {name for name, _, _ in catalog.PRODUCTS} | {sku(i) for i in range(1, 61)}
    for name, quantity in targets(stack).items():
        assert held.get(name) == (max(quantity, 0) if name in with_product else None), name
    entries = stack.ctp.collections["inventory-entry"].items.values()
    channel = [(e["quantityOnStock"], e["version"]) for e in entries if "supplyChannel" in e]
    assert channel == [(999, 1)]

    again = second.json()
    assert (second.status_code, again["created"], again["updated"]) == (200, 0, 0)
    if mode == "full":  # every SKU read and compared again
        assert (body["mode"], again["unchanged"]) == ("full", 8 + 60)
    else:  # the first run was a full export; the second a delta of nothing
        assert (body["mode"], body["export"], again["export"]) == ("incremental", "full", "delta")
        assert again["cursor"]["before"] == body["cursor"]["after"] == again["cursor"]["after"]
        assert (again["unchanged"], again["stock_rows"]) == (0, 0)
        assert sum(again["requests"].values()) < 10


def test_post_job_reports_the_mode_the_cursor_and_the_changes(stack: Stack) -> None:
    with job_client(stack) as url:
        first = httpx.post(f"{url}/job", timeout=60).json()
        row = {"product_id": "P0000003", "fulfillment_node_id": "STORE01", "atp": 77}
        httpx.post(f"{stack.newstore_url}/_sandbox/stock", json={"stock": [row]})
        delta = httpx.post(f"{url}/job", timeout=60).json()

    assert (first["mode"], first["export"], first["cursor"]["before"]) == (
        "incremental",
        "full",
        None,
    )
    assert delta["mode_reason"] == f"delta since cursor {first['cursor']['after']}"
    assert delta["cursor"]["after"] == delta["cursor"]["exported"] > first["cursor"]["after"]
    # only the changed (product, node) row: the emulator's default delta; the total is
    # still over every node (the per-node state)
    assert (delta["updated"], delta["created"], delta["stock_rows"]) == (1, 0, 1)
    assert channel_less(stack)[sku(3)] == targets(stack)[sku(3)]
    lease = stack.ctp.get_custom_object("newstore-connector-jobs", "inventory-sync")
    assert lease["value"]["last_run"]["cursor"] == delta["cursor"]


def test_auto_mode_falls_back_to_full_when_the_export_api_answers_404(stack: Stack) -> None:
    controls = f"{stack.newstore_url}/_sandbox/emulator-controls"
    httpx.patch(controls, json={"export_api_enabled": False}).raise_for_status()
    with job_client(stack) as url:
        body = httpx.post(f"{url}/job", timeout=60).json()
    assert (body["status"], body["mode"]) == ("ok", "full")
    assert "export API answered 404" in body["mode_reason"]
    assert body["stock_rows"] == 24 + 3 * EXTRA_SKUS


def test_a_run_is_skipped_while_another_holds_the_lease(stack: Stack) -> None:
    held = {"holder": "elsewhere/1", "expires_at": 4_000_000_000}
    stack.ctp.upsert_custom_object(
        {"container": "newstore-connector-jobs", "key": "inventory-sync", "value": held}
    )
    with job_client(stack) as url:
        response = httpx.post(f"{url}/job", timeout=60)
    assert response.status_code == 200
    assert response.json()["status"] == "skipped"
    assert response.json()["holder"]["holder"] == "elsewhere/1"
    assert channel_less(stack) == {sku(i): i % 4 for i in range(1, 41)}


def test_refused_credentials_mean_the_sync_could_not_run(stack: Stack) -> None:
    settings = stack.settings()
    wrong = settings.newstore.model_copy(update={"password": SecretStr("wrong")})
    with job_client(stack, Settings(settings.commercetools, wrong)) as url:
        response = httpx.post(f"{url}/job", timeout=60)
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "token request refused" in response.json()["error"]
    # The lease was released: the next run need not wait for it to expire.
    lease = stack.ctp.get_custom_object("newstore-connector-jobs", "inventory-sync")
    assert lease["value"]["expires_at"] == 0


def test_an_upstream_that_keeps_failing_means_503(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = RetryPolicy(max_attempts=2, budget_s=1, initial_backoff_s=0.01, max_backoff_s=0.01)
    monkeypatch.setattr("job.sync.JOB_RETRY", fast)
    httpx.put(f"{stack.newstore_url}/_sandbox/controls", json={"fault_rate": 1.0})
    with job_client(stack) as url:
        response = httpx.post(f"{url}/job", timeout=60)
    assert (response.status_code, response.json()["status"]) == (503, "error")


def test_the_deadline_stops_a_run_before_it_writes_on_partial_data(stack: Stack) -> None:
    with job_client(stack, deadline_s=0.001) as url:
        body = httpx.post(f"{url}/job", timeout=60).json()
    assert (body["status"], body["stopped"]) == ("partial", "deadline")
    assert body["created"] + body["updated"] == 0
    assert channel_less(stack) == {sku(i): i % 4 for i in range(1, 41)}


def test_cli_dry_run_prints_the_plan_and_writes_nothing(stack: Stack) -> None:
    before = channel_less(stack)
    result = CliRunner().invoke(inventory_app, ["sync", "--dry-run"], env=stack.env())
    assert result.exit_code == 0, result.output
    assert "dry_run" in result.output and "sample of planned changes" in result.output
    assert channel_less(stack) == before

    result = CliRunner().invoke(inventory_app, ["sync"], env=stack.env())
    assert result.exit_code == 0, result.output
    assert channel_less(stack) != before
    assert "incremental (full export: no cursor yet)" in result.output
    assert "cursor before / exported / after" in result.output


def test_a_run_with_a_refused_sku_answers_200_degraded_and_lists_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    update = stack.ctp.update_inventory

    def refusing(entry_id: str, body: dict[str, Any]) -> Any:
        if stack.ctp.collections["inventory-entry"].items[entry_id]["sku"] == sku(2):
            raise invalid_input("refused by a validation rule")
        return update(entry_id, body)

    monkeypatch.setattr(stack.ctp, "update_inventory", refusing)
    with job_client(stack, concurrency=4, sync_mode="incremental") as url:
        answer = httpx.post(f"{url}/job", timeout=60)
    # 200, not 5xx: Cloud Scheduler would retry a non-2xx at once, for nothing
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "degraded" and body["cursor"]["after"] is not None
    assert [entry["sku"] for entry in body["failing"]] == [sku(2)]
