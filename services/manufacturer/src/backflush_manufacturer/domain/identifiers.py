"""Identifiers the manufacturer derives from an order id: certificates, finished lots, flush ids.

An order id may be as long as the contract allows (64 characters), so `QC-{order}` or `{order}-C{quantity}`
would not fit the same 64-character field on the events we publish: our own event would fail validation and the
order would wait for ever. Short results stay exactly as they always were (readable, and what existing lots are
called); a result that would not fit keeps the start of the order id, then a dot and a digest of the whole
natural id, then the readable suffix, so it is deterministic (a redelivery derives the same lot) and two
different natural ids get different results.

One limit of this scheme: an order id can be crafted to equal another order's shortened result (it is a valid
id itself). That takes a deliberate choice of id; ids people choose do not collide.
"""

from __future__ import annotations

from hashlib import sha256

#: The contracts' `Identifier` length (backflush_shared.contracts.base); a lot or a certificate id must fit it.
IDENTIFIER_MAX = 64
#: A flush id is only stored (ledger and parking tables, 120 characters), never published as an identifier.
FLUSH_ID_MAX = 120
#: Hex characters of the digest: 64 bits, so an accidental collision needs billions of long order ids.
DIGEST_LENGTH = 16


def derived_id(order_id: str, *, prefix: str = "", suffix: str = "", limit: int = IDENTIFIER_MAX) -> str:
    """`prefix + order_id + suffix` when it fits in `limit` characters, else a stable shortened form that fits."""
    natural = f"{prefix}{order_id}{suffix}"
    if len(natural) <= limit:
        return natural
    digest = "." + sha256(natural.encode()).hexdigest()[:DIGEST_LENGTH]
    if len(prefix) + 1 + len(digest) + len(suffix) > limit:
        suffix = ""  # a suffix this long cannot stay readable; the digest still tells the ids apart
    room = limit - len(prefix) - len(digest) - len(suffix)
    if room < 1:
        raise ValueError(f"prefix {prefix!r} leaves no room for an id of at most {limit} characters")
    return f"{prefix}{order_id[:room]}{digest}{suffix}"


def certificate_id(order_id: str) -> str:
    """The quality certificate of a pre-product order's lot."""
    return derived_id(order_id, prefix="QC-")


def finished_lot(order_id: str, number: int) -> str:
    """The lot of a pre-product order's goods (produced in full, so lot 1)."""
    return derived_id(order_id, suffix=f"-{number}")


def completion_lot(order_id: str, completed: str) -> str:
    """The lot of one completion of a post-product order, named by the quantity completed so far (`POST-1-C15`)."""
    return derived_id(order_id, suffix=f"-C{completed}")


def step_flush_id(order_id: str, step: str) -> str:
    """The flush id of an order's release or pre-product completion (one event causes both, so not its id)."""
    return derived_id(order_id, suffix=f":{step}", limit=FLUSH_ID_MAX)
