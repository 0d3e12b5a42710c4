"""Which dead letters `dlq replay` puts back by default: a record no service could read, or one sent to the wrong
place, would only be dead-lettered again if replayed unchanged, so it goes back only when named (`--id`) or with
`--unreadable`; an event a service refused (its order not known yet) is replayed by default."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.consumed import Record

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.dead_letters import DeadLetter
from backflush_shared.messaging.codec import READ_ERRORS, RejectedRecord, decode, encode
from backflush_shared.messaging.dead_letter import dead_letter_record
from backflush_shared.messaging.processor import RecordOrigin
from backflush_shared.messaging.publish import envelope_for

TOPICS = TopicNames("p.")


def sent(event: Event, *, source: str, topic: str | None = None, extra_headers: tuple[tuple[str, bytes], ...] = (),
         header_changes: dict[str, bytes] | None = None, value: bytes | None = None) -> Record:
    encoded = encode(event, envelope_for(event, source), TOPICS(event.topic))
    changes = header_changes or {}
    headers = [(name, changes.get(name, raw)) for name, raw in encoded.headers] + list(extra_headers)
    return Record(topic or encoded.topic, 0, 5, encoded.key, encoded.value if value is None else value, headers)


def dead_letter_of(record: Record, error_type: str, reason: str) -> DeadLetter:
    encoded = dead_letter_record(TOPICS, RecordOrigin.of(record), error_type=error_type, reason=reason,
                                 failed_by="warehouse")
    return DeadLetter(encoded.topic, 0, 1, encoded.key, encoded.value, tuple(encoded.headers))


def shipped() -> c.GoodsShipped:
    return c.GoodsShipped(order_id="S-1", item="CHAIR-ERGO", quantity=Decimal(2), ship_to="1 Ship Road", lots=["L1"])


def receipt() -> md.ComponentsReceived:
    return md.ComponentsReceived(receipt_id="R-1", item="SEAT-ASSY", lot="L1", quantity=Decimal(3))


MISADDRESSED = {
    "source-mismatch": lambda: sent(shipped(), source="/backflush/manufacturer"),
    "wrong-topic": lambda: sent(receipt(), source="/backflush/cli", topic="p.orders"),
    "duplicate-header": lambda: sent(receipt(), source="/backflush/cli",
                                     extra_headers=(("ce_source", b"/someone/else"),)),
    "too-deep": lambda: sent(receipt(), source="/backflush/cli", value=b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    "correlation-mismatch": lambda: sent(shipped(), source="/backflush/warehouse",
                                         header_changes={"ce_correlationid": b"OTHER"}),
}


@pytest.mark.parametrize("expected", sorted(MISADDRESSED))
def test_a_record_refused_as_it_was_sent_is_not_replayed_by_default(expected: str) -> None:
    record = MISADDRESSED[expected]()
    refused = decode(record, topics=TOPICS)
    assert isinstance(refused, RejectedRecord), refused
    assert refused.error_type == expected
    assert dead_letter_of(record, refused.error_type, refused.reason).unreadable


def test_every_way_a_record_can_be_unreadable_is_left_out_of_a_default_replay() -> None:
    record = sent(receipt(), source="/backflush/cli")
    assert all(dead_letter_of(record, error, "as sent").unreadable for error in READ_ERRORS)


def test_an_event_a_service_refused_is_replayed_by_default() -> None:
    record = sent(o.OrderCancellationRequested(order_id="S-9", reason="not needed", requested_by="Holder"),
                  source="/backflush/cli")
    assert not dead_letter_of(record, "UnknownOrderError", "order S-9 is not known").unreadable
