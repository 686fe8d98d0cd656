"""What the event app's outcome records look like from outside the event app: the default
container and the status of a parked order, for the job's watchdog (which must not import
the event app) and the metrics. The event app writes them (event/records.py)."""

from __future__ import annotations

from connector.commercetools import CommercetoolsClient

DEFAULT_CONTAINER = "newstore-connector-orders"  # ORDER_RECORDS_CONTAINER's default
PARKED_STATUS = "failed"  # event.records.RecordStatus.FAILED: acknowledged, needs a person
RETRYING_STATUS = "retrying"  # event.records.RecordStatus.RETRYING: Pub/Sub redelivers
COUNT_LIMIT = 500  # commercetools' largest page: a backlog of 500 is reported as "500 or more"


async def count_with_status(ctp: CommercetoolsClient, container: str, status: str) -> int:
    """How many records have `status`, up to COUNT_LIMIT (one request)."""
    objects = await ctp.query_custom_objects(
        container, where=[f'value(status = "{status}")'], limit=COUNT_LIMIT
    )
    return len(objects)
