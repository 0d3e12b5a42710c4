"""A dead letter's id is the outbox row's key: one per consumer and record, and it always fits the id column."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backflush_shared.messaging.codec import RecordOrigin
from backflush_shared.messaging.dead_letter import MAX_ID_LENGTH, dead_letter_id

SERVICES = st.sampled_from(["manufacturer", "distributor", "warehouse"])
TOPICS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-_", min_size=1, max_size=120)
ORIGINS = st.tuples(TOPICS, st.integers(0, 10_000), st.integers(0, 2**62))


def origin(topic: str, partition: int, offset: int) -> RecordOrigin:
    return RecordOrigin(topic, partition, offset, None, None, ())


def test_a_short_origin_keeps_its_readable_id() -> None:
    assert dead_letter_id("distributor", origin("orders", 0, 17)) == "dlq:distributor:orders:0:17"


def test_a_long_topic_name_still_fits_the_outbox_id_column() -> None:
    # the shop floor's intake topic made this 46 characters, which PostgreSQL refused (varchar(36))
    made = dead_letter_id("manufacturer", origin("completions.shop-floor", 0, 10542))
    assert len(made) == MAX_ID_LENGTH and made.startswith("dlq:manufacturer:")


@given(SERVICES, ORIGINS)
def test_every_id_fits_and_is_the_same_on_every_redelivery(service: str, where: tuple[str, int, int]) -> None:
    made = dead_letter_id(service, origin(*where))
    assert len(made) <= MAX_ID_LENGTH and made.startswith(f"dlq:{service}:")  # whose dead letter it is, readable
    assert made == dead_letter_id(service, origin(*where))


@given(SERVICES, ORIGINS, ORIGINS)
def test_two_records_get_two_ids(service: str, one: tuple[str, int, int], other: tuple[str, int, int]) -> None:
    if one != other:
        assert dead_letter_id(service, origin(*one)) != dead_letter_id(service, origin(*other))
