"""The published documents of our contracts: a JSON Schema per event, an AsyncAPI document per service.

`backflush docs export` writes them under docs/; a test fails when the committed files differ from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backflush_shared.contracts.envelope import REQUIRED_HEADERS
from backflush_shared.contracts.registry import ALL_EVENTS
from backflush_shared.service import ServiceDefinition, build_app, load_services


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of every event, with its type, version, topic and headers stated."""
    documents: dict[str, dict[str, Any]] = {}
    for model in ALL_EVENTS:
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:backflush:event:{model.event_type}:v{model.schema_version}"
        schema["x-event-type"] = model.event_type
        schema["x-schema-version"] = model.schema_version
        schema["x-topic"] = model.topic.value
        schema["x-record-key"] = "order id (the item for master data)"
        schema["x-headers"] = list(REQUIRED_HEADERS) + ["ce_causationid", "content-type"]
        documents[f"{model.event_type}.v{model.schema_version}.json"] = schema
    return documents


def asyncapi_document(definition: ServiceDefinition) -> dict[str, Any]:
    from backflush_shared.settings import ServiceSettings

    settings = definition.settings_class(service=definition.name, bootstrap_servers="kafka:19092",
                                         database_url="sqlite+aiosqlite:///:memory:")
    assert isinstance(settings, ServiceSettings)
    app, _runtime = build_app(definition, settings)
    assert app.schema is not None
    return json.loads(app.schema.to_specification().to_json())


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """Relative path under docs/ -> content."""
    files = {f"schemas/{name}": render(schema) for name, schema in event_schemas().items()}
    for name, definition in load_services().items():
        files[f"asyncapi/{name}.json"] = render(asyncapi_document(definition))
    return files


def write(docs: Path) -> list[Path]:
    written = []
    expected = expected_files()  # builds every service's app: once, not once per file on disk
    for relative, content in expected.items():
        path = docs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            written.append(path)
    for folder in ("schemas", "asyncapi"):
        for stale in (docs / folder).glob("*.json"):
            if f"{folder}/{stale.name}" not in expected:
                stale.unlink()
                written.append(stale)
    return written
