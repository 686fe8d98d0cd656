"""Per-store stock at scale: `python -m bench.inventory_bench --channels both --nodes 10
--skus 100000` (this module runs that case).

NewStore: N SKUs at `--nodes` locations (`L00`, `L01`, ...; N x nodes stock rows, the
emulator's bulk seed); commercetools: a product per SKU, no entry yet. The job
(`INVENTORY_SYNC_MODE=incremental`, `INVENTORY_CHANNELS=both`, in its own process) then runs
four times with latency on every emulator request: the first run (a full export: it
creates the channels, the channel-less entries and one entry per SKU and location), a run
with nothing changed, a delta after `--change` of the products changed ATP at the first
location, and a full `stocked_products` run (`INVENTORY_SYNC_MODE=full`, another process)
that must write nothing. Every entry is read back and checked after the delta. Results go
to `bench/results/inventory_channels.json`.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx

from bench.common import RESULTS_DIR, peak_rss_kib, start_server, write_json
from bench.inventory_bench import (
    SEED_BATCH,
    RunFigures,
    all_entries,
    batches,
    job_server,
    node_atp,
    run_job,
    set_latency,
    sku,
)

Json = dict[str, Any]


def locations(nodes: int) -> list[str]:
    return [f"L{k:02d}" for k in range(nodes)]


def changed_atp(skus: int, share: float) -> dict[int, int]:
    step = max(1, round(1 / share))
    return {i: node_atp(i, 0) + 1 + i % 5 for i in range(1, skus + 1) if i % step == 0}


def products(skus: int) -> Iterator[Json]:
    product_type = {"typeId": "product-type", "id": "bench-type"}
    for i in range(1, skus + 1):
        yield {
            "productType": product_type,
            "name": {"en": sku(i)},
            "slug": {"en": sku(i).lower()},
            "masterVariant": {"id": 1, "sku": sku(i)},
            "variants": [],
        }


def seed(ctp_url: str, newstore_url: str, skus: int, nodes: int) -> None:
    with httpx.Client(timeout=600, trust_env=False) as client:
        for url in (ctp_url, newstore_url):
            client.post(f"{url}/_sandbox/reset").raise_for_status()
        bulk = {"bulk": {"n_skus": skus, "nodes": locations(nodes)}}
        client.post(f"{newstore_url}/_sandbox/seed", json=bulk).raise_for_status()
        for chunk in batches(products(skus), SEED_BATCH):
            client.post(f"{ctp_url}/_sandbox/seed", json={"products": chunk}).raise_for_status()


def change_stock(newstore_url: str, changed: dict[int, int]) -> None:
    rows = [
        {"product_id": f"P{i:07d}", "fulfillment_node_id": "L00", "atp": atp}
        for i, atp in changed.items()
    ]
    with httpx.Client(timeout=300, trust_env=False) as client:
        for chunk in batches(iter(rows), SEED_BATCH):
            client.post(f"{newstore_url}/_sandbox/stock", json={"stock": chunk}).raise_for_status()


def check(ctp_url: str, skus: int, nodes: int, changed: dict[int, int]) -> list[str]:
    """Every SKU: the channel-less total, and one entry per location holding its ATP."""
    held: dict[tuple[str, str | None], int] = {}
    for entry in all_entries(ctp_url):
        channel = entry.get("supplyChannel")
        held[(entry["sku"], channel["id"] if channel else None)] = entry["quantityOnStock"]
    channel_ids = sorted({c for _, c in held if c is not None})
    problems = []
    if len(channel_ids) != nodes:
        problems.append(f"{len(channel_ids)} channels, not {nodes}")
    for i in range(1, skus + 1):
        per_node = [
            changed.get(i, node_atp(i, 0)) if k == 0 else node_atp(i, k) for k in range(nodes)
        ]
        if held.get((sku(i), None)) != sum(per_node):
            problems.append(f"{sku(i)}: total {held.get((sku(i), None))}, not {sum(per_node)}")
        stored = sorted(held.get((sku(i), c), -1) for c in channel_ids)
        if stored != sorted(per_node):
            problems.append(f"{sku(i)}: per-store {stored}, not {sorted(per_node)}")
        if len(problems) > 10:
            break
    return problems


def run_channels_case(
    skus: int,
    nodes: int,
    latency_ms: float,
    concurrency: int,
    newstore_rate: float,
    graphql_batch: int,
    change: float,
) -> Json:
    settings = {
        "INVENTORY_SYNC_MODE": "incremental",
        "INVENTORY_CHANNELS": "both",
        "INVENTORY_CONCURRENCY": str(concurrency),
        "INVENTORY_NEWSTORE_RATE_LIMIT": str(newstore_rate),
        "INVENTORY_GRAPHQL_BATCH": str(graphql_batch),
    }
    runs: dict[str, RunFigures] = {}
    with ExitStack() as running:
        ctp = start_server("ctp")
        running.callback(ctp.stop)
        newstore = start_server("newstore")
        running.callback(newstore.stop)
        emulators = {"commercetools": ctp.url, "newstore": newstore.url}
        started = time.perf_counter()
        seed(ctp.url, newstore.url, skus, nodes)
        seed_s = time.perf_counter() - started
        with job_server(ctp.url, newstore.url, settings) as job:
            idle_rss = peak_rss_kib(job.pid) / 1024
            set_latency(emulators, latency_ms)
            runs["first (full export)"] = run_job(job, emulators)
            first_rss = peak_rss_kib(job.pid) / 1024
            runs["nothing changed"] = run_job(job, emulators)
            set_latency(emulators, 0)
            changed = changed_atp(skus, change)
            change_stock(newstore.url, changed)
            set_latency(emulators, latency_ms)
            runs[f"delta ({len(changed):,} products)"] = run_job(job, emulators)
            peak_rss = peak_rss_kib(job.pid) / 1024
        with job_server(ctp.url, newstore.url, {**settings, "INVENTORY_SYNC_MODE": "full"}) as job:
            runs["full mode (stocked products)"] = run_job(job, emulators)
            full_rss = peak_rss_kib(job.pid) / 1024
        set_latency(emulators, 0)
        problems = check(ctp.url, skus, nodes, changed)
    first = runs["first (full export)"]
    return {
        "case": {"skus": skus, "nodes": nodes, "channels": "both", "latency_ms": latency_ms},
        "seed_s": round(seed_s, 1),
        "runs": {name: run.figures() for name, run in runs.items()},
        "job_idle_rss_mib": round(idle_rss, 1),
        "job_peak_rss_mib_after_first": round(first_rss, 1),
        "job_peak_rss_mib_incremental": round(peak_rss, 1),
        "job_peak_rss_mib_full_mode": round(full_rss, 1),
        "delta_over_first": {
            name: round(run.wall_s / first.wall_s, 4) for name, run in runs.items()
        },
        "state_correct": not problems,
        "problems": problems[:10],
    }


def print_channels_case(result: Json) -> None:
    case = result["case"]
    print(
        f"\n{case['skus']:,} SKUs x {case['nodes']} locations, INVENTORY_CHANNELS=both, "
        f"{case['latency_ms']:g} ms latency"
    )
    print(f"  {'run':<34} {'wall (s)':>9} {'NewStore':>9} {'CT':>7} {'writes':>9} {'job CPU':>8}")
    for name, run in result["runs"].items():
        requests = run["requests"]
        print(
            f"  {name:<34} {run['wall_s']:>9} {requests['newstore']:>9} "
            f"{requests['commercetools']:>7} {run['writes']:>9} {run['job_cpu_s']:>8}"
        )
    print(
        f"  job peak RSS (MiB): idle {result['job_idle_rss_mib']}, after the first run "
        f"{result['job_peak_rss_mib_after_first']}, incremental runs "
        f"{result['job_peak_rss_mib_incremental']}, full mode "
        f"{result['job_peak_rss_mib_full_mode']}"
    )
    print(f"  state correct: {result['state_correct']}")
    for problem in result["problems"]:
        print(f"  problem: {problem}")


def main(
    skus: list[int],
    nodes: int,
    latency_ms: float,
    concurrency: int,
    newstore_rate: float,
    graphql_batch: int,
    change: float,
) -> None:
    results = []
    for size in skus:
        result = run_channels_case(
            size, nodes, latency_ms, concurrency, newstore_rate, graphql_batch, change
        )
        print_channels_case(result)
        results.append(result)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count()}
    output = RESULTS_DIR / "inventory_channels.json"
    write_json(output, {"machine": machine, "results": results})
    print(f"\nresults: {output}")
