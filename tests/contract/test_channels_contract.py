"""Per-store stock's and the per-node state's requests against commercetools' published
specs: the channel look-up, the channel drafts and update actions, the channel entry reads,
the per-store entry drafts (REST and GraphQL), and the per-node state's reads and batched
saves, checked as `test_commercetools_contract` checks the rest."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.settings import CommercetoolsSettings
from job.apply import GraphQLWriter, RestWriter, mutation_document
from job.channels import (
    channel_actions,
    channel_draft,
    ensure_channels,
    fetch_channel_entries,
    read_channel_entries,
)
from job.locations import ChannelSpec
from job.nodes import Bucket, NodeStateStore, save_document
from job.plan import Create, Update, Write
from tests.contract.test_commercetools_contract import (
    API,
    AUTH,
    PROJECT,
    graphql_errors,
    operation_for,
    request_errors,
    schema_errors,
)

SPECS = [
    ChannelSpec("US01", "Union Square", frozenset({"US01"})),
    ChannelSpec("nyc", "New York – Ünion", frozenset({"US02", "US03"})),
]


class Channels:
    """Answers: US01 exists (without the role, another name), nyc does not."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(AUTH).host:
            return httpx.Response(200, json={"access_token": "t", "expires_in": 172800})
        self.requests.append(request)
        path = request.url.path.removeprefix(f"/{PROJECT}")
        body = json.loads(request.content) if request.content else None
        if path == "/channels" and request.method == "GET":
            existing = {"id": "ch-1", "version": 4, "key": "US01", "roles": ["Primary"]}
            return httpx.Response(200, json={"results": [existing | {"name": {"de": "Alt"}}]})
        if path.startswith("/channels"):
            return httpx.Response(200, json={"id": "ch-2", "version": 1, **(body or {})})
        if path == "/inventory":
            return httpx.Response(200, json={"results": []})
        if path.startswith("/inventory"):
            return httpx.Response(200, json={"id": "e", "version": 2})
        if path.startswith("/custom-objects/"):
            if path.count("/") == 3:  # one object: none yet
                error = {"code": "ResourceNotFound", "message": "not found"}
                return httpx.Response(404, json={"statusCode": 404, "errors": [error]})
            return httpx.Response(200, json={"results": []})
        if path == "/graphql":
            return httpx.Response(200, json={"data": {f"w{i}": {"version": 2} for i in range(9)}})
        raise AssertionError(f"no answer for {request.method} {path}")


@pytest.fixture
async def captured() -> list[httpx.Request]:
    recorder = Channels()
    settings = CommercetoolsSettings(
        client_id="contract-client",
        client_secret="contract-secret-0123456789",
        project_key=PROJECT,
        api_url=API,
        auth_url=AUTH,
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    async with CommercetoolsClient(settings, http=http, retry=RetryPolicy(max_attempts=1)) as ctp:
        synced = await ensure_channels(ctp, SPECS, "en", create=True)
        ids = list(synced.ids.values())
        await read_channel_entries(ctp, ids)
        await fetch_channel_entries(ctp, ["SKU-1", 'SKU-"2"'], ids)
        writes: list[Write] = [Update("SKU-1", "e", 3, 5, "ch-1"), Create("ümlaut", 7, "ch-2")]
        await RestWriter(ctp, 1).write(writes, lambda *_: None, lambda: False)
        await GraphQLWriter(ctp, 1, 10).write(writes, lambda *_: None, lambda: False)
        nodes = NodeStateStore(ctp, "newstore-connector-jobs-nodes", 1)
        assert not await nodes.ready()
        await nodes.load(["SKU-1", "ümlaut"])
        await nodes.load_all()
    return recorder.requests


def test_per_store_stock_sends_only_published_operations(captured: list[httpx.Request]) -> None:
    seen = {f"{r.method} {operation_for(r.method, r.url.path)[0]}" for r in captured}
    assert {
        "GET /{projectKey}/channels",
        "POST /{projectKey}/channels",
        "POST /{projectKey}/channels/{ID}",
        "GET /{projectKey}/inventory",
        "POST /{projectKey}/inventory",
        "GET /{projectKey}/custom-objects/{container}",
        "GET /{projectKey}/custom-objects/{container}/{key}",
    } <= seen
    errors = [error for request in captured for error in request_errors(request)]
    assert errors == []


def test_the_channel_draft_and_updates_are_valid_for_the_spec() -> None:
    draft = channel_draft(SPECS[1], "en")
    assert draft == {"key": "nyc", "roles": ["InventorySupply"], "name": {"en": SPECS[1].name}}
    assert schema_errors({"$ref": "#/components/schemas/ChannelDraft"}, draft) == []
    actions = channel_actions(SPECS[0], {"name": {"de": "Alt"}, "roles": ["Primary"]}, "en")
    assert [a["action"] for a in actions] == ["changeName", "addRoles"]
    update = {"version": 4, "actions": actions}
    assert schema_errors({"$ref": "#/components/schemas/ChannelUpdate"}, update) == []
    # a channel already right needs no update
    current = {"name": {"en": "Union Square"}, "roles": ["InventorySupply"]}
    assert channel_actions(SPECS[0], current, "en") == []


def test_a_per_store_entry_draft_is_valid_rest_and_graphql(captured: list[httpx.Request]) -> None:
    creates = [
        json.loads(r.content)
        for r in captured
        if r.method == "POST" and r.url.path.endswith("/inventory")
    ]
    assert creates == [
        {
            "sku": "ümlaut",
            "quantityOnStock": 7,
            "supplyChannel": {"typeId": "channel", "id": "ch-2"},
        }
    ]
    for draft in creates:
        assert schema_errors({"$ref": "#/components/schemas/InventoryEntryDraft"}, draft) == []
    document, variables = mutation_document(
        [Create("A", 1, "ch-2"), Create('B"', 0, 'ch-"3"'), Create("C", 2)]
    )
    assert graphql_errors(document, variables) == []
    assert variables["d0"]["supplyChannel"] == {"typeId": "channel", "id": "ch-2"}
    assert variables["d1"]["supplyChannel"]["id"] == 'ch-"3"'  # a value, never GraphQL syntax
    assert "supplyChannel" not in variables["d2"]
    assert "ch-2" not in document


def test_a_wrong_channel_draft_is_caught_by_the_check() -> None:
    """The check itself can fail: a made-up role and a plain-string name are refused."""
    wrong: dict[str, Any] = {"key": "x1", "roles": ["Warehouse"], "name": "x"}
    assert len(schema_errors({"$ref": "#/components/schemas/ChannelDraft"}, wrong)) >= 2
    not_a_locale = {"key": "x1", "name": {"English": "x"}}
    assert schema_errors({"$ref": "#/components/schemas/ChannelDraft"}, not_a_locale)


def test_the_node_state_save_is_valid_graphql_with_variables() -> None:
    buckets = [Bucket("nodes-001", 0, {"ümlaut": {"US01": 3}}), Bucket("nodes-fff", 7, {})]
    document, variables = save_document("newstore-connector-jobs-nodes", buckets)
    assert graphql_errors(document, variables) == []
    assert json.loads(variables["d0"]["value"]) == {"ümlaut": {"US01": 3}}
    # the check can fail: a draft without its container is refused
    del variables["d1"]["container"]
    assert graphql_errors(document, variables)
