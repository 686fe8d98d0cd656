"""The whole connector on loopback: both emulators, the Pub/Sub simulator and the apps.

Used by `./dev demo` and `./dev sandbox`, the integration tests and the benchmarks.
Pub/Sub pushes to the event app exactly as in production: commercetools publishes to a
topic, the simulator pushes the envelope to `POST /event`, and only 2xx acknowledges.
NewStore enforces its documented rate limits, as the emulator does by default (20
requests/s on `fulfill_order`, 100 calls/s for a development tenant: 429 with
`Retry-After` beyond them); `newstore_controls` changes or turns them off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from connector.deploy import CHANNEL_DRAFT
from connector.settings import (
    CommercetoolsSettings,
    NewStoreSettings,
    Settings,
)
from event.app import create_app as create_event_app
from event.settings import OrderSettings
from job.app import create_app as create_job_app
from job.settings import InventorySettings
from lifecycle.app import PATH as LIFECYCLE_PATH
from lifecycle.app import create_app as create_lifecycle_app
from lifecycle.settings import LifecycleSettings
from sandbox import catalog
from sandbox import commercetools as ctp_emulator
from sandbox import newstore as newstore_emulator
from sandbox import pubsub as pubsub_simulator
from sandbox.server import serve_in_thread

PROJECT_KEY = "sandbox"
CTP_CLIENT = ("sandbox-client", "sandbox-secret")
NS_USER = ("sandbox-user", "sandbox-password")
NS_SHOP = "sandbox-shop"
GCP_PROJECT = "sandbox-gcp"
GCP_TOPIC = "commercetools-orders"
PUSH_SUBSCRIPTION = "newstore-connector-event"
# The api_key NewStore's Event Stream sends to the lifecycle app (sandbox only).
LIFECYCLE_API_KEY = "sandbox-lifecycle-api-key-0123456789abcdef"


@dataclass(frozen=True)
class PubSubPolicy:
    """How the simulated push subscription retries; production-like, but faster."""

    min_backoff_s: float = 0.1
    max_backoff_s: float = 1.0
    max_delivery_attempts: int = 10
    ack_deadline_s: float = 10.0
    duplicate_rate: float = 0.0


@dataclass
class Stack:
    ctp_url: str
    newstore_url: str
    pubsub_url: str
    event_url: str | None = None
    job_url: str | None = None
    lifecycle_url: str | None = None
    apps: dict[str, Any] = field(default_factory=dict)

    @property
    def ctp(self) -> ctp_emulator.CommercetoolsEmulator:
        return self.apps["ctp"].state.emulator  # type: ignore[no-any-return]

    @property
    def newstore(self) -> newstore_emulator.NewStoreEmulator:
        return self.apps["newstore"].state.emulator  # type: ignore[no-any-return]

    @property
    def pubsub(self) -> pubsub_simulator.PubSubSimulator:
        return self.apps["pubsub"].state.simulator  # type: ignore[no-any-return]

    def env(self) -> dict[str, str]:
        """The variables that point the connector (apps and CLI) at this sandbox."""
        return {
            "CTP_CLIENT_ID": CTP_CLIENT[0],
            "CTP_CLIENT_SECRET": CTP_CLIENT[1],
            "CTP_PROJECT_KEY": PROJECT_KEY,
            "CTP_API_URL": self.ctp_url,
            "CTP_AUTH_URL": self.ctp_url,
            "NEW_STORE_BASE_URL": self.newstore_url,
            "NEW_STORE_SHOP": NS_SHOP,
            "NEW_STORE_USERNAME": NS_USER[0],
            "NEW_STORE_PASSWORD": NS_USER[1],
            "CONNECT_GCP_PROJECT_ID": GCP_PROJECT,
            "CONNECT_GCP_TOPIC_NAME": GCP_TOPIC,
        }

    def settings(self) -> Settings:
        return Settings(
            CommercetoolsSettings(
                client_id=CTP_CLIENT[0],
                client_secret=CTP_CLIENT[1],
                project_key=PROJECT_KEY,
                api_url=self.ctp_url,
                auth_url=self.ctp_url,
            ),
            NewStoreSettings(
                base_url=self.newstore_url,
                shop=NS_SHOP,
                username=NS_USER[0],
                password=NS_USER[1],
            ),
        )

    def lifecycle_settings(self, **changes: Any) -> LifecycleSettings:
        """The lifecycle app's settings; the callback URL is its /lifecycle here."""
        callback = f"{self.lifecycle_url}{LIFECYCLE_PATH}" if self.lifecycle_url else None
        values: dict[str, Any] = {"api_key": LIFECYCLE_API_KEY, "callback_url": callback}
        # Generous budgets: on a loaded test machine an answer must not turn into "queued"
        # by chance (the tests count requests); the bench runs the production defaults.
        values |= {"apply_budget_s": 5.0, "inbox_write_budget_s": 5.0}
        return LifecycleSettings.model_validate(values | changes)

    def create_order(
        self, number: int, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> str:
        """Create a realistic order in commercetools (which publishes OrderCreated).

        `edit` may change the order draft first, e.g. to make a poison order.
        """
        draft = catalog.order_draft(number)
        if edit:
            edit(draft.order)
        with httpx.Client(base_url=self.ctp_url, timeout=10) as client:
            client.post("/_sandbox/seed", json={"payments": [draft.payment]}).raise_for_status()
            created = client.post("/_sandbox/orders", json=draft.order)
            created.raise_for_status()
            return str(created.json()["id"])

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until commercetools has published and Pub/Sub has delivered everything."""
        with httpx.Client(timeout=timeout_s + 5) as client:
            client.post(f"{self.ctp_url}/_sandbox/drain").raise_for_status()
            idle = client.get(
                f"{self.pubsub_url}/_sandbox/wait-idle", params={"timeout_s": timeout_s}
            )
            idle.raise_for_status()


@contextmanager
def running_stack(
    policy: PubSubPolicy | None = None,
    with_event_app: bool = True,
    with_job_app: bool = False,
    orders: OrderSettings | None = None,
    newstore_controls: Mapping[str, Any] | None = None,
    job_settings: InventorySettings | None = None,
    with_lifecycle_app: bool = False,
    lifecycle: Mapping[str, Any] | None = None,
) -> Iterator[Stack]:
    """Start everything on free loopback ports; stop it all when the block exits.

    `newstore_controls` are `EmulatorControls` of the NewStore emulator to start with, e.g.
    `{"rate_limits": False}` or `{"fulfill_order_rate_limit": 50}`; by default its rate
    limits are NewStore's own. `job_settings`: the job app's, instead of `INVENTORY_*`.
    `with_lifecycle_app` also serves the lifecycle app (its
    settings changed by `lifecycle`); the job app then drains its inbox too."""
    policy = policy or PubSubPolicy()
    with ExitStack() as running:
        pubsub_app = pubsub_simulator.create_app(
            min_backoff_s=policy.min_backoff_s,
            max_backoff_s=policy.max_backoff_s,
            ack_deadline_s=policy.ack_deadline_s,
            duplicate_rate=policy.duplicate_rate,
            default_max_attempts=policy.max_delivery_attempts,
        )
        pubsub_url = running.enter_context(serve_in_thread(pubsub_app))
        ctp_app = ctp_emulator.create_app(
            project_key=PROJECT_KEY,
            clients=dict([CTP_CLIENT]),
            pubsub_url=pubsub_url,
            seed=catalog.commercetools_seed(),
        )
        newstore_app = newstore_emulator.create_app(
            users=dict([NS_USER]), seed=catalog.newstore_seed(), controls=newstore_controls
        )
        stack = Stack(
            ctp_url=running.enter_context(serve_in_thread(ctp_app)),
            newstore_url=running.enter_context(serve_in_thread(newstore_app)),
            pubsub_url=pubsub_url,
            apps={"ctp": ctp_app, "newstore": newstore_app, "pubsub": pubsub_app},
        )
        if with_event_app:
            # The `newstore` channel that post-deploy creates (the event app writes order
            # syncInfo under it), as on a deployed project.
            stack.ctp.seed({"channels": [CHANNEL_DRAFT]})
            event_app = create_event_app(stack.settings(), orders or OrderSettings())
            stack.apps["event"] = event_app
            stack.event_url = running.enter_context(serve_in_thread(event_app))
            _push_to(stack, f"{stack.event_url}/event", policy)
        if with_lifecycle_app:
            lifecycle_app = create_lifecycle_app(
                stack.settings(), stack.lifecycle_settings(**(lifecycle or {}))
            )
            stack.apps["lifecycle"] = lifecycle_app
            stack.lifecycle_url = running.enter_context(serve_in_thread(lifecycle_app))
        if with_job_app:
            upkeep = stack.lifecycle_settings(**(lifecycle or {})) if with_lifecycle_app else None
            job_app = create_job_app(stack.settings(), job_settings, lifecycle=upkeep)
            stack.apps["job"] = job_app
            stack.job_url = running.enter_context(serve_in_thread(job_app))
        yield stack


def _push_to(stack: Stack, endpoint: str, policy: PubSubPolicy) -> None:
    """Create the topic and a push subscription to the event app, as on Google Cloud."""
    base = f"{stack.pubsub_url}/v1/projects/{GCP_PROJECT}"
    subscription = {
        "topic": f"projects/{GCP_PROJECT}/topics/{GCP_TOPIC}",
        "pushConfig": {"pushEndpoint": endpoint},
        "ackDeadlineSeconds": round(policy.ack_deadline_s),
        "retryPolicy": {
            "minimumBackoff": f"{policy.min_backoff_s}s",
            "maximumBackoff": f"{policy.max_backoff_s}s",
        },
        "deadLetterPolicy": {"maxDeliveryAttempts": policy.max_delivery_attempts},
    }
    with httpx.Client(timeout=10) as client:
        client.put(f"{base}/topics/{GCP_TOPIC}").raise_for_status()
        client.put(
            f"{base}/subscriptions/{PUSH_SUBSCRIPTION}", json=subscription
        ).raise_for_status()
