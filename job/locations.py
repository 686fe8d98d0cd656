"""Which NewStore locations become which commercetools supply channels (`INVENTORY_CHANNELS`
= `per-location` or `both`).

NewStore lists its locations in the Location API (docs.newstore.net, "Location API (v0)",
"List locations": `{locations: [{id, is_enabled, is_inventory_master, type}]}`, at most
2,000); a location's id is the `fulfillment_node_id` of its stock rows ("Locations are
created during a stock import using the fulfillment_node_id property"). A location with
`is_enabled: false` has been stopped from fulfilling orders ("Disabling locations") and is
not synced.

By default every enabled location is one channel, key = the location id, name = the name
NewStore gives it (the documented list carries none, so usually the id). The optional map
(`INVENTORY_LOCATION_MAP`, JSON or `@file`) changes that:

    {"include": ["US01", "US02", "DC01"],       # only these (default: all)
     "exclude": ["DC01"],                        # never these
     "channels": {"US01": {"key": "nyc", "name": "New York"},
                  "US02": {"key": "nyc"}}}       # two locations, one channel: ATP summed

Everything here is pure except `read_locations`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.newstore import NewStoreClient
from connector.settings import ConfigError

# commercetools keys: 2-256 of [A-Za-z0-9_-] (docs.commercetools.com, "Channel": key)
CHANNEL_KEY = re.compile(r"^[A-Za-z0-9_-]{2,256}$")
VARIABLE = "INVENTORY_LOCATION_MAP"


@dataclass(frozen=True)
class Location:
    id: str
    enabled: bool
    name: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class LocationMap:
    include: frozenset[str] | None = None  # None: every location
    exclude: frozenset[str] = frozenset()
    channels: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # location id -> (channel key, channel name), either may be None (the default)


@dataclass(frozen=True)
class ChannelSpec:
    """One commercetools channel and the NewStore locations whose ATP it sums."""

    key: str
    name: str
    nodes: frozenset[str]


@dataclass(frozen=True)
class ChannelPlan:
    specs: list[ChannelSpec]
    skipped_disabled: list[str]  # enabled: false
    skipped_excluded: list[str]  # not included, or excluded
    skipped_invalid: list[str] = field(default_factory=list)  # id unusable as a channel key


def parse_location_map(text: str) -> LocationMap:
    """The map from its setting: JSON, or `@<path>` of a JSON file. `ConfigError` names the
    variable and what is wrong (never a value that could be a secret: there are none)."""
    text = text.strip()
    if not text:
        return LocationMap()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{VARIABLE}: cannot read {text[1:]}: {error.strerror}") from None
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{VARIABLE}: not valid JSON ({error})") from None
    if not isinstance(raw, dict) or set(raw) - {"include", "exclude", "channels"}:
        raise ConfigError(f"{VARIABLE}: an object with include, exclude and channels expected")
    include = raw.get("include")
    channels: dict[str, tuple[str | None, str | None]] = {}
    for location, target in (raw.get("channels") or {}).items():
        if isinstance(target, str):
            target = {"key": target}
        if not isinstance(target, dict) or set(target) - {"key", "name"}:
            raise ConfigError(f"{VARIABLE}: channels.{location}: {{key, name}} expected")
        key, name = target.get("key"), target.get("name")
        if key is not None and not (isinstance(key, str) and CHANNEL_KEY.match(key)):
            raise ConfigError(
                f"{VARIABLE}: channels.{location}.key: 2 to 256 letters, digits, - or _"
            )
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ConfigError(f"{VARIABLE}: channels.{location}.name: a non-empty string")
        channels[str(location)] = (key, name)
    return LocationMap(
        include=None if include is None else frozenset(_ids(include, "include")),
        exclude=frozenset(_ids(raw.get("exclude") or [], "exclude")),
        channels=channels,
    )


def _ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{VARIABLE}: {name}: a list of location ids expected")
    return list(value)


def plan_channels(locations: Iterable[Location], mapping: LocationMap) -> ChannelPlan:
    """The channels to sync: enabled, included, not excluded locations, grouped by key."""
    nodes: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    explicit: dict[str, str] = {}
    disabled: list[str] = []
    excluded: list[str] = []
    invalid: list[str] = []
    for location in sorted(locations, key=lambda loc: loc.id):
        if (mapping.include is not None and location.id not in mapping.include) or (
            location.id in mapping.exclude
        ):
            excluded.append(location.id)
            continue
        if not location.enabled:
            disabled.append(location.id)
            continue
        key, name = mapping.channels.get(location.id, (None, None))
        key = key or location.id
        if not CHANNEL_KEY.match(key):  # map it to a valid key to sync it
            invalid.append(location.id)
            continue
        nodes.setdefault(key, set()).add(location.id)
        names.setdefault(key, location.name or location.id)
        if name:
            explicit.setdefault(key, name)
    specs = [
        ChannelSpec(key, explicit.get(key) or names[key], frozenset(members))
        for key, members in sorted(nodes.items())
    ]
    return ChannelPlan(specs, disabled, excluded, invalid)


def location_of(raw: Mapping[str, Any]) -> Location | None:
    location_id = raw.get("id")
    if not isinstance(location_id, str) or not location_id:
        return None
    name = raw.get("name")
    return Location(
        location_id,
        # only an explicit false disables: a field NewStore does not send changes nothing
        raw.get("is_enabled") is not False,
        name if isinstance(name, str) and name.strip() else None,
        str(raw["type"]) if raw.get("type") is not None else None,
    )


async def read_locations(newstore: NewStoreClient) -> list[Location]:
    return [loc for raw in await newstore.locations() if (loc := location_of(raw)) is not None]
