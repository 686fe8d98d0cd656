"""Drift between NewStore's published Swagger and what this repository believes about it.

Three readers of the same definitions must agree, constraint by constraint:
- the Swagger itself (`../shared/specs/newstore/newstore-api.swagger.json`), read the way
  `event/contract.py` documents (its `SWAGGER_BINDINGS` fill the untyped slots, a
  `multipleOf: 0.01` is "the currency's decimals", `BEYOND_SWAGGER` adds what other pages
  publish);
- the contract's models (`event/contract.py`), through their JSON schema;
- the NewStore emulator's literal table (`sandbox/newstore/validation.py CONSTRAINTS`).

All three are brought to one form (per definition, per property: `required`, `type`, `ref`,
`items`, `enum`, lengths, item counts, bounds, `format`, `money`, `maxProperties`) and
compared; any keyword this form does not know is kept as it is, so that a new kind of
constraint in the Swagger shows up as a difference instead of passing unseen.

Then every payload the mapping table expects (`tests/fixtures/orders/*.json`, key `expected`)
must pass the contract, the raw Swagger (jsonschema, draft 4 as Swagger 2.0 uses) and the
emulator.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft4Validator, FormatChecker, ValidationError

from event import contract
from sandbox.newstore import validation as emulator
from tests.contract.specs import ROOT, swagger

FIXTURES = sorted((ROOT / "tests" / "fixtures" / "orders").glob("*.json"))
IGNORED = {"description", "title", "example", "default"}
NUMBER_FORMATS = {"double", "float", "int32", "int64"}
NUMERIC = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
UNION_MEMBERS = {
    name for names in contract.SWAGGER_BINDINGS.values() if len(names) > 1 for name in names
}


def _num(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return int(value) if float(value).is_integer() else float(value)


def canonical(value: Any) -> Any:
    """Enum and alternative lists in sorted order, numbers as int where integral."""
    if isinstance(value, dict):
        out = {k: canonical(v) for k, v in value.items()}
        for key in ("enum", "ref"):
            if isinstance(out.get(key), list):
                out[key] = sorted(out[key])
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return _num(value)


# --- the Swagger, in the common form --------------------------------------------------------


def _definitions() -> dict[str, Any]:
    return dict(swagger()["definitions"])


def _is_object_definition(name: str) -> bool:
    return _definitions()[name].get("type") == "object"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _bound(names: tuple[str, ...]) -> dict[str, Any]:
    return {"ref": names[0] if len(names) == 1 else list(names)}


def swagger_schema(spec: dict[str, Any], binding: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One property's (or an array's entries') schema in the common form."""
    spec = {k: v for k, v in spec.items() if k not in IGNORED}
    if binding is not None:
        # a binding fills a slot the Swagger leaves untyped; a typed slot means it is stale
        if spec.get("type") == "array":
            assert spec.get("items") in ({}, {"type": "object"}), f"bound slot is typed: {spec}"
            rest = {k: v for k, v in spec.items() if k != "items"}
            return {**swagger_schema(rest), "items": _bound(binding)}
        assert not spec, f"bound slot is typed: {spec}"
        return _bound(binding)
    if "$ref" in spec:
        # draft 4 (Swagger 2.0): the siblings of a $ref are ignored
        return _referenced(_ref_name(spec["$ref"]))
    out: dict[str, Any] = {}
    if "allOf" in spec:
        refs = [s for s in spec["allOf"] if "$ref" in s]
        others = [s for s in spec["allOf"] if "$ref" not in s]
        assert len(refs) == 1 and all(set(o) <= IGNORED for o in others), spec
        name = _ref_name(refs[0]["$ref"])
        # The generator writes `type: object` next to an allOf of a string enum (currency,
        # channel_type, price_method, payment type): read the referenced type.
        if spec.get("type") == "object":
            del spec["type"]
        del spec["allOf"]
        out.update(_referenced(name))
    for key, value in spec.items():
        if key == "items":
            out["items"] = swagger_schema(value)
        elif key == "multipleOf" and value == 0.01:
            out["money"] = True  # the currency's decimals (see event/contract.py)
        elif key == "format" and value in NUMBER_FORMATS:
            continue  # the number's storage, no constraint on the value
        elif key == "maxProperties" and spec.get("type") != "object":
            continue  # maxProperties constrains objects only (on an array: no effect)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            continue  # draft 4's boolean form, below
        elif key == "enum":
            out["enum"] = sorted(value)
        else:
            out[key] = _num(value) if key in NUMERIC else value
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if spec.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
    return out


def _referenced(name: str) -> dict[str, Any]:
    if _is_object_definition(name):
        return {"ref": name}
    return swagger_schema(_definitions()[name])  # a string enum, inlined


def swagger_definition(name: str) -> dict[str, Any]:
    definition = _definitions()[name]
    assert set(definition) <= {*IGNORED, "type", "properties", "required", "maxProperties"}
    required = set(definition.get("required", []))
    properties: dict[str, Any] = {}
    for prop, spec in definition["properties"].items():
        out = swagger_schema(spec, contract.SWAGGER_BINDINGS.get((name, prop)))
        if name in UNION_MEMBERS and prop in required and "default" in spec:
            out["enum"] = [spec["default"]]  # the alternative's tag (see event/contract.py)
        properties[prop] = {"required": True, **out} if prop in required else out
    result: dict[str, Any] = {"properties": properties}
    if "maxProperties" in definition:
        result["maxProperties"] = definition["maxProperties"]
    return result


def reachable() -> list[str]:
    """The object definitions InjectedOrderRequest reaches, through refs and the bindings."""
    seen: list[str] = []
    todo = ["InjectedOrderRequest"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        for prop, spec in _definitions()[name]["properties"].items():
            text = json.dumps(spec)
            names = [_ref_name(r) for r in re.findall(r'"\$ref": "([^"]+)"', text)]
            names += contract.SWAGGER_BINDINGS.get((name, prop), ())
            todo += [n for n in names if _is_object_definition(n)]
    return sorted(seen)


def published() -> dict[str, Any]:
    """The Swagger in the common form, with the constraints published elsewhere."""
    expected = {name: swagger_definition(name) for name in reachable()}
    for (name, prop, keyword), extra in contract.BEYOND_SWAGGER.items():
        expected[name]["properties"][prop][keyword] = extra.value
    return canonical(expected)


# --- the contract, in the common form -------------------------------------------------------


def contract_schema(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in IGNORED:
            continue
        if key == "$ref":
            out["ref"] = _ref_name(value)
        elif key == "oneOf":
            out["ref"] = [_ref_name(s["$ref"]) for s in value]
        elif key == "items":
            out["items"] = contract_schema(value)
        elif key == "const":
            out["enum"] = [value]
        elif key == contract.MONEY_MARK:
            out["money"] = value
        elif key == "additionalProperties" and value is True:
            continue  # a free-form object (payment metadata)
        else:
            out[key] = value
    return out


def contract_definitions() -> dict[str, Any]:
    schema = contract.json_schema()
    definitions = {**schema.pop("$defs"), schema["title"]: schema}
    result: dict[str, Any] = {}
    for name, definition in definitions.items():
        required = set(definition.get("required", []))
        properties = {}
        for prop, spec in definition["properties"].items():
            out = contract_schema(spec)
            properties[prop] = {"required": True, **out} if prop in required else out
        result[name] = {"properties": properties}
        if "maxProperties" in definition:
            result[name]["maxProperties"] = definition["maxProperties"]
        if definition.get("additionalProperties") is False:
            # how the contract enforces maxProperties: as many as its required properties
            assert definition.get("maxProperties") == len(required) == len(properties), name
    return canonical(result)


# --- comparing --------------------------------------------------------------------------------


def differences(expected: dict[str, Any], actual: dict[str, Any], label: str) -> list[str]:
    found: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual or name not in expected:
            where = "the Swagger" if name in expected else label
            found.append(f"{name}: only in {where}")
            continue
        found += _compare(expected[name], actual[name], name, label)
    return found


def _compare(expected: Any, actual: Any, path: str, label: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            found += _compare(expected.get(key), actual.get(key), f"{path}.{key}", label)
        return found
    if expected != actual:
        return [f"{path}: the Swagger has {expected!r}, {label} {actual!r}"]
    return []


# --- the drift tests --------------------------------------------------------------------------


def test_the_contract_covers_every_definition_the_request_reaches() -> None:
    assert sorted(contract_definitions()) == reachable()


def test_the_contract_models_agree_with_the_swagger() -> None:
    assert differences(published(), contract_definitions(), "event/contract.py") == []


def test_the_emulator_table_agrees_with_the_swagger() -> None:
    table = canonical(emulator.CONSTRAINTS)
    assert differences(published(), table, "sandbox/newstore/validation.py") == []


def test_currencies_and_their_decimals_agree() -> None:
    swagger_codes = set(_definitions()["Currency2"]["enum"])
    assert set(contract.CURRENCIES) == swagger_codes
    assert set(emulator.CURRENCIES) == swagger_codes
    assert emulator.NOT_TWO_DECIMALS == contract.CURRENCY_DECIMALS
    assert set(contract.CURRENCY_DECIMALS) <= swagger_codes
    assert contract.currency_decimals("USD") == 2
    assert contract.currency_decimals("JPY") == 0
    assert contract.currency_decimals("KWD") == 3


def test_what_the_contract_adds_is_published_and_stricter() -> None:
    texts = _swagger_texts()
    for (name, prop, keyword), extra in contract.BEYOND_SWAGGER.items():
        own = swagger_definition(name)["properties"][prop].get(keyword)
        where = f"{name}.{prop} {keyword}"
        assert own != extra.value, f"{where}: the Swagger says it now; drop the entry"
        if own is not None:
            assert extra.value < own, f"{where}: {extra.value} is not stricter than {own}"
        if extra.source == "swagger":
            quote = " ".join(extra.quote.split())
            assert any(quote in text for text in texts), f"{where}: {quote!r} is not in it"
        else:
            assert extra.source.startswith("https://docs.newstore.net/"), where


def _swagger_texts() -> list[str]:
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            strings.append(" ".join(value.split()))

    walk(swagger()["paths"]["/v0/d/fulfill_order"])
    walk([_definitions()[name] for name in reachable()])
    return strings


def test_what_check_payload_may_omit_is_optional_and_no_money() -> None:
    definitions = published()
    for pattern in sorted(contract.OMITTABLE):
        names = ["InjectedOrderRequest"]
        steps = pattern.split(".")
        for step in steps[:-1]:
            prop, _, rest = step.partition("[")
            spec = definitions[names[0]]["properties"][prop]
            ref = (spec["items"] if rest else spec)["ref"]
            names = [ref] if isinstance(ref, str) else ref
        for name in names:
            spec = definitions[name]["properties"][steps[-1].partition("[")[0]]
            assert not spec.get("required"), f"{pattern}: required in {name}"
            assert not spec.get("money"), f"{pattern}: money in {name}"


def test_the_comparison_sees_a_changed_constraint() -> None:
    """The differ is not vacuous: one changed keyword, one added, one dropped requirement."""
    expected = published()
    changed = copy.deepcopy(expected)
    changed["InjectedOrderAddress"]["properties"]["city"]["maxLength"] = 65
    changed["InjectedOrderPayment"]["properties"]["wallet"]["pattern"] = "^[a-z]+$"
    del changed["InjectedOrderRequest"]["properties"]["shop"]["required"]
    found = differences(expected, changed, "test")
    assert found == [
        "InjectedOrderAddress.properties.city.maxLength: the Swagger has 64, test 65",
        "InjectedOrderPayment.properties.wallet.pattern: the Swagger has None, test '^[a-z]+$'",
        "InjectedOrderRequest.properties.shop.required: the Swagger has True, test None",
    ]


def test_the_swagger_reading_notices_an_unknown_keyword() -> None:
    assert swagger_schema({"type": "string", "pattern": "^x$"}) == {
        "type": "string",
        "pattern": "^x$",
    }
    with pytest.raises(AssertionError):
        swagger_schema({"type": "array", "items": {"$ref": "#/x"}}, ("InjectedOrderShipment",))


# --- the mapping table's payloads ---------------------------------------------------------------


def _expected_payloads() -> list[tuple[str, dict[str, Any]]]:
    payloads = []
    for path in FIXTURES:
        fixture = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        if "expected" in fixture:
            payloads.append((path.stem, fixture["expected"]))
    return payloads


EXPECTED = _expected_payloads()
IDS = [stem for stem, _ in EXPECTED]


def test_the_table_has_payloads() -> None:
    assert len(EXPECTED) >= 15


@pytest.mark.parametrize(("stem", "payload"), EXPECTED, ids=IDS)
def test_expected_payload_passes_the_contract_unchanged(stem: str, payload: dict[str, Any]) -> None:
    check = contract.check_payload(payload)
    assert check.omitted == ()
    assert check.payload == payload


def _decimal_multiple_of(decimals: int) -> Any:
    """multipleOf on the JSON number's decimal value (jsonschema divides binary floats, so
    19.99 is no multiple of 0.01 for it); 0.01 is the currency's decimals (event/contract.py)."""

    def multiple_of(validator: Any, step: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "number"):
            return
        unit = Decimal(1).scaleb(-decimals) if step == 0.01 else Decimal(str(step))
        if Decimal(str(instance)) % unit != 0:
            yield ValidationError(f"{instance} is not a multiple of {unit}")

    return multiple_of


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(RFC3339.fullmatch(value))


def swagger_validator(currency: str) -> Any:
    """The Swagger's definitions as they are, but for three documented readings: the
    bindings fill the untyped slots (`anyOf`: the Swagger has no tag that tells the
    alternatives apart), the generator's `type: object` beside an allOf of a string enum is
    dropped, and multipleOf is decimal (see `_decimal_multiple_of`)."""
    definitions = copy.deepcopy(_definitions())
    for name in reachable():
        for prop, spec in definitions[name]["properties"].items():
            if "allOf" in spec and spec.get("type") == "object":
                target = _ref_name(spec["allOf"][0]["$ref"])
                if not _is_object_definition(target):
                    del spec["type"]
            names = contract.SWAGGER_BINDINGS.get((name, prop))
            if names is None:
                continue
            refs = [{"$ref": f"#/definitions/{n}"} for n in names]
            slot = refs[0] if len(refs) == 1 else {"anyOf": refs}
            if spec.get("type") == "array":
                spec["items"] = slot
            else:
                spec.update(slot)
    schema = {"$ref": "#/definitions/InjectedOrderRequest", "definitions": definitions}
    checker = FormatChecker()
    checker.checks("date-time")(_date_time)
    validator_class = jsonschema.validators.extend(
        Draft4Validator,
        {"multipleOf": _decimal_multiple_of(contract.currency_decimals(currency))},
    )
    return validator_class(schema, format_checker=checker)


@pytest.mark.parametrize(("stem", "payload"), EXPECTED, ids=IDS)
def test_expected_payload_passes_the_raw_swagger(stem: str, payload: dict[str, Any]) -> None:
    errors = swagger_validator(payload["currency"]).iter_errors(payload)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


@pytest.mark.parametrize(("stem", "payload"), EXPECTED, ids=IDS)
def test_expected_payload_passes_the_emulator(stem: str, payload: dict[str, Any]) -> None:
    emulator.validate_order(json.loads(json.dumps(payload, default=float)))


def test_the_raw_swagger_check_can_fail() -> None:
    payload = copy.deepcopy(EXPECTED[0][1])
    payload["customer_email"] = "x" * 65
    payload["shipments"][0]["items"][0]["price"]["item_price"] = Decimal("1.999")
    messages = [e.message for e in swagger_validator("USD").iter_errors(payload)]
    assert any("is too long" in m for m in messages), messages
    assert any("not a multiple of 0.01" in m for m in messages), messages


def test_the_swagger_literally_refuses_three_decimals_where_the_docs_want_them() -> None:
    """Why the contract reads `multipleOf: 0.01` as the currency's decimals: taken literally,
    the Swagger refuses a KWD price of 4.755 that the operation's description requires to
    have 3 decimals. When this fails, the Swagger changed: revisit event/contract.py."""
    price = _definitions()["InjectedOrderShipmentItemPrice"]["properties"]["item_price"]
    assert price["multipleOf"] == 0.01
    assert Decimal("4.755") % Decimal("0.01") != 0
    description = swagger()["paths"]["/v0/d/fulfill_order"]["post"]["description"]
    assert "according to the specified currency" in " ".join(description.split())
