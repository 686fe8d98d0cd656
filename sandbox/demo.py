"""`./dev demo` and `./dev sandbox`: the connector on one laptop.

The demo runs the whole lifecycle against the emulators and exits 0; the sandbox keeps
everything running for manual exploration and prints the URLs and environment to use.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.logs import configure_logging
from connector.newstore import NewStoreClient
from job.settings import InventorySettings
from lifecycle import registration
from sandbox import catalog
from sandbox.stack import Stack, running_stack

console = Console()


def run_demo(order_count: int = 4) -> None:
    configure_logging("WARNING")
    started = time.monotonic()
    console.print("starting the emulators and both apps on loopback...")
    # Per-store stock as well as the total: one supply channel per NewStore location.
    job_settings = InventorySettings(channels="both")
    with running_stack(
        with_job_app=True, job_settings=job_settings, with_lifecycle_app=True
    ) as stack:
        _show_services(stack)
        _step("post-deploy", _deploy(stack, deploy.post_deploy))
        _step("post-deploy", _lifecycle_integration(stack, remove=False))
        _seed_stale_inventory(stack)
        _step(
            "catalog",
            f"{len(catalog.PRODUCTS)} products, shipping methods GROUND and EXPRESS, NewStore "
            f"stock at {len(catalog.FULFILLMENT_NODES)} fulfillment nodes",
        )
        _orders(stack, order_count)
        _shipping(stack)
        _cancellation(stack)
        _inventory(stack)
        _step("pre-undeploy", _deploy(stack, lambda ctp, _: deploy.pre_undeploy(ctp)))
        _step("pre-undeploy", _lifecycle_integration(stack, remove=True))
    console.print(f"[green]demo finished in {time.monotonic() - started:.1f} s[/green]")


def run_sandbox() -> None:
    configure_logging()
    with running_stack(with_job_app=True) as stack:
        _deploy(stack, deploy.post_deploy)
        _seed_stale_inventory(stack)
        _show_services(stack)
        console.print("\nEnvironment for the CLI (e.g. `newstore-connector orders failed`):")
        for name, value in stack.env().items():
            console.print(f"export {name}={value}", highlight=False, soft_wrap=True)
        console.print(
            f"\nOrders posted to {stack.ctp_url}/_sandbox/orders are delivered to the event app;"
            f" POST {stack.job_url}/job syncs stock. Press Ctrl-C to stop."
        )
        _wait_for_interrupt()


def _show_services(stack: Stack) -> None:
    table = Table("service", "URL", title="sandbox")
    table.add_row("commercetools emulator", stack.ctp_url)
    table.add_row("NewStore emulator", stack.newstore_url)
    table.add_row("Pub/Sub push simulator", stack.pubsub_url)
    table.add_row("event app (POST /event)", str(stack.event_url))
    table.add_row("job app (POST /job)", str(stack.job_url))
    if stack.lifecycle_url:
        table.add_row("lifecycle app (POST /lifecycle)", stack.lifecycle_url)
    console.print(table)


def _step(name: str, detail: str) -> None:
    console.print(f"[bold cyan]{name}[/bold cyan]: {detail}")


def _deploy(stack: Stack, script: Any) -> str:
    async def run() -> str:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            result = await script(ctp, stack.env())
            return f"subscription {deploy.SUBSCRIPTION_KEY} {result.action}"

    return asyncio.run(run())


def _lifecycle_integration(stack: Stack, *, remove: bool) -> str:
    async def run() -> str:
        async with NewStoreClient(stack.settings().newstore) as newstore:
            settings = stack.lifecycle_settings()
            if remove:
                result = await registration.remove_integration(newstore, settings)
            else:
                result = await registration.ensure_integration(newstore, settings)
            return f"event stream integration {result.integration_id} {result.action}"

    return asyncio.run(run())


def _shipping(stack: Stack) -> None:
    """The first order ships in NewStore; commercetools shows it Shipped, with tracking."""
    order_id = next(iter(o.external_id for o in stack.newstore.orders.values()))
    ns_id = stack.newstore.orders[order_id].id
    with httpx.Client(base_url=stack.newstore_url, timeout=30) as newstore:
        for body in (
            {"step": "assign"},
            {"step": "ready"},
            {"step": "ship", "carrier": "UPS", "tracking_code": "1Z999AA10123456784"},
        ):
            newstore.post(f"/_sandbox/orders/{ns_id}/lifecycle", json=body).raise_for_status()
        newstore.post("/_sandbox/stream/deliver").raise_for_status()
    order = stack.ctp.collections["order"].get(order_id)
    assert order is not None
    deliveries = (order.get("shippingInfo") or {}).get("deliveries") or []
    tracking = [p.get("trackingData", {}) for d in deliveries for p in d.get("parcels", [])]
    _step(
        "shipped in NewStore",
        f"order {order.get('orderNumber')}: shipmentState {order.get('shipmentState')}, "
        f"{len(deliveries)} delivery, tracking "
        + ", ".join(f"{t.get('carrier')} {t.get('trackingId')}" for t in tracking),
    )
    if order.get("shipmentState") != "Shipped":
        raise SystemExit("the shipment did not reach commercetools")


def _seed_stale_inventory(stack: Stack) -> None:
    """Half of the SKUs already have a (stale) commercetools entry; the job fixes them all."""
    entries = [
        {"sku": sku, "quantityOnStock": 5}
        for sku, _, _ in catalog.PRODUCTS[: len(catalog.PRODUCTS) // 2]
    ]
    stack.ctp.seed({"inventory": entries})


def _orders(stack: Stack, count: int) -> None:
    order_ids = {stack.create_order(number): number for number in range(1, count + 1)}
    stack.wait_idle()
    injected = {o.external_id: o for o in stack.newstore.orders.values()}
    table = Table(
        "order number", "customer", "units", "total", "NewStore order id", title="orders injected"
    )
    for order_id, number in order_ids.items():
        order = stack.ctp.collections["order"].get(order_id)
        assert order is not None, f"order {order_id} vanished from the emulator"
        newstore = injected.get(order_id)
        table.add_row(
            order.get("orderNumber", str(number)),
            order.get("customerEmail", ""),
            str(sum(line["quantity"] for line in order["lineItems"])),
            f"{order['totalPrice']['centAmount'] / 100:.2f} USD",
            newstore.id if newstore else "[red]not injected[/red]",
        )
    console.print(table)
    if len(injected) != count:
        raise SystemExit(f"only {len(injected)} of {count} orders reached NewStore")


def _cancellation(stack: Stack) -> None:
    """A merchant cancels one injected order in commercetools: the OrderStateChanged message
    reaches the event app, which cancels the order in NewStore. Not the first order: that
    one has shipped (`_shipping`), and NewStore cannot cancel a shipped order."""
    order_id = [o.external_id for o in stack.newstore.orders.values()][-1]
    stored = stack.ctp.collections["order"].get(order_id)
    assert stored is not None, f"order {order_id} vanished from the emulator"
    newstore_id = stored["syncInfo"][0]["externalId"]  # where the event app wrote it

    async def cancel() -> None:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            order = await ctp.get_order(order_id)
            action = {"action": "changeOrderState", "orderState": "Cancelled"}
            await ctp.update_order(order_id, order["version"], [action])

    asyncio.run(cancel())
    stack.wait_idle()
    sent = [r for r in stack.newstore.lifecycle.cancel_requests if r["order_id"] == newstore_id]
    if not sent:
        raise SystemExit(f"the cancellation of order {order_id} did not reach NewStore")
    _step(
        "cancellation",
        f"order {order_id} cancelled in commercetools -> NewStore order {newstore_id} "
        f"cancelled (reason: {sent[0]['reason']!r})",
    )


def _inventory(stack: Stack) -> None:
    before = _channel_less_stock(stack)
    summary = httpx.post(f"{stack.job_url}/job", timeout=120).json()
    after = _channel_less_stock(stack)
    atp = _newstore_atp(stack)
    table = Table("SKU", "NewStore ATP (all nodes)", "before", "after", title="inventory sync")
    for sku, _, _ in catalog.PRODUCTS:
        table.add_row(sku, str(atp.get(sku, 0)), str(before.get(sku, "-")), str(after.get(sku)))
    console.print(table)
    _per_store(stack)
    _step(
        "job",
        f"created {summary['created']}, updated {summary['updated']}, unchanged "
        f"{summary['unchanged']}, failed {len(summary['failed'])} in {summary['duration_s']} s",
    )


def _per_store(stack: Stack) -> None:
    """The supply channels the job made of NewStore's locations, and their entries."""
    channels = {
        c["id"]: c
        for c in stack.ctp.collections["channel"].items.values()
        if "InventorySupply" in c.get("roles", [])  # not the orders' `newstore` channel
    }
    keys = sorted(channels, key=lambda i: channels[i]["key"])
    held: dict[tuple[str, str], int] = {}
    for entry in stack.ctp.collections["inventory-entry"].items.values():
        if entry.get("supplyChannel"):
            held[(entry["sku"], entry["supplyChannel"]["id"])] = entry["quantityOnStock"]
    titles = [
        f"{channels[i]['key']}\n{next(iter(channels[i].get('name', {}).values()), '')}"
        for i in keys
    ]
    table = Table("SKU", *titles, title="per-store stock (supply channels)")
    for sku, _, _ in catalog.PRODUCTS:
        table.add_row(sku, *(str(held.get((sku, i), "-")) for i in keys))
    console.print(table)


def _newstore_atp(stack: Stack) -> dict[str, int]:
    emulator = stack.newstore
    return {
        emulator.products.get(product_id, product_id): sum(atp for atp, _ in nodes.values())
        for product_id, nodes in emulator.stock.items()
    }


def _channel_less_stock(stack: Stack) -> dict[str, int]:
    entries = stack.ctp.collections["inventory-entry"].items.values()
    return {e["sku"]: e["quantityOnStock"] for e in entries if not e.get("supplyChannel")}


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping...")
