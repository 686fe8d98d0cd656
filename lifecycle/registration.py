"""The NewStore Event Stream integration that feeds the lifecycle app, through the event
stream configuration API (docs.newstore.net /api/integration/eventstream-graphql/
stream_webhook_sink_api, `/api/v1/org/integrations/eventstream`):

- `ensure_integration` (post-deploy): create it, or replace it when its callback URL, api_key
  or filter differ (the page documents register and delete, no update), and start it when it
  is stopped; idempotent;
- `remove_integration` (pre-undeploy);
- `heal` (every job run): a `stopped` integration (NewStore interrupts the stream on any
  non-2xx answer) is started again and logged at ERROR; a missing one is registered again;
- `replay` (`newstore-connector lifecycle replay`): a temporary integration with start and
  end dates, which NewStore fills with the events of that window and then stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from connector.newstore import NewStoreClient
from lifecycle import upstream
from lifecycle.events import FULFILLMENT_EVENTS, ORDER_EVENTS, RETURN_EVENTS
from lifecycle.settings import LifecycleSettings

log = structlog.get_logger("lifecycle.registration")
Json = dict[str, object]

# Only the events the app applies (assumption on the format: a list of entity + event names;
# the configuration API page links an entity model but shows no filter example).
FILTER_CONDITIONS: list[dict[str, object]] = [
    {"entity": "order", "events": list(ORDER_EVENTS)},
    {"entity": "fulfillment_request", "events": list(FULFILLMENT_EVENTS)},
    {"entity": "return", "events": list(RETURN_EVENTS)},
]


class RegistrationError(ValueError):
    """The settings do not allow registering (no callback URL)."""


@dataclass(frozen=True)
class RegistrationResult:
    integration_id: str
    action: str  # created | updated | started | unchanged | removed | absent | restarted ...
    status: str | None = None


def registration_body(settings: LifecycleSettings, **extra: object) -> dict[str, object]:
    if settings.callback_url is None:
        raise RegistrationError("set LIFECYCLE_CALLBACK_URL to the public URL of /lifecycle")
    return {
        "id": settings.integration_id,
        "callback_parameters": {
            "callback_url": str(settings.callback_url),
            "api_key": settings.api_key.get_secret_value(),
        },
        "filter_conditions": FILTER_CONDITIONS,
        **extra,
    }


def _matches(existing: dict[str, object], wanted: dict[str, object]) -> bool:
    params = existing.get("callback_parameters")
    wanted_params = wanted["callback_parameters"]
    return (
        isinstance(params, dict)
        and isinstance(wanted_params, dict)
        and params.get("callback_url") == wanted_params["callback_url"]
        and params.get("api_key") == wanted_params["api_key"]
        and existing.get("filter_conditions") == wanted["filter_conditions"]
        and existing.get("integration_type", "permanent") == "permanent"
    )


async def ensure_integration(
    newstore: NewStoreClient, settings: LifecycleSettings
) -> RegistrationResult:
    wanted = registration_body(settings)
    existing = await newstore.event_stream_integration(settings.integration_id)
    if existing is None:
        created = await upstream.register_integration(newstore, wanted)
        return RegistrationResult(settings.integration_id, "created", _status(created))
    if not _matches(existing, wanted):
        await upstream.delete_integration(newstore, settings.integration_id)
        created = await upstream.register_integration(newstore, wanted)
        return RegistrationResult(settings.integration_id, "updated", _status(created))
    if existing.get("status") != "running":
        await upstream.set_integration_running(newstore, settings.integration_id, True)
        return RegistrationResult(settings.integration_id, "started", "running")
    return RegistrationResult(settings.integration_id, "unchanged", "running")


async def remove_integration(
    newstore: NewStoreClient, settings: LifecycleSettings
) -> RegistrationResult:
    removed = await upstream.delete_integration(newstore, settings.integration_id)
    return RegistrationResult(settings.integration_id, "removed" if removed else "absent")


async def heal(newstore: NewStoreClient, settings: LifecycleSettings) -> RegistrationResult:
    """Every job run: the integration must exist and be running."""
    integration_id = settings.integration_id
    existing = await newstore.event_stream_integration(integration_id)
    if existing is None:
        if settings.callback_url is None:
            log.error("event stream integration missing", integration_id=integration_id)
            return RegistrationResult(integration_id, "missing")
        log.error("event stream integration missing: registering it", integration_id=integration_id)
        created = await upstream.register_integration(newstore, registration_body(settings))
        return RegistrationResult(integration_id, "recreated", _status(created))
    status = _status(existing)
    if status == "running":
        return RegistrationResult(integration_id, "running", status)
    # NewStore stops the stream on a non-2xx answer; events wait there until it is started.
    log.error("event stream integration was stopped: starting it", integration_id=integration_id)
    await upstream.set_integration_running(newstore, integration_id, True)
    return RegistrationResult(integration_id, "restarted", "running")


async def replay(
    newstore: NewStoreClient, settings: LifecycleSettings, since: datetime, until: datetime
) -> RegistrationResult:
    """Register a temporary integration for [since, until]; NewStore stops it at the end
    (delete it afterwards with `lifecycle replay --cleanup`, or let it stay stopped)."""
    if until <= since:
        raise RegistrationError("--until must be after --since")
    replay_id = f"{settings.integration_id[:40]}-replay-{since:%Y%m%d%H%M%S}"
    body = registration_body(settings, id=replay_id, starts_at=_iso(since), ends_at=_iso(until))
    if await newstore.event_stream_integration(replay_id) is not None:
        await upstream.delete_integration(newstore, replay_id)
    created = await upstream.register_integration(newstore, body)
    return RegistrationResult(replay_id, "replaying", _status(created))


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _status(integration: dict[str, object]) -> str | None:
    status = integration.get("status")
    return status if isinstance(status, str) else None
