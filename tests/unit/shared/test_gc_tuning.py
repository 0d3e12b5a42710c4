"""Once started, a service collects cyclic garbage less often and no longer traverses what start-up left alive."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from backflush_shared import gc_tuning


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_after_start_freezes_what_lives_and_raises_the_young_threshold(collector_restored: None) -> None:
    long_lived = [{"compiled": n} for n in range(1000)]
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    gc_tuning.settle_after_start()

    assert gc.get_freeze_count() >= len(long_lived)
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, gc_tuning.MIDDLE_THRESHOLD, gc_tuning.OLD_THRESHOLD)
    assert gc_tuning.YOUNG_THRESHOLD > 700  # CPython's default, which ran a collection every few events


def test_a_cycle_made_after_start_is_still_collected(collector_restored: None) -> None:
    gc_tuning.settle_after_start()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    del a, b
    assert gc.collect() >= 2
