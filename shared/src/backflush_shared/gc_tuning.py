"""How a service's process sets Python's cyclic garbage collector once it has started.

A batch allocates thousands of short-lived container objects (decoded events, rows, log dicts): with CPython's
default first threshold (700 allocations) the collector ran every few events and re-scanned everything the
start-up left alive (modules, pydantic's validators, SQLAlchemy's compiled statements), about a fifth of a busy
distributor's CPU in `bench.handlers`. Almost all of a batch's garbage is freed by reference counting anyway;
the collector is only for cycles, which a larger first threshold still catches, later.
"""

from __future__ import annotations

import gc

#: Allocations (minus deallocations) of container objects before a young collection; CPython's default is 700.
YOUNG_THRESHOLD = 10_000
#: Young collections per middle one, and middle per full one (CPython's defaults: 10, 10).
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 50


def settle_after_start() -> None:
    """Move what start-up left alive out of the collector's reach, and collect less often from now on.

    `gc.freeze()` after a full collection: the objects that live as long as the process (imported modules, the
    app, its compiled statements) are no longer traversed by every full collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


__all__ = ["settle_after_start"]
