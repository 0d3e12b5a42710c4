"""A consumed Kafka record as the codec reads it, for tests that build one by hand (no broker needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
