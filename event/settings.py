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
    # With the order's syncInfo carrying NewStore's order id (the success is written onto the
    # order itself), a success Custom Object record would be a fourth request per order:
    # off by default; `true` writes it as well, for a container that lists every order.
    order_record_successes: bool = False
    order_records_container: str = Field(DEFAULT_CONTAINER, pattern=r"^[-_~.a-zA-Z0-9]+$")
    # fulfill_order calls per second from this process. NewStore takes 20/s for the whole
    # tenant (the operation's description in NewStore's Swagger): divide by the number of
    # instances that may run (Cloud Run --max-instances, docs/deploy.md).
    new_store_inject_rate: float = Field(20.0, gt=0, le=20)
    # An order still failing transiently when its message is this old is parked as failed
    # (recorded, replayable): set it below the subscription's message retention (Pub/Sub's
    # default and maximum for push is 7 days), so that nothing expires unrecorded.
    order_park_after_s: float = Field(6 * 24 * 3600, ge=60)
    # When an order goes to NewStore: on creation (today's behaviour), once its orderState is
    # Confirmed (an OrderStateChanged), or once its paymentState is Paid (an
    # OrderPaymentStateChanged); an order created already Confirmed or Paid goes at once.
    order_inject_when: Literal["created", "confirmed", "paid"] = "created"
    # An order cancelled in commercetools is cancelled in NewStore, with this reason (the
    # cancellation's required `reason`, NewStore's Swagger SalesOrderCancellationRequest).
    order_cancel_in_newstore: bool = True
    order_cancel_reason: str = Field("Cancelled in commercetools", min_length=1, max_length=256)
    # Custom Object container of the cancellation records (one per order, keyed by its id).
    order_cancellations_container: str = Field(
        "newstore-connector-cancellations", pattern=r"^[-_~.a-zA-Z0-9]+$"
    )


def load_order_settings() -> OrderSettings:
    """Raise `ConfigError` naming the variable when one is invalid."""
    return load_settings_group(OrderSettings, "")
