"""Channels in the commercetools emulator: create and update (reads are the generic ones).

What is checked, from docs.commercetools.com "Channels" and the published OpenAPI
(`ChannelDraft`, `ChannelUpdate`): `key` is required, unique, 2-256 of `[A-Za-z0-9_-]`;
`roles` are `ChannelRoleEnum` values (default `["InventorySupply"]`); `name` and
`description` are LocalizedStrings; updates carry the current `version`. Update actions:
`changeName`, `changeKey`, `setRoles`, `addRoles`, `removeRoles` (others are refused).
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.commercetools.common import Json, now_iso
from sandbox.commercetools.drafts import checked_actions
from sandbox.commercetools.errors import duplicate, invalid_json

ROLES = ("InventorySupply", "ProductDistribution", "OrderExport", "OrderImport", "Primary")
KEY = re.compile(r"^[A-Za-z0-9_-]{2,256}$")
DRAFT_FIELDS = {"key", "roles", "name", "description", "address", "custom", "geoLocation"}


def _localized(value: Any, field_name: str) -> Json:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid_json(f"{field_name}: LocalizedString (an object of strings) expected")
    return dict(value)


def _roles(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(role in ROLES for role in value):
        raise invalid_json(f"roles: a list of {', '.join(ROLES)} expected")
    return list(dict.fromkeys(value))


def _key(value: Any) -> str:
    if not isinstance(value, str) or not KEY.match(value):
        raise invalid_json("key: 2 to 256 characters of A-Z, a-z, 0-9, - and _ expected")
    return value


def new_channel(emu: Any, draft: Json) -> Json:
    unknown = set(draft) - DRAFT_FIELDS
    if unknown:
        raise invalid_json(f"{sorted(unknown)[0]}: unknown field of ChannelDraft")
    key = _key(draft.get("key"))
    channels = emu.collections["channel"]
    if channels.get_by_key(key) is not None:
        raise duplicate("key", key)
    channel: Json = emu._stamp({}, now_iso())
    channel["key"] = key
    channel["roles"] = _roles(draft.get("roles", ["InventorySupply"]))
    for name in ("name", "description"):
        if draft.get(name) is not None:
            channel[name] = _localized(draft[name], name)
    for name in ("address", "custom", "geoLocation"):
        if draft.get(name) is not None:
            channel[name] = draft[name]
    channels.put(channel)
    return channel


def update_channel(emu: Any, channel_id: str, body: Json) -> Json:
    channel: Json = emu.get("channel", channel_id)
    actions = checked_actions(body, channel)
    updated = dict(channel)
    for action in actions:
        name = action.get("action")
        if name == "changeName":
            updated["name"] = _localized(action.get("name"), "name")
        elif name == "changeKey":
            key = _key(action.get("key"))
            owner = emu.collections["channel"].get_by_key(key)
            if owner is not None and owner["id"] != channel_id:
                raise duplicate("key", key)
            updated["key"] = key
        elif name in ("setRoles", "addRoles", "removeRoles"):
            roles = _roles(action.get("roles"))
            if name == "setRoles":
                updated["roles"] = roles
            elif name == "addRoles":
                updated["roles"] = list(dict.fromkeys([*updated.get("roles", []), *roles]))
            else:
                updated["roles"] = [r for r in updated.get("roles", []) if r not in roles]
        else:
            raise invalid_json(f"actions -> action: Unknown action '{name}'")
    if updated == channel:
        return channel
    updated["version"] = channel["version"] + 1
    updated["lastModifiedAt"] = now_iso()
    emu.collections["channel"].put(updated)
    return updated
