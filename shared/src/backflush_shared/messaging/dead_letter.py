"""Dead letters: a record we cannot process goes to its topic's `.dlq` twin, unchanged, with why in headers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import EncodedRecord, RecordOrigin

HEADER_ORIGINAL_TOPIC = "dlq_original_topic"
HEADER_ORIGINAL_PARTITION = "dlq_original_partition"
HEADER_ORIGINAL_OFFSET = "dlq_original_offset"
HEADER_ERROR_TYPE = "dlq_error_type"
HEADER_ERROR_MESSAGE = "dlq_error_message"
HEADER_ATTEMPTS = "dlq_attempts"
HEADER_FAILED_BY = "dlq_failed_by"
HEADER_FAILED_AT = "dlq_failed_at"
HEADER_ID = "dlq_id"

DEAD_LETTER_HEADERS = frozenset(
    {
        HEADER_ORIGINAL_TOPIC,
        HEADER_ORIGINAL_PARTITION,
        HEADER_ORIGINAL_OFFSET,
        HEADER_ERROR_TYPE,
        HEADER_ERROR_MESSAGE,
        HEADER_ATTEMPTS,
        HEADER_FAILED_BY,
        HEADER_FAILED_AT,
        HEADER_ID,
    }
)


#: The outbox keys its rows by an event id of at most this many characters (a UUID's length).
MAX_ID_LENGTH = 36


def dead_letter_id(failed_by: str, origin: RecordOrigin) -> str:
    """One dead letter per consumer and record, however often the record is redelivered.

    Readable (`dlq:distributor:orders:0:17`) when it fits the outbox's id column; in a longer one (a long topic
    name, a deployment prefix, a large offset) a digest of the readable form takes the place of the origin
    (`dlq:manufacturer:` and 19 hex digits), as stable and, per service, as unique. The record's origin is in the
    dead letter's headers either way."""
    readable = f"dlq:{failed_by}:{origin.topic}:{origin.partition}:{origin.offset}"
    if len(readable) <= MAX_ID_LENGTH:
        return readable
    digest = hashlib.sha256(readable.encode()).hexdigest()
    service = f"dlq:{failed_by}:"
    if MAX_ID_LENGTH - len(service) < 16:  # a service name too long to leave room for a digest worth the name
        service = "dlq:"
    return service + digest[: MAX_ID_LENGTH - len(service)]


def dead_letter_record(
    topics: TopicNames,
    origin: RecordOrigin,
    *,
    error_type: str,
    reason: str,
    failed_by: str,
    attempts: int = 1,
) -> EncodedRecord:
    headers = [(name, value) for name, value in origin.headers if name not in DEAD_LETTER_HEADERS]
    headers += [
        (HEADER_ID, dead_letter_id(failed_by, origin).encode()),
        (HEADER_ORIGINAL_TOPIC, origin.topic.encode()),
        (HEADER_ORIGINAL_PARTITION, str(origin.partition).encode()),
        (HEADER_ORIGINAL_OFFSET, str(origin.offset).encode()),
        (HEADER_ERROR_TYPE, error_type.encode()),
        (HEADER_ERROR_MESSAGE, reason[:2000].encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
        (HEADER_FAILED_BY, failed_by.encode()),
        (HEADER_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    return EncodedRecord(
        topic=topics.dead_letter(origin.topic),
        key=origin.key or b"",
        value=origin.value or b"",
        headers=headers,
    )
