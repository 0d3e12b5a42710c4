"""Records for the fuzz test: events drawn from the contracts' own JSON Schemas, then broken on purpose.

`contract_values(model)` draws JSON values that the model accepts (identifiers from small pools, so that fuzzed
events meet each other: an order placed, then completed, then cancelled). `fuzz_record()` draws one Kafka record:
a contract value as is, a contract value with its value or its headers mutated, or plain noise. Each drawn
record is a `FuzzRecord`, kept as data so that a failing run prints what it sent, and the run's seed replays it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import REQUIRED_HEADERS
from backflush_shared.contracts.registry import ALL_EVENTS
from backflush_shared.contracts.topics import Topic
from backflush_shared.messaging.publish import source_for

#: Order ids and items the fuzzed events share, so that they touch each other (never the valid orders' ids).
FUZZ_ORDER_IDS = tuple(f"FZ-{n}" for n in range(8)) + ("FZ-" + "L" * 61,)
ITEMS = ("CHAIR-ERGO", "SEAT-ASSY", "BASE-STAR-5", "CASTOR-50", "SCREW-M6", "GAS-LIFT-100", "NO-SUCH-ITEM")
IDENTIFIER_FIELDS_AS_ORDER = frozenset({"order_id"})
IDENTIFIER_FIELDS_AS_ITEM = frozenset({"item", "parent", "component"})


@dataclass(frozen=True)
class FuzzRecord:
    """One record as it will be sent: topic (logical), key, value and headers, and what was done to it."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    how: str

    def describe(self) -> str:
        value = self.value[:120] if self.value is not None else None
        return f"{self.how} on {self.topic} key={self.key!r} headers={list(self.headers)[:9]} value={value!r}"


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _identifier(name: str, max_length: int) -> st.SearchStrategy[str]:
    if name in IDENTIFIER_FIELDS_AS_ORDER:
        return st.sampled_from(FUZZ_ORDER_IDS)
    if name in IDENTIFIER_FIELDS_AS_ITEM:
        return st.sampled_from(ITEMS)
    tail = min(max_length - 1, 20)
    return st.from_regex(rf"\A[A-Za-z0-9][A-Za-z0-9._:/-]{{0,{tail}}}\Z")


def _decimal_text() -> st.SearchStrategy[str]:
    return st.decimals(min_value=Decimal("0.001"), max_value=Decimal(40), places=3,
                       allow_nan=False, allow_infinity=False).map(lambda d: format(d.normalize(), "f"))


def _value_of(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        kinds = {option.get("type") for option in schema["anyOf"]}
        if kinds >= {"number", "string"}:  # a Decimal on the wire: a decimal string
            return _decimal_text()
        return st.one_of(*(_value_of(name, option, defs) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _object_of(schema, defs)
    if kind == "array":
        return st.lists(_value_of(name, schema["items"], defs), min_size=schema.get("minItems", 0),
                        max_size=max(schema.get("minItems", 0), 3))
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", 0), max_value=schema.get("maximum", 1000))
    if kind == "number":
        return _decimal_text()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)).map(dt.date.isoformat)
        if fmt == "date-time":
            return st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2027, 12, 31),
                                timezones=st.just(dt.UTC)).map(dt.datetime.isoformat)
        if fmt == "uuid":
            return st.uuids().map(str)
        if "pattern" in schema:
            return _identifier(name, schema.get("maxLength", 64))
        return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                       min_size=max(1, schema.get("minLength", 0)), max_size=min(schema.get("maxLength", 40), 40)
                       ).filter(str.strip)
    return st.just(None)


def _object_of(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    required = set(schema.get("required", ()))
    fields: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, field_schema in schema.get("properties", {}).items():
        (fields if name in required else optional)[name] = _value_of(name, field_schema, defs)
    return st.fixed_dictionaries(fields, optional=optional)


def contract_values(model: type[Event]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON values of `model` drawn from its own JSON Schema; only those the model accepts."""
    schema = model.model_json_schema()
    return _object_of(schema, schema.get("$defs", {})).filter(lambda value: _accepts(model, value))


def _accepts(model: type[Event], value: dict[str, Any]) -> bool:
    try:
        model.model_validate(value)
    except Exception:  # noqa: BLE001 - a draw the schema allows but a validator refuses is simply not used
        return False
    return True


def headers_for(model: type[Event], value: dict[str, Any], event_id: uuid.UUID) -> list[tuple[str, bytes]]:
    event = model.model_validate(value)
    return [
        ("ce_id", str(event_id).encode()),
        ("ce_type", model.event_type.encode()),
        ("ce_source", source_for(event, otherwise="/backflush/fuzz").encode()),
        ("ce_specversion", b"1.0"),
        ("ce_time", dt.datetime.now(dt.UTC).isoformat().encode()),
        ("ce_schemaversion", str(model.schema_version).encode()),
        ("ce_correlationid", event.correlation_key().encode()),
    ]


JUNK_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _value_mutation(draw: st.DrawFn, value: dict[str, Any]) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["drop-field", "junk-field", "extra-field", "number-quantity", "not-json",
                                 "deep-nesting", "empty", "huge-string"]))
    changed = dict(value)
    if kind == "drop-field" and changed:
        changed.pop(draw(st.sampled_from(sorted(changed))))
    elif kind == "junk-field" and changed:
        changed[draw(st.sampled_from(sorted(changed)))] = draw(JUNK_JSON)
    elif kind == "extra-field":
        changed["unexpected"] = draw(JUNK_JSON)
    elif kind == "number-quantity":
        numeric = [name for name, v in changed.items() if isinstance(v, str) and _is_decimal(v)]
        if numeric:
            name = draw(st.sampled_from(numeric))
            changed[name] = draw(st.sampled_from([float(Decimal(changed[name])), int(Decimal(changed[name]) + 1)]))
    elif kind == "not-json":
        return draw(st.binary(min_size=1, max_size=40)), kind
    elif kind == "deep-nesting":
        depth = draw(st.integers(min_value=2_000, max_value=12_000))
        return ('{"a":' * depth + "1" + "}" * depth).encode(), f"{kind} {depth}"
    elif kind == "empty":
        return b"", kind
    elif kind == "huge-string":
        changed["order_id" if "order_id" in changed else "unexpected"] = "X" * draw(st.integers(65, 5000))
    return json.dumps(changed).encode(), kind


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except Exception:  # noqa: BLE001
        return False
    return any(ch.isdigit() for ch in text) and not any(ch.isalpha() for ch in text)


@st.composite
def _header_mutation(draw: st.DrawFn, headers: list[tuple[str, bytes]], model: type[Event]
                     ) -> tuple[list[tuple[str, bytes]], str, str]:
    """Broken headers, and the (logical) topic the record goes to."""
    topic = model.topic.value
    kind = draw(st.sampled_from(["drop", "garble", "not-utf8", "duplicate", "other-type", "schema-version",
                                 "correlation", "wrong-topic", "spec-version", "extra-not-utf8",
                                 "other-source"]))
    changed = list(headers)
    name = draw(st.sampled_from([n for n, _ in changed]))
    if kind == "drop":
        changed = [(n, v) for n, v in changed if n != name]
    elif kind == "garble":
        changed = [(n, draw(st.binary(max_size=20)) if n == name else v) for n, v in changed]
    elif kind == "not-utf8":
        changed = [(n, b"\xc3\x28" if n == name else v) for n, v in changed]
    elif kind == "extra-not-utf8":
        changed.append(("x-trace", b"\xc3\x28"))
    elif kind == "duplicate":
        changed.append((name, draw(st.sampled_from([dict(changed)[name], b"other"]))))
    elif kind == "other-type":
        other = draw(st.sampled_from([m for m in ALL_EVENTS if m is not model]))
        changed = [(n, other.event_type.encode() if n == "ce_type" else v) for n, v in changed]
    elif kind == "schema-version":
        changed = [(n, str(draw(st.integers(-1, 99))).encode() if n == "ce_schemaversion" else v)
                   for n, v in changed]
    elif kind == "correlation":
        changed = [(n, draw(st.sampled_from(FUZZ_ORDER_IDS)).encode() + b"-X" if n == "ce_correlationid" else v)
                   for n, v in changed]
    elif kind == "wrong-topic":
        topic = draw(st.sampled_from([t.value for t in Topic if t is not model.topic]))
    elif kind == "other-source":  # another service's name, or a tool's: refused on a service's topic
        source = draw(st.sampled_from(["/backflush/manufacturer", "/backflush/distributor", "/backflush/warehouse",
                                       "/backflush/cli"]))
        changed = [(n, source.encode() if n == "ce_source" else v) for n, v in changed]
    elif kind == "spec-version":
        changed = [(n, b"0.3" if n == "ce_specversion" else v) for n, v in changed]
    return changed, topic, f"{kind} {name}"


@st.composite
def fuzz_record(draw: st.DrawFn) -> FuzzRecord:
    """One record: a contract event as is, with its value or headers mutated, or noise."""
    shape = draw(st.sampled_from(["valid", "value-mutated", "headers-mutated", "noise"]))
    if shape == "noise":
        headers = draw(st.lists(st.tuples(st.sampled_from([*REQUIRED_HEADERS, "x-any"]), st.binary(max_size=24)),
                                max_size=8))
        return FuzzRecord(draw(st.sampled_from([t.value for t in Topic])),
                          draw(st.binary(max_size=16)),  # a key always: Kafka takes no record without both
                          draw(st.none() | st.binary(max_size=200)), tuple(headers), "noise")
    model = draw(st.sampled_from(ALL_EVENTS))
    value = draw(contract_values(model))
    headers = headers_for(model, value, draw(st.uuids(version=4)))
    key = model.model_validate(value).record_key().encode()
    raw = json.dumps(value).encode()
    if shape == "valid":
        return FuzzRecord(model.topic.value, key, raw, tuple(headers), f"valid {model.__name__}")
    if shape == "value-mutated":
        raw, how = draw(_value_mutation(value))
        return FuzzRecord(model.topic.value, key, raw, tuple(headers), f"{model.__name__} value {how}")
    changed, topic, how = draw(_header_mutation(headers, model))
    return FuzzRecord(topic, key, raw, tuple(changed), f"{model.__name__} headers {how}")
