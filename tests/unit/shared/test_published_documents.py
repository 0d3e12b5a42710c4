"""The committed contract documents are what the code generates: change a model, regenerate the docs."""

from __future__ import annotations

from pathlib import Path

from backflush_shared.docs_export import expected_files

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_committed_json_schemas_and_asyncapi_documents_match_the_code() -> None:
    expected = expected_files()
    stale = [path for path, content in expected.items()
             if not (DOCS / path).exists() or (DOCS / path).read_text() != content]
    extra = [str(p.relative_to(DOCS)) for folder in ("schemas", "asyncapi") for p in (DOCS / folder).glob("*.json")
             if str(p.relative_to(DOCS)) not in expected]
    assert not stale and not extra, (
        f"docs/ is out of date (stale: {stale}, not generated: {extra}); run `backflush docs export`"
    )


def test_every_event_has_a_schema_and_every_service_a_document() -> None:
    expected = expected_files()
    assert {p for p in expected if p.startswith("asyncapi/")} == {
        "asyncapi/distributor.json", "asyncapi/manufacturer.json", "asyncapi/warehouse.json"
    }
    assert "schemas/backflush.order.placed.v1.json" in expected
