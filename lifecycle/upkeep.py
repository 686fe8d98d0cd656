"""What every job run does for the lifecycle app (`job/app.py` calls `run_upkeep`): check
that NewStore's Event Stream integration is running (start it again, logged at ERROR, when
it is not), then drain the inbox. Neither ever fails the job's inventory sync: problems are
reported in the run's summary and logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import structlog

from connector.commercetools import CommercetoolsClient
from connector.http import UpstreamError
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, Settings
from lifecycle.apply import LifecycleApplier
from lifecycle.inbox import Inbox
from lifecycle.registration import heal
from lifecycle.settings import PREFIX, LifecycleSettings, load_lifecycle_settings

log = structlog.get_logger("lifecycle.upkeep")


def configured_lifecycle(environ: Mapping[str, str] | None = None) -> LifecycleSettings | None:
    """The lifecycle settings when the lifecycle app is deployed (LIFECYCLE_API_KEY set),
    else None. An invalid value is reported, not raised: the inventory sync still runs."""
    env = os.environ if environ is None else environ
    if not any(k.upper() == f"{PREFIX}API_KEY" for k in env):
        return None
    try:
        return load_lifecycle_settings()
    except ConfigError as error:
        log.error("lifecycle upkeep disabled: configuration", error=str(error))
        return None


def event_stream_integration(environ: Mapping[str, str] | None = None) -> str | None:
    """The id of the lifecycle app's Event Stream integration, when the app is deployed
    (what the doctor and the job's watchdog check is `running`)."""
    lifecycle = configured_lifecycle(environ)
    return lifecycle.integration_id if lifecycle is not None else None


async def run_upkeep(settings: Settings, lifecycle: LifecycleSettings) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    async with (
        CommercetoolsClient(settings.commercetools) as ctp,
        NewStoreClient(settings.newstore) as newstore,
    ):
        try:
            result = await heal(newstore, lifecycle)
            summary["integration"] = {"id": result.integration_id, "action": result.action}
        except UpstreamError as error:
            log.error("event stream integration not checked", error=str(error)[:200])
            summary["integration"] = {"error": str(error)[:200]}
        inbox = Inbox(ctp, lifecycle.inbox_container, lifecycle.inbox_max_attempts)
        try:
            report = await inbox.drain(
                LifecycleApplier(ctp, newstore, lifecycle), limit=lifecycle.inbox_drain_limit
            )
            summary["inbox"] = report.summary()
        except UpstreamError as error:
            log.error("lifecycle inbox not drained", error=str(error)[:200])
            summary["inbox"] = {"error": str(error)[:200]}
    return summary
