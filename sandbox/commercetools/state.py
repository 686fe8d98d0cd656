"""The state object of the commercetools emulator: one `CommercetoolsEmulator` holds all the
state of one emulated project (tokens, the resource collections and their indexes, the
publisher, the sandbox controls) and the operations the routes call: OAuth tokens, orders and
their `OrderCreated` messages and notifications, inventory, custom objects, subscriptions,
seeding and inspection. No operation awaits, so version checks and `ConcurrentModification`
behave as on the real API even under concurrent requests.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from sandbox.commercetools.common import Json, new_id, now_iso
from sandbox.commercetools.drafts import (
    as_product,
    check_custom_object_id,
    check_subscription_key,
    checked_actions,
    checked_destination,
    checked_format,
    checked_list,
    fill_order_defaults,
    require_int,
    require_messages_or_changes,
    seed_reserved,
    set_or_drop,
    strip_nulls,
)
from sandbox.commercetools.errors import (
    AuthError,
    CtError,
    conflict,
    custom_object_not_found,
    duplicate,
    invalid_input,
    invalid_json,
    not_found,
)
from sandbox.commercetools.predicates import Node, field_candidates, sku_candidates
from sandbox.commercetools.publisher import Publisher, wants_change, wants_message
from sandbox.commercetools.store import Collection, Query, run_query
from sandbox.controls import SandboxState

MAX_SUBSCRIPTIONS = 50
PAYLOAD_NOT_INCLUDED_REASON = "Payload too large."

# (typeId, URL path segment, has a `key` lookup)
RESOURCE_TYPES: tuple[tuple[str, str, bool], ...] = (
    ("product", "products", True),
    ("shipping-method", "shipping-methods", True),
    ("payment", "payments", True),
    ("cart-discount", "cart-discounts", True),
    ("discount-code", "discount-codes", True),
    ("channel", "channels", True),
    ("order", "orders", False),
    ("inventory-entry", "inventory", True),
    ("subscription", "subscriptions", True),
    ("key-value-document", "custom-objects", False),
    ("message", "messages", False),
)

SEED_KEYS: dict[str, str] = {
    "products": "product",
    "shippingMethods": "shipping-method",
    "payments": "payment",
    "cartDiscounts": "cart-discount",
    "discountCodes": "discount-code",
    "channels": "channel",
}


class CommercetoolsEmulator:
    """All state of one emulated project, and the operations the routes call."""

    def __init__(
        self,
        project_key: str,
        clients: dict[str, str],
        token_ttl_s: int,
        pubsub_url: str | None,
    ) -> None:
        self.project_key = project_key
        self.clients = dict(clients)
        # client id -> the scopes its API client was created with (space-separated, each
        # `{scope}:{projectKey}`); a client not listed has `manage_project`. Set by a test
        # or `sandbox.commercetools.faults` to emulate a scope-limited API client.
        self.client_scopes: dict[str, str] = {}
        self.token_ttl_s = token_ttl_s
        self.clock: Callable[[], float] = time.monotonic
        self.tokens: dict[str, tuple[float, str, str]] = {}  # token -> (expiry, scope, client)
        self.collections = {
            type_id: Collection(type_id, "key" if keyed else None)
            for type_id, _, keyed in RESOURCE_TYPES
        }
        self.product_skus: dict[str, set[str]] = {}
        self.inventory_skus: dict[str, set[str]] = {}
        self.inventory_slots: dict[tuple[str, str | None], str] = {}
        self.reserved: dict[str, int] = {}
        self.order_numbers: dict[str, str] = {}
        self.custom_objects: dict[tuple[str, str], str] = {}
        self.containers: dict[str, set[str]] = {}
        self.payload_not_included = False
        self.publisher = Publisher(pubsub_url)
        self.sandbox = SandboxState()
        # The `GraphQLApi` over this state (sandbox.commercetools.graphql, which imports this
        # module), set when the app's routes are built.
        self.graphql: Any = None

    # ---- auth

    def issue_token(self, authorization: str | None, form: dict[str, str]) -> Json:
        client_id, secret = self._client_credentials(authorization, form)
        if client_id is None or self.clients.get(client_id) != secret:
            raise AuthError(
                401,
                "invalid_client",
                "Please provide valid client credentials using HTTP Basic Authentication.",
            )
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            raise AuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        granted = self.client_scopes.get(client_id, f"manage_project:{self.project_key}")
        scope = form.get("scope") or granted
        for item in scope.split():
            name, _, project = item.partition(":")
            if not name or project.split(":")[0] != self.project_key:
                raise AuthError(400, "invalid_scope", f"Invalid scope: {item}")
            # A token carries at most the API client's scopes; asking for more is refused
            # (docs.commercetools.com/api/authorization: "invalid_scope").
            if item not in granted.split() and f"manage_project:{self.project_key}" not in (
                granted.split()
            ):
                raise AuthError(400, "invalid_scope", f"Invalid scope: {item}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (self.clock() + self.token_ttl_s, scope, client_id)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl_s,
            "scope": scope,
        }

    @staticmethod
    def _client_credentials(
        authorization: str | None, form: dict[str, str]
    ) -> tuple[str | None, str | None]:
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            client_id, sep, secret = decoded.partition(":")
            return (client_id, secret) if sep else (None, None)
        return form.get("client_id"), form.get("client_secret")

    def authorize(self, authorization: str | None) -> None:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise AuthError(401, "invalid_token", "Missing bearer token.")
        entry = self.tokens.get(authorization[7:].strip())
        if entry is None or entry[0] <= self.clock():
            raise AuthError(401, "invalid_token", "invalid_token")

    def expire_tokens(self) -> int:
        for token, (_, scope, client) in list(self.tokens.items()):
            self.tokens[token] = (0.0, scope, client)
        return len(self.tokens)

    # ---- generic reads

    def resolve(self, type_id: str, resource_id: str) -> Json | None:
        coll = self.collections.get(type_id)
        return coll.get(resource_id) if coll is not None else None

    def get(self, type_id: str, resource_id: str) -> Json:
        resource = self.collections[type_id].get(resource_id)
        if resource is None:
            raise not_found(resource_id)
        return resource

    def get_by_key(self, type_id: str, key: str) -> Json:
        resource = self.collections[type_id].get_by_key(key)
        if resource is None:
            raise not_found(key, by="key")
        return resource

    def query(self, type_id: str, query: Query, candidates: Iterable[str] | None = None) -> Json:
        coll = self.collections[type_id]
        if candidates is None and query.predicate is not None:
            candidates = self._sku_index_candidates(type_id, query.predicate.node)
        return run_query(coll, query, self.resolve, candidates)

    def _sku_index_candidates(self, type_id: str, node: Node) -> set[str] | None:
        index = {"product": self.product_skus, "inventory-entry": self.inventory_skus}.get(type_id)
        skus = sku_candidates(node, nested=type_id == "product") if index is not None else None
        if skus is None or index is None:
            return None
        found: set[str] = set()
        for sku in skus:
            found |= index.get(sku, set())
        return found

    @staticmethod
    def _stamp(resource: Json, now: str) -> Json:
        """Server-set fields first, as the real API orders them."""
        stamped = {
            "id": resource.get("id") or new_id(),
            "version": resource.get("version") or 1,
            "createdAt": resource.get("createdAt") or now,
            "lastModifiedAt": resource.get("lastModifiedAt") or now,
        }
        stamped.update((k, v) for k, v in resource.items() if k not in stamped)
        return stamped

    # ---- catalog resources (seeded only)

    def put_resource(self, type_id: str, raw: Json) -> Json:
        resource = self._stamp(raw, now_iso())
        if type_id == "product":
            resource = as_product(resource)
            self._index_product(resource)
        self.collections[type_id].put(resource)
        return resource

    def _index_product(self, product: Json) -> None:
        data = product.get("masterData") or {}
        for projection in (data.get("current"), data.get("staged")):
            if not isinstance(projection, dict):
                continue
            variants = [projection.get("masterVariant"), *(projection.get("variants") or [])]
            for variant in variants:
                sku = variant.get("sku") if isinstance(variant, dict) else None
                if isinstance(sku, str):
                    self.product_skus.setdefault(sku, set()).add(product["id"])

    # ---- orders

    def create_order(self, draft: Json, *, keep_id: bool, publish: bool = True) -> Json:
        if draft.get("totalPrice") is None:
            raise invalid_json("totalPrice: Missing required value")
        for name in ("lineItems", "customLineItems"):
            if name in draft and not isinstance(draft[name], list):
                raise invalid_json(f"{name}: JSON array expected")
        number = draft.get("orderNumber")
        if number is not None and number in self.order_numbers:
            raise duplicate("orderNumber", number)
        if keep_id and draft.get("id") in self.collections["order"].items:
            raise duplicate("id", draft["id"])
        now = now_iso()
        # An import draft cannot set the server-managed fields; the sandbox endpoint and seeds
        # may (stable ids make tests and demos reproducible).
        server_set = () if keep_id else ("id", "version", "lastModifiedAt")
        order = self._stamp({k: v for k, v in draft.items() if k not in server_set}, now)
        fill_order_defaults(order)
        self.collections["order"].put(order)
        if number is not None:
            self.order_numbers[number] = order["id"]
        if publish:
            self._order_created(order, now)
        return order

    def get_order_by_number(self, number: str) -> Json:
        order_id = self.order_numbers.get(number)
        order = self.collections["order"].get(order_id) if order_id else None
        if order is None:
            raise not_found(number, by="order number")
        return order

    # ---- messages and notifications

    def _order_created(self, order: Json, now: str) -> None:
        identifiers = {"orderNumber": order["orderNumber"]} if order.get("orderNumber") else {}
        message = {
            "id": new_id(),
            "version": 1,
            "sequenceNumber": 1,
            "resource": {"typeId": "order", "id": order["id"]},
            "resourceVersion": order["version"],
            "resourceUserProvidedIdentifiers": identifiers,
            "type": "OrderCreated",
            "order": order,
            "createdAt": now,
            "lastModifiedAt": now,
        }
        self.collections["message"].put(message)
        for subscription in self.collections["subscription"].items.values():
            if wants_message(subscription, "order", "OrderCreated"):
                payload = self._message_payload(subscription, message, "order", "orders")
                self.publisher.publish(subscription["destination"], payload)
            if wants_change(subscription, "order"):
                payload = self._created_payload(subscription, "order", "orders", order, identifiers)
                self.publisher.publish(subscription["destination"], payload)

    def _message_payload(
        self, subscription: Json, message: Json, type_id: str, resource_path: str
    ) -> Json:
        payload: Json = {"notificationType": "Message", "projectKey": self.project_key}
        payload.update(message)
        if self.payload_not_included:
            payload.pop(type_id, None)
            payload["payloadNotIncluded"] = {
                "reason": PAYLOAD_NOT_INCLUDED_REASON,
                "payloadType": message["type"],
            }
        if subscription["format"].get("type") != "CloudEvents":
            return payload
        resource = message.get(type_id, {})
        return {
            "specversion": "1.0",
            "id": message["id"],
            "type": f"com.commercetools.{type_id}.message.{message['type']}",
            "source": f"/{self.project_key}/{resource_path}",
            "subject": message["resource"]["id"],
            "time": resource.get("lastModifiedAt", message["createdAt"]),
            "sequence": str(message["sequenceNumber"]),
            "sequencetype": "Integer",
            "dataref": f"/{self.project_key}/messages/{message['id']}",
            "data": payload,
        }

    def _send_test_message(self, subscription: Json) -> None:
        """Sent on creation (documented) and, here, on a change of destination."""
        identifiers = {"key": subscription["key"]} if subscription.get("key") else {}
        payload = self._created_payload(
            subscription, "subscription", "subscriptions", subscription, identifiers
        )
        self.publisher.publish(subscription["destination"], payload)

    def _created_payload(
        self,
        subscription: Json,
        type_id: str,
        resource_path: str,
        resource: Json,
        identifiers: Json,
    ) -> Json:
        """A ResourceCreated change notification, in the subscription's format."""
        payload: Json = {
            "notificationType": "ResourceCreated",
            "projectKey": self.project_key,
            "resource": {"typeId": type_id, "id": resource["id"]},
            "resourceUserProvidedIdentifiers": identifiers,
            "version": resource["version"],
            "modifiedAt": resource["lastModifiedAt"],
        }
        if subscription["format"].get("type") != "CloudEvents":
            return payload
        return {
            "specversion": "1.0",
            "id": new_id(),
            "type": f"com.commercetools.{type_id}.change.ResourceCreated",
            "source": f"/{self.project_key}/{resource_path}",
            "subject": resource["id"],
            "time": resource["lastModifiedAt"],
            "data": payload,
        }

    # ---- inventory

    def create_inventory(self, draft: Json, *, seeding: bool = False) -> Json:
        entry = self._new_inventory_entry(draft, seeding=seeding)
        self._index_inventory(entry)
        self.collections["inventory-entry"].put(entry)
        return entry

    def seed_inventory(self, drafts: list[Json]) -> int:
        entries: list[Json] = []
        try:
            for draft in drafts:
                entry = self._new_inventory_entry(draft, seeding=True)
                self._index_inventory(entry)  # now, so duplicates within the seed are caught
                entries.append(entry)
        except CtError:
            for entry in entries:
                self._unindex_inventory(entry)
            raise
        self.collections["inventory-entry"].put_many(entries)
        return len(entries)

    def _new_inventory_entry(self, draft: Json, *, seeding: bool) -> Json:
        sku = draft.get("sku")
        if not isinstance(sku, str) or not sku:
            raise invalid_json("sku: Missing required value")
        quantity = require_int(draft, "quantityOnStock") or 0
        channel = self._channel_reference(draft.get("supplyChannel"), lenient=seeding)
        slot = (sku, channel["id"] if channel else None)
        if slot in self.inventory_slots:
            raise duplicate("sku", sku)
        key = draft.get("key")
        if key is not None and key in self.collections["inventory-entry"].by_key:
            raise duplicate("key", key)
        now = now_iso()
        entry = self._stamp({k: draft[k] for k in ("id", "version") if seeding and k in draft}, now)
        if key is not None:
            entry["key"] = key
        entry["sku"] = sku
        if channel is not None:
            entry["supplyChannel"] = channel
        reserved = seed_reserved(draft, quantity) if seeding else 0
        self.reserved[entry["id"]] = reserved
        entry["quantityOnStock"] = quantity
        entry["availableQuantity"] = quantity - reserved
        for name in ("restockableInDays", "expectedDelivery", "custom"):
            if draft.get(name) is not None:
                entry[name] = draft[name]
        return entry

    def _channel_reference(self, identifier: Any, *, lenient: bool = False) -> Json | None:
        if identifier is None:
            return None
        if not isinstance(identifier, dict):
            raise invalid_json("supplyChannel: JSON object expected")
        channels = self.collections["channel"]
        if "id" in identifier:
            channel = channels.get(identifier["id"])
            if channel is None and lenient:
                return {"typeId": "channel", "id": identifier["id"]}
        else:
            channel = channels.get_by_key(str(identifier.get("key")))
        if channel is None:
            missing = identifier.get("id") or identifier.get("key")
            raise CtError(
                400,
                "ReferencedResourceNotFound",
                f"The referenced object of type 'channel' '{missing}' was not found.",
                typeId="channel",
                **({"id": missing} if "id" in identifier else {"key": missing}),
            )
        return {"typeId": "channel", "id": channel["id"]}

    def _index_inventory(self, entry: Json) -> None:
        channel = entry.get("supplyChannel")
        self.inventory_slots[(entry["sku"], channel["id"] if channel else None)] = entry["id"]
        self.inventory_skus.setdefault(entry["sku"], set()).add(entry["id"])

    def _unindex_inventory(self, entry: Json) -> None:
        channel = entry.get("supplyChannel")
        self.inventory_slots.pop((entry["sku"], channel["id"] if channel else None), None)
        ids = self.inventory_skus.get(entry["sku"])
        if ids is not None:
            ids.discard(entry["id"])
            if not ids:
                del self.inventory_skus[entry["sku"]]

    def update_inventory(self, entry_id: str, body: Json) -> Json:
        entry = self.get("inventory-entry", entry_id)
        actions = checked_actions(body, entry)
        updated = dict(entry)
        for action in actions:
            self._apply_inventory_action(updated, action)
        if updated == entry:  # like the real API, a no-op update keeps the version
            return entry
        updated["version"] = entry["version"] + 1
        updated["lastModifiedAt"] = now_iso()
        self._unindex_inventory(entry)
        self._index_inventory(updated)
        self.collections["inventory-entry"].put(updated)
        return updated

    def _apply_inventory_action(self, entry: Json, action: Json) -> None:
        name = action.get("action")
        reserved = self.reserved.get(entry["id"], 0)
        if name in ("changeQuantity", "addQuantity", "removeQuantity"):
            quantity = require_int(action, "quantity") or 0
            if name == "addQuantity":
                quantity = entry["quantityOnStock"] + quantity
            elif name == "removeQuantity":
                quantity = entry["quantityOnStock"] - quantity
            entry["quantityOnStock"] = quantity
            entry["availableQuantity"] = quantity - reserved
        elif name in ("setRestockableInDays", "setExpectedDelivery"):
            field_name = name[3].lower() + name[4:]  # setRestockableInDays -> restockableInDays
            set_or_drop(entry, field_name, action.get(field_name))
        elif name == "setSupplyChannel":
            channel = self._channel_reference(action.get("supplyChannel"))
            slot = (entry["sku"], channel["id"] if channel else None)
            slot_owner = self.inventory_slots.get(slot)
            if slot_owner not in (None, entry["id"]):
                raise duplicate("sku", entry["sku"])
            set_or_drop(entry, "supplyChannel", channel)
        elif name == "setKey":
            key = action.get("key")
            owner = self.collections["inventory-entry"].by_key.get(key) if key else None
            if owner not in (None, entry["id"]):
                raise duplicate("key", key)
            set_or_drop(entry, "key", key)
        else:
            raise invalid_json(f"actions -> action: Unknown action '{name}'")

    def delete_inventory(self, entry_id: str, version: int | None) -> Json:
        entry = self.get("inventory-entry", entry_id)
        if version != entry["version"]:
            raise conflict(entry_id, version or 0, entry["version"])
        self._unindex_inventory(entry)
        self.reserved.pop(entry_id, None)
        self.collections["inventory-entry"].remove(entry_id)
        return entry

    # ---- custom objects

    def upsert_custom_object(self, draft: Json) -> tuple[Json, bool]:
        """Returns the object and whether it was created.

        A `version` makes the write optimistic; version 0 means "create only if absent"
        (the usual lock/lease idiom), so it conflicts with an existing object."""
        container, key = draft.get("container"), draft.get("key")
        check_custom_object_id(container, key)
        if "value" not in draft or draft["value"] is None:
            raise invalid_json("value: Missing required value")
        version = require_int(draft, "version", required=False)
        existing_id = self.custom_objects.get((container, key))  # type: ignore[arg-type]
        coll = self.collections["key-value-document"]
        existing = coll.get(existing_id) if existing_id else None
        if version is not None:
            actual = existing["version"] if existing else 0
            if version != actual:
                subject = existing["id"] if existing else f"({container},{key})"
                raise conflict(subject, version, actual)
        now = now_iso()
        value = strip_nulls(draft["value"])
        if existing is not None:
            updated = {**existing, "version": existing["version"] + 1, "lastModifiedAt": now}
            updated["value"] = value
            coll.put(updated)
            return updated, False
        created = self._stamp({"container": container, "key": key, "value": value}, now)
        self._put_custom_object(created)
        return created, True

    def _put_custom_object(self, obj: Json) -> None:
        self.collections["key-value-document"].put(obj)
        self.custom_objects[(obj["container"], obj["key"])] = obj["id"]
        self.containers.setdefault(obj["container"], set()).add(obj["id"])

    def query_container(self, container: str, query: Query) -> Json:
        """A page of one container's objects; a `key = ...` or `key in (...)` predicate looks
        its keys up instead of sorting the whole container for every page."""
        ids: Iterable[str] = self.containers.get(container, set())
        keys = field_candidates(query.predicate.node, "key") if query.predicate else None
        if keys is not None:
            found = (self.custom_objects.get((container, key)) for key in keys)
            ids = {obj_id for obj_id in found if obj_id is not None}
        return self.query("key-value-document", query, candidates=ids)

    def get_custom_object(self, container: str, key: str) -> Json:
        obj_id = self.custom_objects.get((container, key))
        obj = self.collections["key-value-document"].get(obj_id) if obj_id else None
        if obj is None:
            raise custom_object_not_found(container, key)
        return obj

    def delete_custom_object(self, container: str, key: str, version: int | None) -> Json:
        obj = self.get_custom_object(container, key)
        if version is not None and version != obj["version"]:
            raise conflict(obj["id"], version, obj["version"])
        self.collections["key-value-document"].remove(obj["id"])
        del self.custom_objects[(container, key)]
        self.containers[container].discard(obj["id"])
        return obj

    # ---- subscriptions

    def create_subscription(self, draft: Json, *, send_test: bool = True) -> Json:
        coll = self.collections["subscription"]
        if len(coll) >= MAX_SUBSCRIPTIONS:
            raise CtError(
                400,
                "MaxResourceLimitExceeded",
                f"You have exceeded the limit of {MAX_SUBSCRIPTIONS} resources of type "
                "subscription.",
                exceededResource="subscription",
            )
        key = draft.get("key")
        if key is not None:
            check_subscription_key(key)
            if key in coll.by_key:
                raise duplicate("key", key)
        subscription = self._stamp({}, now_iso())
        if key is not None:
            subscription["key"] = key
        subscription["destination"] = checked_destination(draft.get("destination"))
        subscription["messages"] = checked_list(draft, "messages")
        subscription["changes"] = checked_list(draft, "changes")
        subscription["format"] = checked_format(draft.get("format"))
        subscription["status"] = "Healthy"
        require_messages_or_changes(subscription)
        coll.put(subscription)
        if send_test:
            self._send_test_message(subscription)
        return subscription

    def update_subscription(self, subscription: Json, body: Json) -> Json:
        actions = checked_actions(body, subscription)
        updated = dict(subscription)
        for action in actions:
            self._apply_subscription_action(updated, action)
        if updated == subscription:
            return subscription
        require_messages_or_changes(updated)
        updated["version"] = subscription["version"] + 1
        updated["lastModifiedAt"] = now_iso()
        self.collections["subscription"].put(updated)
        if updated["destination"] != subscription["destination"]:
            # assumption: a new destination clears a ConfigurationError once its test
            # message is delivered (docs.commercetools.com/api/projects/subscriptions is
            # silent on when the status changes back); the emulator delivers it at once.
            updated["status"] = "Healthy"
            self._send_test_message(updated)
        return updated

    def _apply_subscription_action(self, subscription: Json, action: Json) -> None:
        name = action.get("action")
        if name == "changeDestination":
            subscription["destination"] = checked_destination(action.get("destination"))
        elif name in ("setMessages", "setChanges"):
            field_name = "messages" if name == "setMessages" else "changes"
            subscription[field_name] = checked_list(action, field_name)
        elif name == "setKey":
            key = action.get("key")
            if key is not None:
                check_subscription_key(key)
                owner = self.collections["subscription"].by_key.get(key)
                if owner not in (None, subscription["id"]):
                    raise duplicate("key", key)
            set_or_drop(subscription, "key", key)
        else:
            # The format of a subscription cannot be changed: there is no such update action.
            raise invalid_json(f"actions -> action: Unknown action '{name}'")

    def delete_subscription(self, subscription: Json, version: int | None) -> Json:
        if version != subscription["version"]:
            raise conflict(subscription["id"], version or 0, subscription["version"])
        self.collections["subscription"].remove(subscription["id"])
        return subscription

    # ---- seeding and inspection

    def seed(self, data: Json) -> dict[str, int]:
        known = {*SEED_KEYS, "inventory", "orders", "customObjects", "subscriptions"}
        unknown = set(data) - known
        if unknown:
            raise invalid_input(f"Unknown seed keys: {sorted(unknown)}")
        counts: dict[str, int] = {}
        for seed_key, type_id in SEED_KEYS.items():
            for raw in data.get(seed_key) or []:
                self.put_resource(type_id, raw)
            counts[seed_key] = len(data.get(seed_key) or [])
        counts["inventory"] = self.seed_inventory(list(data.get("inventory") or []))
        for raw in data.get("orders") or []:
            self.create_order(raw, keep_id=True, publish=False)
        counts["orders"] = len(data.get("orders") or [])
        for raw in data.get("customObjects") or []:
            self.upsert_custom_object({k: v for k, v in raw.items() if k != "version"})
        counts["customObjects"] = len(data.get("customObjects") or [])
        for raw in data.get("subscriptions") or []:
            self.create_subscription(raw, send_test=False)
        counts["subscriptions"] = len(data.get("subscriptions") or [])
        return counts

    def reset(self) -> None:
        for coll in self.collections.values():
            coll.clear()
        for index in (
            self.product_skus,
            self.inventory_skus,
            self.inventory_slots,
            self.reserved,
            self.order_numbers,
            self.custom_objects,
            self.containers,
        ):
            index.clear()
        self.publisher.clear()
        self.payload_not_included = False

    def summary(self) -> Json:
        counts = {path: len(self.collections[type_id]) for type_id, path, _ in RESOURCE_TYPES}
        publisher = self.publisher
        return {
            "projectKey": self.project_key,
            "counts": counts,
            "tokens": len(self.tokens),
            "published": {
                "stored": len(publisher.published),
                "delivered": publisher.delivered,
                "failed": publisher.failed,
                "pending": publisher.pending,
                "notDelivered": publisher.not_delivered,
            },
            "payloadNotIncluded": self.payload_not_included,
        }
