"""Settings of the event app (all optional): how orders are mapped and recorded.

Kept beside the app, like the job's `INVENTORY_*` group; the shared API settings are in
`connector/settings.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from connector.order_records import DEFAULT_CONTAINER
from connector.settings import load_settings_group, settings_config


class OrderSettings(BaseSettings):
    """How orders are mapped and recorded (all optional)."""

    model_config = settings_config("")

    new_store_external_id_source: Literal["id", "orderNumber"] = "id"
    new_store_channel_type: Literal["web", "mobile", "store"] = "web"
    new_store_channel_name: str = Field("commercetools", min_length=1, max_length=64)
    new_store_default_locale: str = Field("en-US", min_length=2)
    # NewStore's product_id for a line item: "sku" (the default), or "attribute:<name>" for
    # the value of that variant attribute, when the tenant's product ids are not the SKUs
    # (see event/customization.py product_id and docs/mapping.md).
    new_store_product_id_source: str = Field("sku", pattern=r"^(sku|attribute:\S+)$")
    order_record_successes: bool = True
    order_records_container: str = Field(DEFAULT_CONTAINER, pattern=r"^[-_~.a-zA-Z0-9]+$")
    # fulfill_order calls per second from this process. NewStore takes 20/s for the whole
    # tenant (the operation's description in NewStore's Swagger): divide by the number of
    # instances that may run (Cloud Run --max-instances, docs/deploy.md).
    new_store_inject_rate: float = Field(20.0, gt=0, le=20)
    # An order still failing transiently when its message is this old is parked as failed
    # (recorded, replayable): set it below the subscription's message retention (Pub/Sub's
    # default and maximum for push is 7 days), so that nothing expires unrecorded.
    order_park_after_s: float = Field(6 * 24 * 3600, ge=60)


def load_order_settings() -> OrderSettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return load_settings_group(OrderSettings, "")
