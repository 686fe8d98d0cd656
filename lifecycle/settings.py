"""Settings of the lifecycle app and its upkeep (`LIFECYCLE_*`).

`LIFECYCLE_API_KEY` is required by the receiver: NewStore sends it as
`Authorization: Bearer <api_key>` on every event (docs.newstore.net
/api/integration/eventstream-graphql/stream_webhook_sink_api), and an app without one would
accept events from anybody, so it refuses to start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings

from connector.settings import load_settings_group, settings_config

PREFIX = "LIFECYCLE_"
KEY_PATTERN = r"^[-_~.a-zA-Z0-9]+$"


class LifecycleSettings(BaseSettings):
    model_config = settings_config(PREFIX)

    # The shared secret NewStore sends; at least 32 characters (`openssl rand -base64 32`).
    api_key: SecretStr = Field(min_length=32)
    # Where NewStore must POST events: the public URL of this app's /lifecycle (post-deploy
    # registers it; without it post-deploy registers nothing).
    callback_url: AnyHttpUrl | None = None
    integration_id: str = Field("commercetools-connector", pattern=r"^[-_a-zA-Z0-9]{1,64}$")
    inbox_container: str = Field("newstore-connector-lifecycle-inbox", pattern=KEY_PATTERN)
    records_container: str = Field("newstore-connector-lifecycle", pattern=KEY_PATTERN)
    # How long the receiver tries to apply an event before it puts it in the inbox instead:
    # NewStore waits for the answer, and a slow answer holds the stream back.
    apply_budget_s: float = Field(0.5, gt=0, le=10)
    # How long the inbox write may take (its in-request retries included) before the receiver
    # answers 503 instead: NewStore keeps the event, and the answer stays under a second.
    inbox_write_budget_s: float = Field(0.4, gt=0, le=10)
    # Re-reads of an order after a 409 ConcurrentModification, per event.
    conflict_retries: int = Field(3, ge=0, le=10)
    # Drain attempts before an inbox entry is parked (kept, skipped, listed for an operator).
    inbox_max_attempts: int = Field(288, ge=1)  # a day of runs every 5 minutes
    inbox_drain_limit: int = Field(500, ge=1, le=10_000)
    # Shared with the event app: what NewStore's external_id is on the commercetools side.
    external_id_source: Literal["id", "orderNumber"] = Field(
        "id", validation_alias="NEW_STORE_EXTERNAL_ID_SOURCE"
    )


def load_lifecycle_settings() -> LifecycleSettings:
    """Raise `ConfigError` naming the variable when one is missing or invalid."""
    return load_settings_group(LifecycleSettings, PREFIX)
