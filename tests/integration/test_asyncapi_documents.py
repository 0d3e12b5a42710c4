"""The AsyncAPI documents in docs/asyncapi/ pass the official AsyncAPI parser (`@asyncapi/parser`, pinned in
tools/asyncapi-validate/package.json) with its default ruleset.

Whether the documents match the code is tested elsewhere; this file only asks whether they are valid AsyncAPI,
and checks that the validator can tell a broken document from a good one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "asyncapi"
TOOL = ROOT / "tools" / "asyncapi-validate"
PARSER_PACKAGE = "@asyncapi/parser"

# The smallest document that uses what ours use: a Kafka server, a channel, a receive operation, a message with
# a JSON Schema payload; with a description wherever the default ruleset asks for one.
_VALID_DOCUMENT = {
    "asyncapi": "3.0.0",
    "info": {"title": "Validator probe", "version": "1.0.0", "description": "Checks the validator itself."},
    "defaultContentType": "application/json",
    "servers": {"local": {"host": "localhost:9092", "protocol": "kafka", "description": "A local broker."}},
    "channels": {
        "orders": {
            "address": "orders",
            "description": "Orders.",
            "messages": {"orderPlaced": {"$ref": "#/components/messages/OrderPlaced"}},
        }
    },
    "operations": {
        "receiveOrders": {
            "action": "receive",
            "description": "Consumes orders.",
            "channel": {"$ref": "#/channels/orders"},
            "messages": [{"$ref": "#/channels/orders/messages/orderPlaced"}],
        }
    },
    "components": {
        "messages": {
            "OrderPlaced": {
                "name": "OrderPlaced",
                "contentType": "application/json",
                "payload": {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"order_id": {"type": "string"}},
                },
            }
        }
    },
}

# Two faults of different kinds: a required field missing (info.version) and a reference to nothing.
_BROKEN_DOCUMENT = """\
asyncapi: 3.0.0
info:
  title: Broken
channels:
  orders:
    address: orders
operations:
  receiveOrders:
    action: receive
    channel:
      $ref: '#/channels/missing'
"""


def _pinned_parser_version() -> str:
    return json.loads((TOOL / "package.json").read_text())["dependencies"][PARSER_PACKAGE]


def _installed_parser_version() -> str | None:
    manifest = TOOL / "node_modules" / PARSER_PACKAGE / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def validate() -> list[str]:
    """The validator's command line, its npm dependencies installed from the lock file when missing or stale."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to validate AsyncAPI documents (Debian: apt-get install nodejs npm)")
    # A fresh clone has no node_modules; an interrupted or older install has the wrong version or none at all.
    if _installed_parser_version() != _pinned_parser_version():
        # --ignore-scripts: the parser needs no install scripts, and one of its dependencies (@scarf/scarf) only
        # has a telemetry postinstall.
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=TOOL,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed in {TOOL}:\n{result.stdout}{result.stderr}"
    return [node, str(TOOL / "validate.mjs")]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_documents_in_docs_are_valid_asyncapi(validate: list[str]) -> None:
    documents = sorted(path for pattern in ("*.json", "*.yaml", "*.yml") for path in DOCS.glob(pattern))
    # Fail rather than skip: no documents means the publishing step broke, and a skip would hide it.
    assert documents, f"no AsyncAPI documents in {DOCS}"
    result = _run([*validate, *map(str, documents)])
    assert result.returncode == 0, f"AsyncAPI validation failed:\n{result.stdout}{result.stderr}"


def test_validator_accepts_a_valid_document(validate: list[str], tmp_path: Path) -> None:
    document = tmp_path / "probe.json"
    document.write_text(json.dumps(_VALID_DOCUMENT, indent=2))
    result = _run([*validate, str(document)])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    assert f"{document}: valid (0 error(s)" in result.stdout


def test_validator_rejects_a_broken_document(validate: list[str], tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_VALID_DOCUMENT))
    broken = tmp_path / "broken.yaml"
    broken.write_text(_BROKEN_DOCUMENT)

    # One bad document among good ones fails the whole run, and the errors name the file, line and rule.
    result = _run([*validate, str(good), str(broken)])

    assert result.returncode == 1, f"{result.stdout}{result.stderr}"
    assert f"{broken}: INVALID" in result.stdout
    assert f'{broken}:2:6 error asyncapi-document-resolved: "info" property must have required property "version"' in (
        result.stderr
    )
    assert f"{broken}:11:13 error invalid-ref: '#/channels/missing' does not exist" in result.stderr


def test_validator_rejects_a_file_that_is_not_asyncapi(validate: list[str], tmp_path: Path) -> None:
    other = tmp_path / "compose.yaml"
    other.write_text("services:\n  kafka:\n    image: apache/kafka\n")
    result = _run([*validate, str(other)])
    assert result.returncode == 1, f"{result.stdout}{result.stderr}"
    assert "asyncapi-is-asyncapi" in result.stderr


def test_validator_needs_a_file(validate: list[str], tmp_path: Path) -> None:
    assert _run(validate).returncode == 2
    assert _run([*validate, str(tmp_path / "missing.json")]).returncode == 2
