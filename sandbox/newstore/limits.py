"""NewStore's documented rate limits, as the emulator enforces them (on by default).

What the documentation says:

- `POST /v0/d/fulfill_order` "is rate limited to 20 requests per second": the operation's
  description in NewStore's Swagger (`../shared/specs/newstore/newstore-api.swagger.json`).
- Every API call of a tenant counts against a global budget of 200 calls per second for a
  production tenant and 100 for a development tenant; beyond it "additional requests are
  rejected with an HTTP 429 Too Many Requests response" that "contains a Retry-After
  header": NewStore's "API rate limiting" page (https://docs.newstore.com/docs/rate-limits).
  The same page says limits are enforced at two levels, global per tenant and
  endpoint-specific, so a request must fit both.

What they leave open, and what the emulator assumes (each one a control of
`EmulatorControls`, so a test or a benchmark can try another reading):

- ASSUMPTION (algorithm, `rate_limit_algorithm`, `rate_limit_window_s`): "N per second" is
  a token bucket of one second's worth of requests (N) refilled continuously at N/s, the
  usual gateway reading; `fixed_window` (at most N in each clock second) is the other one.
- ASSUMPTION (`rate_limit_retry_after_s`): the page does not give Retry-After's value. The
  emulator sends the seconds until the refused request would have been admitted, rounded
  up to a whole second (Retry-After's delay-seconds is an integer, RFC 9110 10.2.3), so
  "1" in practice; a fixed value can be set instead.
- ASSUMPTION: a refused request consumes no budget, a request refused by either limit
  consumes neither, and the Keycloak token endpoint (`/auth/realms/...`, served by
  `id.p.newstore.net`, not by the tenant's host) does not count against the tenant.
  Everything else does, the legacy `/v0/token` included. The export files are
  downloaded from storage links (`/_sandbox/exports/...` here), not from the API.
- The development tenant's 100/s is the default: the sandbox stands in for one.

The IP-level block of the same site's "Getting started" page (thousands of requests in
5 minutes answered 403 for 5 minutes) is not emulated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from starlette.types import Scope

from sandbox.controls import RateAlgorithm, RateBucket, Refusal

FULFILL_ORDER = ("POST", "/v0/d/fulfill_order")
# Served by NewStore's identity provider, another host: outside the tenant's budget.
KEYCLOAK_PREFIX = "/auth/realms/"
FULFILL_ORDER_RATE = 20.0  # the Swagger's description of the operation
DEVELOPMENT_TENANT_RATE = 100.0  # docs.newstore.com/docs/rate-limits
PRODUCTION_TENANT_RATE = 200.0


class LimitControls(Protocol):
    """The fields of `EmulatorControls` (state.py) that the limits read."""

    @property
    def rate_limits(self) -> bool: ...
    @property
    def tenant_rate_limit(self) -> float | None: ...
    @property
    def fulfill_order_rate_limit(self) -> float | None: ...
    @property
    def rate_limit_algorithm(self) -> RateAlgorithm: ...
    @property
    def rate_limit_window_s(self) -> float: ...
    @property
    def rate_limit_retry_after_s(self) -> float | None: ...


class NewStoreLimits:
    """The tenant's budget and fulfill_order's own limit, read from the controls on each
    request (a changed control starts that limit afresh) and timed by `clock`."""

    def __init__(self, controls: Callable[[], LimitControls], clock: Callable[[], float]) -> None:
        self._controls = controls
        self._clock = clock
        self._buckets: dict[str, RateBucket] = {}
        self.refused: dict[str, int] = {"tenant": 0, "fulfill_order": 0}

    def admit(self, scope: Scope) -> Refusal | None:
        controls = self._controls()
        if not controls.rate_limits:
            return None
        method, path = scope["method"], scope["path"]
        applicable: list[tuple[str, float]] = []
        if controls.tenant_rate_limit is not None and not path.startswith(KEYCLOAK_PREFIX):
            applicable.append(("tenant", controls.tenant_rate_limit))
        if controls.fulfill_order_rate_limit is not None and (method, path) == FULFILL_ORDER:
            applicable.append(("fulfill_order", controls.fulfill_order_rate_limit))
        if not applicable:
            return None
        now = self._clock()
        buckets = [self._bucket(name, rate, controls) for name, rate in applicable]
        waits = [bucket.check(now) for bucket in buckets]
        if not any(waits):
            for bucket in buckets:
                bucket.take(now)
            return None
        wait, (name, rate) = max(zip(waits, applicable, strict=True), key=lambda pair: pair[0])
        self.refused[name] += 1
        retry_after = controls.rate_limit_retry_after_s
        if retry_after is None:
            retry_after = float(max(1, math.ceil(wait)))
        if name == "tenant":
            message = f"rate limit exceeded: the tenant takes {rate:g} calls per second"
        else:
            message = f"rate limit exceeded: fulfill_order takes {rate:g} requests per second"
        return Refusal(message, retry_after)

    def _bucket(self, name: str, rate: float, controls: LimitControls) -> RateBucket:
        key = (rate, controls.rate_limit_window_s, controls.rate_limit_algorithm)
        bucket = self._buckets.get(name)
        if bucket is None or bucket.key() != key:
            bucket = RateBucket(rate, controls.rate_limit_window_s, controls.rate_limit_algorithm)
            self._buckets[name] = bucket
        return bucket

    def reset(self) -> None:
        """Forget every bucket's history (full budgets again) and the refusal counts."""
        self._buckets.clear()
        self.refused = dict.fromkeys(self.refused, 0)
