"""Contract manufacturing: what a brand owner's order took from whose stock, and the owner's statement per period.

A brand owner consigns component lots that stay its property (`Receipt.owner`, `LedgerMovement.owner`). Which lots
a flush may take is the engine's rule (`backflush.py`: the owner's lots first, the manufacturer's own only if the
order allows it, never another owner's, and owner stock never negative). This module only reads movements:

- `flush_report` splits one flush's (or one reversal's) movements into the owner's lots and the manufacturer's own
  units, per item and lot, as the owner is told (`ConsignedComponentsConsumed` / `...Returned`);
- `statement` reconciles an owner's stock per item and lot over a period, to the unit:
  opening + received - consumed - scrapped = closing, where consumed and scrapped are net of their reversals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from backflush_manufacturer.domain.ledger import LedgerMovement, MovementReason

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LotQuantity:
    item: str
    lot: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class FlushReport:
    """One flush's units for an owner's order: from the owner's lots, and the manufacturer's own (sold to it)."""

    flush_id: str
    consigned: tuple[LotQuantity, ...]
    own: tuple[LotQuantity, ...]

    def __bool__(self) -> bool:
        return bool(self.consigned or self.own)


def flush_reports(movements: Iterable[LedgerMovement], owner: str, *, sign: int = -1) -> tuple[FlushReport, ...]:
    """Per flush, in posting order: the units `movements` took (`sign=-1`: consumption, reported positive) or gave
    back (`sign=1`: a reversal), split by whose lot they were. Movements of another owner's lot cannot occur (the
    engine never takes one); a finished lot's own movements (no flush) are not components and are left out."""
    by_flush: dict[str, dict[tuple[bool, str, str], Decimal]] = {}
    for m in movements:
        if m.flush_id is None or m.is_allocation:
            continue
        if m.owner not in (None, owner):
            raise ValueError(f"flush {m.flush_id} moved lot {m.lot} of {m.item}, owned by {m.owner}, not {owner}")
        key = (m.owner is not None, m.item, m.lot)
        lines = by_flush.setdefault(m.flush_id, {})
        lines[key] = lines.get(key, ZERO) + sign * m.quantity
    reports = []
    for flush_id, lines in by_flush.items():
        consigned = tuple(LotQuantity(item, lot, q) for (theirs, item, lot), q in lines.items() if theirs and q > 0)
        own = tuple(LotQuantity(item, lot, q) for (theirs, item, lot), q in lines.items() if not theirs and q > 0)
        report = FlushReport(flush_id, consigned, own)
        if report:
            reports.append(report)
    return tuple(reports)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """An owner's lot over a period; `consumed` and `scrapped` are net of the reversals posted in the period."""

    item: str
    lot: str
    opening: Decimal
    received: Decimal
    consumed: Decimal
    scrapped: Decimal
    closing: Decimal

    @property
    def reconciles(self) -> bool:
        return self.opening + self.received - self.consumed - self.scrapped == self.closing


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """`2026-12` -> [2026-12-01, 2027-01-01) in UTC."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"a period is a month, YYYY-MM: {period!r}") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite gives back naive UTC times


def statement(movements: Iterable[tuple[LedgerMovement, datetime]], owner: str, start: datetime,
              end: datetime) -> tuple[StatementLine, ...]:
    """The owner's lots, per item and lot, over [start, end): every figure summed from the ledger's movements."""
    theirs = [(m, _utc(at)) for m, at in movements if m.owner == owner and not m.is_allocation]
    # a reversal counts against what it reverses: scrap given back is less scrap, a flush given back less consumed
    scrap_flushes = {m.flush_id for m, _at in theirs if m.reason is MovementReason.SCRAP}
    lines: dict[tuple[str, str], dict[str, Decimal]] = {}
    for m, at in theirs:
        figures = lines.setdefault((m.item, m.lot), dict.fromkeys(
            ("opening", "received", "consumed", "scrapped", "closing"), ZERO))
        if at >= end:
            continue
        figures["closing"] += m.quantity
        if at < start:
            figures["opening"] += m.quantity
        elif m.reason is MovementReason.RECEIPT:
            figures["received"] += m.quantity
        elif m.reason is MovementReason.SCRAP or (m.reason is MovementReason.REVERSAL and m.flush_id in scrap_flushes):
            figures["scrapped"] -= m.quantity
        else:  # backflushes, hand issues and their reversals
            figures["consumed"] -= m.quantity
    return tuple(
        StatementLine(item, lot, f["opening"], f["received"], f["consumed"], f["scrapped"], f["closing"])
        for (item, lot), f in sorted(lines.items())
        if any(f.values())
    )
