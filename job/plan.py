"""The sync plan: a pure function of NewStore's stock and commercetools' inventory.

For every SKU that NewStore stocks, the target is its ATP summed over all fulfillment nodes,
and commercetools' channel-less `quantityOnStock` must equal it:

- update: the SKU has a channel-less entry whose `quantityOnStock` differs (compared with
  `quantityOnStock`, the field that is written, never `availableQuantity`: with a
  reservation the two differ, and comparing the wrong one rewrites the entry every run);
- create: no entry, and the SKU exists as a commercetools product;
- skip (counted): no entry and no product; commercetools refuses nothing here, but stock
  for a SKU that is not sold would only be noise, and the product may be created later.

Negative aggregate ATP (NewStore reports oversold nodes below zero) is written as 0:
commercetools would accept a negative `quantityOnStock`, but "less than nothing in stock"
means the same to a storefront as nothing, and a negative value confuses stock checks. Such
SKUs are counted (`negative_clamped`).

Entries of SKUs that NewStore does not stock are left alone (counted as
`not_in_newstore`): they may be managed elsewhere, and zeroing them because a NewStore row
is missing would be a far worse failure than leaving them.

Per store (`INVENTORY_CHANNELS=per-location|both`, `plan_channels`): the same rules per
(SKU, supply channel), the target being the ATP summed over the NewStore locations mapped
onto that channel. A SKU that NewStore stocks gets an entry in a channel where one of the
channel's locations has a row for it; an existing entry of a stocked SKU whose locations
no longer have a row is set to 0 (the store has none), not left at its old value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ChannelSlot = tuple[str, str]  # (sku, supply channel id)
Slot = str | ChannelSlot  # a channel-less entry is named by its SKU alone


@dataclass(frozen=True, slots=True)
class Entry:
    """What the plan needs of a channel-less inventory entry."""

    id: str
    version: int
    quantity: int  # quantityOnStock


@dataclass(frozen=True, slots=True)
class Update:
    sku: str
    entry_id: str
    version: int
    quantity: int
    channel: str | None = None  # the supply channel's id; None: the channel-less entry

    @property
    def slot(self) -> Slot:
        return self.sku if self.channel is None else (self.sku, self.channel)


@dataclass(frozen=True, slots=True)
class Create:
    sku: str
    quantity: int
    channel: str | None = None

    @property
    def slot(self) -> Slot:
        return self.sku if self.channel is None else (self.sku, self.channel)


Write = Update | Create


@dataclass(frozen=True)
class Plan:
    updates: list[Update] = field(default_factory=list)
    creates: list[Create] = field(default_factory=list)
    unchanged: int = 0
    skipped_no_product: int = 0
    negative_clamped: int = 0
    not_in_newstore: int = 0

    @property
    def writes(self) -> list[Write]:
        return [*self.updates, *self.creates]

    def __add__(self, other: Plan) -> Plan:
        return Plan(
            updates=self.updates + other.updates,
            creates=self.creates + other.creates,
            unchanged=self.unchanged + other.unchanged,
            skipped_no_product=self.skipped_no_product + other.skipped_no_product,
            negative_clamped=self.negative_clamped + other.negative_clamped,
            not_in_newstore=self.not_in_newstore + other.not_in_newstore,
        )


def target_quantity(aggregate_atp: int) -> int:
    return max(aggregate_atp, 0)


def skus_without_entry(atp: Mapping[str, int], entries: Mapping[str, Entry]) -> list[str]:
    """The SKUs whose product existence must be checked (only these), sorted."""
    return sorted(sku for sku in atp if sku not in entries)


def plan_sync(
    atp: Mapping[str, int],
    entries: Mapping[str, Entry],
    product_skus: Collection[str],
) -> Plan:
    """`atp`: aggregate ATP per SKU; `entries`: channel-less entries per SKU;
    `product_skus`: SKUs known to exist as products (at least those without an entry)."""
    updates: list[Update] = []
    creates: list[Create] = []
    unchanged = skipped = clamped = 0
    for sku in sorted(atp):
        aggregate = atp[sku]
        quantity = target_quantity(aggregate)
        clamped += aggregate < 0
        entry = entries.get(sku)
        if entry is None:
            if sku in product_skus:
                creates.append(Create(sku, quantity))
            else:
                skipped += 1
        elif entry.quantity != quantity:
            updates.append(Update(sku, entry.id, entry.version, quantity))
        else:
            unchanged += 1
    return Plan(
        updates=updates,
        creates=creates,
        unchanged=unchanged,
        skipped_no_product=skipped,
        negative_clamped=clamped,
        not_in_newstore=sum(1 for sku in entries if sku not in atp),
    )


def channel_targets(
    nodes: Mapping[str, Mapping[str, int]], node_channels: Mapping[str, list[str]]
) -> Iterator[tuple[ChannelSlot, int]]:
    """ATP per (SKU, channel): each node's ATP counted in the channels it is mapped onto.
    Nodes mapped nowhere (excluded, disabled) count in no channel."""
    for sku, per_node in nodes.items():
        sums: dict[str, int] = {}
        for node, atp in per_node.items():
            for channel in node_channels.get(node, ()):
                sums[channel] = sums.get(channel, 0) + atp
        for channel, atp in sums.items():
            yield (sku, channel), atp


def plan_channels(
    nodes: Mapping[str, Mapping[str, int]],
    node_channels: Mapping[str, list[str]],
    entries: Mapping[ChannelSlot, Entry],
    product_skus: Collection[str],
) -> Plan:
    """Per-store entries: `nodes` is ATP per SKU per NewStore node (the SKUs this run
    knows: all of them in a full read, a delta's otherwise), `node_channels` which channel
    ids each node counts in, `entries` the existing entries of those channels."""
    targets = dict(channel_targets(nodes, node_channels))
    channels = {channel for ids in node_channels.values() for channel in ids}
    for slot in entries:  # a stocked SKU's entry whose locations no longer have a row: 0
        if slot[0] in nodes and slot[1] in channels:
            targets.setdefault(slot, 0)
    updates: list[Update] = []
    creates: list[Create] = []
    unchanged = skipped = clamped = 0
    for slot in sorted(targets):
        sku, channel = slot
        quantity = target_quantity(targets[slot])
        clamped += targets[slot] < 0
        entry = entries.get(slot)
        if entry is None:
            if sku in product_skus:
                creates.append(Create(sku, quantity, channel))
            else:
                skipped += 1
        elif entry.quantity != quantity:
            updates.append(Update(sku, entry.id, entry.version, quantity, channel))
        else:
            unchanged += 1
    return Plan(
        updates=updates,
        creates=creates,
        unchanged=unchanged,
        skipped_no_product=skipped,
        negative_clamped=clamped,
        not_in_newstore=sum(1 for slot in entries if slot[0] not in nodes),
    )


def skus_without_channel_entry(
    nodes: Mapping[str, Mapping[str, int]],
    node_channels: Mapping[str, list[str]],
    entries: Mapping[ChannelSlot, Entry],
) -> set[str]:
    return {slot[0] for slot, _ in channel_targets(nodes, node_channels) if slot not in entries}


def recompute(write: Write, current: Entry | None) -> Write | None:
    """The write to retry once the entry has been read again (after a conflict or a
    DuplicateField), or None when the entry already holds the target.

    The target is NewStore's and does not depend on the entry, so only the version and the
    choice of update or create change."""
    if current is None:
        return Create(write.sku, write.quantity, write.channel)
    if current.quantity == write.quantity:
        return None
    return Update(write.sku, current.id, current.version, write.quantity, write.channel)


def channel_less_entries(results: Iterable[Mapping[str, Any]], into: dict[str, Entry]) -> None:
    """Index inventory entries by SKU, keeping only channel-less ones.

    The query already asks for `supplyChannel is not defined`; checking again here means a
    query mistake can never make the job write an entry that belongs to a channel."""
    for result in results:
        if result.get("supplyChannel") is None:
            sku = str(result["sku"])
            quantity = int(result.get("quantityOnStock") or 0)
            into[sku] = Entry(str(result["id"]), int(result["version"]), quantity)


def sample_changes(
    plan: Plan, entries: Mapping[Any, Entry], size: int, channel_keys: Mapping[str, str] = {}
) -> list[dict[str, Any]]:
    """A few of the planned writes, with the quantity each replaces (for a dry run);
    `entries` by slot, `channel_keys` channel id -> key, to name a write's channel."""

    def named(write: Write) -> dict[str, Any]:
        if write.channel is None:
            return {"sku": write.sku}
        return {"sku": write.sku, "channel": channel_keys.get(write.channel, write.channel)}

    updates = [
        {**named(u), "action": "update", "from": entries[u.slot].quantity, "to": u.quantity}
        for u in plan.updates[:size]
    ]
    creates = [
        {**named(c), "action": "create", "from": None, "to": c.quantity}
        for c in plan.creates[:size]
    ]
    return updates + creates
