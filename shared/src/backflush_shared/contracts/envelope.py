"""The envelope of every event, carried as CloudEvents binary-mode Kafka headers.

CloudEvents' Kafka binding puts each attribute in a header named `ce_<attribute>` and the data in the value;
`content-type` carries the data's media type. Our own attributes are CloudEvents extensions (lower-case letters
and digits only): `ce_schemaversion`, `ce_correlationid` (the order id) and `ce_causationid`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

HEADER_ID = "ce_id"
HEADER_TYPE = "ce_type"
HEADER_SOURCE = "ce_source"
HEADER_SPEC_VERSION = "ce_specversion"
HEADER_TIME = "ce_time"
HEADER_SCHEMA_VERSION = "ce_schemaversion"
HEADER_CORRELATION_ID = "ce_correlationid"
HEADER_CAUSATION_ID = "ce_causationid"
HEADER_CONTENT_TYPE = "content-type"

REQUIRED_HEADERS = (
    HEADER_ID,
    HEADER_TYPE,
    HEADER_SOURCE,
    HEADER_SPEC_VERSION,
    HEADER_TIME,
    HEADER_SCHEMA_VERSION,
    HEADER_CORRELATION_ID,
)


class Envelope(BaseModel):
    """Who said what, when, about which order, and because of which earlier event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(description="The idempotency key: the same id is the same event.")
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: datetime
    correlation_id: str = Field(min_length=1, description="The order id (or the item, for master data).")
    causation_id: uuid.UUID | None = Field(default=None, description="The event that caused this one.")
    source: str = Field(min_length=1, description="The service or tool that published the event.")

    @classmethod
    def new(
        cls,
        *,
        event_type: str,
        schema_version: int,
        correlation_id: str,
        source: str,
        causation_id: uuid.UUID | None = None,
    ) -> Envelope:
        return cls(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=schema_version,
            occurred_at=datetime.now(UTC),
            correlation_id=correlation_id,
            causation_id=causation_id,
            source=source,
        )

    def to_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (HEADER_ID, str(self.event_id)),
            (HEADER_TYPE, self.event_type),
            (HEADER_SOURCE, self.source),
            (HEADER_SPEC_VERSION, SPEC_VERSION),
            (HEADER_TIME, self.occurred_at.isoformat()),
            (HEADER_SCHEMA_VERSION, str(self.schema_version)),
            (HEADER_CORRELATION_ID, self.correlation_id),
            (HEADER_CONTENT_TYPE, CONTENT_TYPE),
        ]
        if self.causation_id is not None:
            headers.append((HEADER_CAUSATION_ID, str(self.causation_id)))
        return [(name, value.encode()) for name, value in headers]

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Envelope:
        """Read the envelope from decoded headers; raises `pydantic.ValidationError` or `KeyError`."""
        return cls(
            event_id=headers[HEADER_ID],  # type: ignore[arg-type]
            event_type=headers[HEADER_TYPE],
            schema_version=headers[HEADER_SCHEMA_VERSION],  # type: ignore[arg-type]
            occurred_at=headers[HEADER_TIME],  # type: ignore[arg-type]
            correlation_id=headers[HEADER_CORRELATION_ID],
            causation_id=headers.get(HEADER_CAUSATION_ID) or None,  # type: ignore[arg-type]
            source=headers[HEADER_SOURCE],
        )
