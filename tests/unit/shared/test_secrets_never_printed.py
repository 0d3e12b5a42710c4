"""A failing local broker tool says what it ran, but never a SCRAM password it was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from backflush_shared.local_kafka import KafkaDistribution, LocalKafka, LocalKafkaError, redacted


def test_a_failing_storage_tool_names_its_arguments_without_the_scram_password(tmp_path: Path) -> None:
    broker = LocalKafka(run_dir=tmp_path, scram_users={"backflush": "s3cret-pw"})
    failing_java = tmp_path / "java"
    failing_java.write_text("#!/bin/sh\necho \"bad credential SCRAM-SHA-512=[name=backflush,password=s3cret-pw]\" >&2\n"
                            "exit 1\n")
    failing_java.chmod(0o755)
    with pytest.raises(LocalKafkaError) as raised:
        broker._tool(str(failing_java), KafkaDistribution("4.1.1", tmp_path), tmp_path / "log4j2.yaml",
                     "format", "--add-scram", "SCRAM-SHA-512=[name=backflush,password=s3cret-pw]")
    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "--add-scram SCRAM-SHA-512=[name=backflush,password=****]" in message


@pytest.mark.parametrize(("text", "shown"), [
    ("SCRAM-SHA-512=[name=a,password=p@ss/w0rd]", "SCRAM-SHA-512=[name=a,password=****]"),
    ('SCRAM-SHA-256=[name=a,password="with space"]', "SCRAM-SHA-256=[name=a,password=****]"),
    ("SCRAM-SHA-512=[password=x,name=a]", "SCRAM-SHA-512=[password=****,name=a]"),
    ("format -t abc -c server.properties", "format -t abc -c server.properties"),
])
def test_scram_passwords_are_redacted(text: str, shown: str) -> None:
    assert redacted(text) == shown
