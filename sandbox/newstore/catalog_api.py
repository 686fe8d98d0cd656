"""What the doctor reads from NewStore besides orders and stock: a product by id (the
Customer API) and the service levels the routing knows (the routing ruleset).

- `GET /v0/c/products/{product_id}?shop=&locale=`: the Customer API v0 "Get product"
  (docs.newstore.net/api/integration/catalog-sfcc/consumer-api_api). assumption: an
  unknown product answers 404 `product_not_found` (the page is silent on the error body).
- `GET /v0/routing/ruleset`: `showRoutingRuleset` of NewStore's Swagger, whose
  `sl_levels_priority` lists the service levels. assumption: a tenant without a ruleset
  answers 404 (the Swagger documents only 200 and the generic errors).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.newstore.errors import error_response
from sandbox.newstore.state import NewStoreEmulator

# Given a request: None when its bearer token is valid, else the refusal (403).
Authorize = Callable[[Request], Response | None]


def add_catalog_routes(app: FastAPI, state: NewStoreEmulator, authorize: Authorize) -> None:
    @app.get("/v0/c/products/{product_id}")
    async def get_product(product_id: str, request: Request) -> Response:
        if (denied := authorize(request)) is not None:
            return denied
        missing = [name for name in ("shop", "locale") if not request.query_params.get(name)]
        if missing:
            return error_response(400, "bad_request", f"missing query parameter {missing[0]}")
        sku = state.products.get(product_id)
        if sku is None:
            return error_response(404, "product_not_found", f"no product {product_id}")
        return JSONResponse(
            {
                "product_id": product_id,
                "external_identifiers": [{"type": "sku", "value": sku}],
                "title": product_id,
            }
        )

    @app.get("/v0/routing/ruleset")
    async def routing_ruleset(request: Request) -> Response:
        if (denied := authorize(request)) is not None:
            return denied
        if state.service_levels is None:
            return error_response(404, "not_found", "no routing ruleset is configured")
        return JSONResponse(
            {
                "location_groups": {},
                "routes": [],
                "sl_levels_priority": list(state.service_levels),
                "zip_code_regions": {},
            }
        )
