"""The NewStore emulator's Location API: `GET /v0/d/locations`.

docs.newstore.net, "Location API (v0)", "List locations": `{locations: [{id,
is_inventory_master, is_enabled, type}]}`, at most 2,000 locations; "Locations are created
during a stock import using the fulfillment_node_id property", so every node that has ever
had a stock row is a location here, enabled, until the sandbox says otherwise
(`POST /_sandbox/locations`).

Assumptions where the page is silent:
- the path: `/v0/d/locations`, like the other `/v0/d/` integration APIs (the page's text
  that we could check does not show it);
- `type`: `dc` for an id starting with `DC`, `store` otherwise (a stock import does not say);
- `name`: not in the documented sample; a location seeded with a name serves it, so that
  the connector's use of a name, when NewStore has one, can be tried.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

MAX_LOCATIONS = 2000  # "The maximum number of locations returned by this method is 2000."


class LocationSeed(BaseModel):
    id: str = Field(min_length=1)
    is_enabled: bool | None = None
    is_inventory_master: bool | None = None
    type: Literal["store", "dc"] | None = None
    name: str | None = None


def location_view(location_id: str, seeded: Mapping[str, Any] | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": location_id,
        "is_inventory_master": False,
        "is_enabled": True,
        "type": "dc" if location_id.upper().startswith("DC") else "store",
    }
    view.update((k, v) for k, v in (seeded or {}).items() if v is not None)
    return view


def list_locations(nodes: Iterable[str], seeded: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    ids = sorted(set(nodes) | set(seeded))[:MAX_LOCATIONS]
    return {"locations": [location_view(i, seeded.get(i)) for i in ids]}
