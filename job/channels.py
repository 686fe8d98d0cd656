"""The commercetools side of per-store stock: the supply channels and their entries.

Each `ChannelSpec` (job.locations) is a Channel with the `InventorySupply` role ("Channel can
be used to track inventory entries", docs.commercetools.com, Channels: ChannelRoleEnum),
found by its key and created or brought up to date (name, role) before the entries are
planned; the entries of a channel are the Inventory Entries whose `supplyChannel` is it, one
per SKU (an entry is unique per SKU and supply channel).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from connector.commercetools import CommercetoolsClient
from job.bounded import NoProgress, Progress, chunks, for_each
from job.inventory_reads import PAGE_LIMIT, REFETCH_BATCH, CursorStalled, entries_where, literal
from job.locations import ChannelSpec
from job.plan import ChannelSlot, Entry

log = structlog.get_logger("job")

ROLE = "InventorySupply"
KEYS_PER_QUERY = 100


@dataclass(frozen=True)
class ChannelSync:
    """What this run needs of its channels: the specs, and each one's commercetools id."""

    specs: list[ChannelSpec]
    ids: dict[str, str]  # channel key -> id (only channels that exist)

    def node_channels(self) -> dict[str, list[str]]:
        """NewStore node -> the channel ids it counts in."""
        out: dict[str, list[str]] = {}
        for spec in self.specs:
            channel_id = self.ids.get(spec.key)
            if channel_id is not None:
                for node in spec.nodes:
                    out.setdefault(node, []).append(channel_id)
        return out


def channel_draft(spec: ChannelSpec, locale: str) -> dict[str, Any]:
    return {"key": spec.key, "roles": [ROLE], "name": {locale: spec.name}}


def channel_actions(spec: ChannelSpec, current: Mapping[str, Any], locale: str) -> list[Any]:
    """The update actions that bring an existing channel to its spec (none if it is)."""
    actions: list[dict[str, Any]] = []
    name = current.get("name") or {}
    if name.get(locale) != spec.name:
        actions.append({"action": "changeName", "name": {**name, locale: spec.name}})
    if ROLE not in (current.get("roles") or []):
        actions.append({"action": "addRoles", "roles": [ROLE]})
    return actions


async def ensure_channels(
    ctp: CommercetoolsClient, specs: Sequence[ChannelSpec], locale: str, create: bool
) -> ChannelSync:
    """Find each spec's channel by key; create it (`create`) or update its name and role.
    A dry run (`create=False`) only looks: a missing channel then has no id."""
    found: dict[str, dict[str, Any]] = {}
    for batch in chunks([spec.key for spec in specs], KEYS_PER_QUERY):
        where = f"key in ({', '.join(literal(key) for key in batch)})"
        for channel in await ctp.query_channels([where], limit=len(batch)):
            found[str(channel["key"])] = channel
    ids: dict[str, str] = {}
    for spec in specs:
        current = found.get(spec.key)
        if current is None:
            if not create:
                continue
            current = await ctp.create_channel(channel_draft(spec, locale))
            log.info("supply channel created", key=spec.key, nodes=sorted(spec.nodes))
        elif create and (actions := channel_actions(spec, current, locale)):
            current = await ctp.update_channel(str(current["id"]), int(current["version"]), actions)
            log.info("supply channel updated", key=spec.key, actions=[a["action"] for a in actions])
        ids[spec.key] = str(current["id"])
    return ChannelSync(list(specs), ids)


def channel_entries(results: Iterable[Mapping[str, Any]], into: dict[ChannelSlot, Entry]) -> None:
    for result in results:
        channel = result.get("supplyChannel")
        if isinstance(channel, dict) and channel.get("id"):
            quantity = int(result.get("quantityOnStock") or 0)
            slot = (str(result["sku"]), str(channel["id"]))
            into[slot] = Entry(str(result["id"]), int(result["version"]), quantity)


def _in_channels(channel_ids: Sequence[str]) -> str:
    return f"supplyChannel(id in ({', '.join(literal(i) for i in channel_ids)}))"


async def read_channel_entries(
    ctp: CommercetoolsClient, channel_ids: Sequence[str], progress: Progress | None = None
) -> dict[ChannelSlot, Entry]:
    """Every entry of these channels, by id cursor (as the channel-less read)."""
    progress = progress or NoProgress()
    entries: dict[ChannelSlot, Entry] = {}
    if not channel_ids:
        return entries
    progress.start("channels", None)
    base = [_in_channels(channel_ids)]
    where = base
    cursor: str | None = None
    while True:
        results = await ctp.query_inventory(where, PAGE_LIMIT)
        channel_entries(results, entries)
        progress.advance("channels")
        if len(results) < PAGE_LIMIT:
            return entries
        cursor = _advanced(cursor, str(results[-1]["id"]))
        where = [*base, f"id > {literal(cursor)}"]


def _advanced(cursor: str | None, last: str) -> str:
    """The next id cursor; a page that does not move past the cursor would loop forever."""
    if cursor is not None and last <= cursor:
        raise CursorStalled(
            f"the channel entries' id cursor did not advance (after {cursor[:64]!r} came "
            f"{last[:64]!r}): stopped reading",
            errors=[],
        )
    return last


async def fetch_channel_entries(
    ctp: CommercetoolsClient,
    skus: Sequence[str],
    channel_ids: Sequence[str],
    concurrency: int = 1,
) -> dict[ChannelSlot, Entry]:
    """The entries of some SKUs in these channels: 500 SKUs a GraphQL query, in the request
    body (up to 500 x channels entries, so paged by id within each batch)."""
    entries: dict[ChannelSlot, Entry] = {}
    if not channel_ids:
        return entries
    base = _in_channels(channel_ids)

    async def read(batch: Sequence[str]) -> None:
        where = f"{base} and sku in ({', '.join(literal(sku) for sku in batch)})"
        after: str | None = None
        while True:
            page = f"{where} and id > {literal(after)}" if after is not None else where
            results = await entries_where(ctp, page)
            channel_entries(results, entries)
            if len(results) < PAGE_LIMIT:
                return
            after = _advanced(after, str(results[-1]["id"]))

    await for_each(list(chunks(sorted(set(skus)), REFETCH_BATCH)), read, concurrency)
    return entries
