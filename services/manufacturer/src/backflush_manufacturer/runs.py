"""Repetitive production (issue 17): runs reported by a production line, without production orders.

A `RunQuantityReported` flushes every pre and post line of the item's BOM for the run's quantity in one flush,
through the engine the production orders use (`Production._flush`: post, park whole, or refuse under the item's
negative-stock policy; genealogy into the run's lot). A run is stored as a production order of flow `run` keyed by
its run id, so the exception queue, reprocessing, manual issues (`ComponentIssueReported` naming the run id) and
variance treat it like one. Once posted, the finished lot is received at the finished-goods location and handed
to the warehouse as finished-goods stock for sale (`FinishedGoodsStocked`).

Reversal is a small saga, every step an event: the shop floor asks (`RunCancellationRequested`); the manufacturer
asks the warehouse to withdraw the lot (`FinishedStockWithdrawalRequested`), which must still be whole and
unallocated there; only on `FinishedStockWithdrawn` does it reverse the flush back to the original lots; a
`FinishedStockWithdrawalRefused` ends the wait with the run standing and the refusal told (`RunReportRefused`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts.base import Event
from backflush_shared.unit_of_work import UnitOfWork

from backflush_manufacturer.adapters import repository as repo
from backflush_manufacturer.adapters.repository import MasterData, ProductionOrder
from backflush_manufacturer.domain.backflush import FlushRequest
from backflush_manufacturer.domain.bom import FlushPoint
from backflush_manufacturer.domain.errors import InsufficientComponentStockError, ManufacturerDomainError
from backflush_manufacturer.domain.ledger import LedgerMovement, MovementReason
from backflush_manufacturer.domain.order_states import ProductionOrderState as S
from backflush_manufacturer.domain.orders import producible
from backflush_manufacturer.domain.receipts import Receipt, receive
from backflush_manufacturer.domain.reversal import reverse_order
from backflush_manufacturer.domain.runs import RunFigures, line_variance, run_requirements
from backflush_manufacturer.domain.units import Unit
from backflush_manufacturer.domain.variance import ComponentVariance
from backflush_manufacturer.production import RUN, Production, _code, _move



def _details(event: c.RunQuantityReported) -> dict[str, str]:
    return {"line": event.line, "period": event.period, "lot": event.lot, "reported_by": event.reported_by}


class Runs:
    def __init__(self, production: Production) -> None:
        self.production = production

    async def report(self, uow: UnitOfWork, event: c.RunQuantityReported) -> None:
        p = self.production
        existing = await repo.order_for_update(uow, event.run_id)
        if existing is not None:
            same = (existing.flow, existing.item, existing.quantity) == (RUN, event.item, event.quantity) \
                and {k: existing.processing.get(k) for k in ("line", "period", "lot")} == \
                {k: v for k, v in _details(event).items() if k != "reported_by"}
            if same:
                uow.log.info("run report again with the same content: nothing to do", run_id=event.run_id)
                return
            await self._refuse(uow, event.run_id, "run-id-in-use",
                               f"run {event.run_id} was reported already ({existing.quantity} {existing.item}, "
                               f"{existing.status}); another report needs another run id")
            return
        md = await p._md(uow)
        try:
            producible(md.catalogue, event.item, event.quantity)
        except ManufacturerDomainError as error:
            await self._refuse(uow, event.run_id, _code(error), str(error))  # nothing stored: may be sent again
            return
        if await repo.finished_lot_exists(uow, event.lot):
            await self._refuse(uow, event.run_id, "lot-in-use", f"lot {event.lot} was produced already; a run "
                                                                 "reports a lot of its own")
            return
        run = ProductionOrder(event.run_id, event.item, event.quantity, RUN, S.REPORTED, _details(event),
                              Decimal(0), None, None)
        await repo.add_order(uow, run)
        event_id = str(uow.consumed.envelope.event_id)
        request = FlushRequest(event_id, run.order_id, run.item, FlushPoint.POST, run.quantity,
                               finished_lot=event.lot, event_id=event_id)
        posted = await p._flush(uow, md, run, request, step="run",
                                requirements=run_requirements(md.catalogue, run.item, run.quantity))
        if posted is not None:
            await p._produce(uow, md, run, run.quantity, event.lot)

    async def _refuse(self, uow: UnitOfWork, run_id: str, code: str, reason: str) -> None:
        uow.log.info("run report refused", run_id=run_id, code=code, reason=reason)
        await uow.emit(c.RunReportRefused(run_id=run_id, code=code, reason=reason[:1000]), correlation_id=run_id)

    async def cancel(self, uow: UnitOfWork, event: c.RunCancellationRequested) -> None:
        run = await repo.order_for_update(uow, event.run_id)
        if run is None or run.flow != RUN:
            await self._refuse(uow, event.run_id, "unknown-run", f"no run {event.run_id} was reported")
            return
        if run.status is S.WITHDRAWAL_REQUESTED:
            uow.log.info("run reversal already asked of the warehouse", run_id=run.order_id)
            return
        if run.status is S.PARKED:
            # nothing of it posted: it stops waiting, and nothing is at the warehouse to withdraw
            for entry in await repo.waiting_parked(uow, run.order_id):
                await repo.resolve_parked(uow, entry.flush_id, "cancelled")
            await self._reversed(uow, run, [], event.reason)
            return
        if run.status is not S.STOCKED:
            await self._refuse(uow, run.order_id, "run-not-reversible", f"run {run.order_id} is {run.status}")
            return
        _move(run, S.WITHDRAWAL_REQUESTED, event.reason or None)
        await repo.save_order(uow, run)
        await uow.emit(inv.FinishedStockWithdrawalRequested(run_id=run.order_id, item=run.item,
                                                           lot=run.processing["lot"], quantity=run.quantity),
                       correlation_id=run.order_id)

    async def withdrawn(self, uow: UnitOfWork, event: c.FinishedStockWithdrawn) -> None:
        run = await repo.order_for_update(uow, event.run_id)
        if run is None or run.status is not S.WITHDRAWAL_REQUESTED:
            uow.log.info("stock withdrawn for a run not waiting for it: recorded only", run_id=event.run_id)
            return
        p = self.production
        event_id = str(uow.consumed.envelope.event_id)
        ledger = await p.ledgers.load_of_order(uow, run.order_id)
        # every flush and issue charged to the run, back to the lots it came from; then its lot leaves the books
        movements = list(reverse_order(ledger, run.order_id, event_id))
        for location, on_hand in ledger.lot_locations(run.item, event.lot).items():
            movements.append(LedgerMovement(run.item, location, event.lot, -on_hand, MovementReason.REVERSAL,
                                            event_id, production_order=run.order_id))
        await p.ledgers.append(uow, movements)
        await repo.cancel_finished_lot(uow, event.lot)
        await self._reversed(uow, run, movements, run.reason or "")
        await p.reprocess_parked(uow)  # the components given back may let parked flushes post

    async def withdrawal_refused(self, uow: UnitOfWork, event: c.FinishedStockWithdrawalRefused) -> None:
        run = await repo.order_for_update(uow, event.run_id)
        if run is None or run.status is not S.WITHDRAWAL_REQUESTED:
            return
        _move(run, S.STOCKED, f"reversal refused: {event.reason}"[:1000])
        await repo.save_order(uow, run)
        await self._refuse(uow, run.order_id, "run-not-reversible", f"run {run.order_id} stands: {event.reason}")

    async def _reversed(self, uow: UnitOfWork, run: ProductionOrder, movements: list[LedgerMovement],
                        reason: str) -> None:
        _move(run, S.CANCELLED, reason or None)
        await repo.save_order(uow, run)
        await uow.emit(c.RunReversed(run_id=run.order_id, item=run.item, lot=run.processing["lot"],
                                     quantity=run.quantity, reason=reason), correlation_id=run.order_id)
        uow.log.info("run reversed", run_id=run.order_id, movements=len(movements))


async def produce_run(p: Production, uow: UnitOfWork, md: MasterData, run: ProductionOrder, quantity: Decimal,
                      lot: str) -> None:
    """The run's flush posted: its lot into the finished-goods location, handed to the warehouse for sale."""
    location = p.settings.finished_goods_location
    ledger = await p.ledgers.load(uow, [run.item])
    receipt = Receipt(str(uow.consumed.envelope.event_id), run.item, lot, quantity, location,
                      MovementReason.PRODUCTION_RECEIPT, run.order_id)
    await p.ledgers.append(uow, receive(md.catalogue, ledger, receipt))
    await repo.add_finished_lot(uow, lot, run.order_id, run.item, quantity)
    run.completed = quantity
    _move(run, S.STOCKED, None)
    await repo.save_order(uow, run)
    await uow.emit(inv.FinishedGoodsStocked(run_id=run.order_id, item=run.item, lot=lot, quantity=quantity),
                   correlation_id=run.order_id)
    uow.log.info("run produced: lot handed to the warehouse as finished-goods stock", run_id=run.order_id, lot=lot)


async def deliver_stock_lots(p: Production, uow: UnitOfWork, event: c.GoodsSignedFor) -> None:
    """A holder signed for finished-goods stock: the run lots it took leave the manufacturer's books, as a customer
    order's lot does at its signature (`MovementReason.DELIVERY`). A lot the manufacturer did not produce in a run
    is not on its books: logged and left alone."""
    event_id = str(uow.consumed.envelope.event_id)
    produced = {signed.lot: await repo.finished_lot(uow, signed.lot) for signed in event.lots}
    ledger = await p.ledgers.load(uow, {found[1] for found in produced.values() if found is not None})
    movements: list[LedgerMovement] = []
    for signed in event.lots:
        found = produced[signed.lot]
        if found is None:
            uow.log.warning("stock lot signed for is not a run lot of ours: nothing to take off the books",
                            lot=signed.lot, quantity=str(signed.quantity))
            continue
        run_id, item = found
        left = signed.quantity
        for location, on_hand in sorted(ledger.lot_locations(item, signed.lot).items()):
            taken = min(left, on_hand)
            if taken <= 0:
                continue
            movements.append(LedgerMovement(item, location, signed.lot, -taken, MovementReason.DELIVERY, event_id,
                                            production_order=run_id))
            left -= taken
        if left > 0:
            uow.log.warning("stock lot signed for beyond what the books hold", lot=signed.lot, missing=str(left))
    await p.ledgers.append(uow, movements)
    uow.log.info("stock sale signed for: run lots off the books", order_id=event.order_id,
                 lots=[signed.lot for signed in event.lots])


async def refuse_run(p: Production, uow: UnitOfWork, run: ProductionOrder,
                     error: InsufficientComponentStockError) -> None:
    """The `reject` policy refused the run's flush: nothing posted, the run is rejected with the reason."""
    _move(run, S.REJECTED, str(error))
    await repo.save_order(uow, run)
    for entry in await repo.waiting_parked(uow, run.order_id):
        await repo.resolve_parked(uow, entry.flush_id, "cancelled")
    await uow.emit(c.RunReportRefused(run_id=run.order_id, code=_code(error), reason=str(error)[:1000]),
                   correlation_id=run.order_id)


def handler_table(runs: Runs) -> dict[type[Event], object]:
    return {
        c.RunQuantityReported: runs.report,
        c.RunCancellationRequested: runs.cancel,
        c.FinishedStockWithdrawn: runs.withdrawn,
        c.FinishedStockWithdrawalRefused: runs.withdrawal_refused,
    }


# -- queries ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    run: ProductionOrder
    unit: Unit | None

    @property
    def line(self) -> str:
        return str(self.run.processing.get("line", ""))

    @property
    def period(self) -> str:
        return str(self.run.processing.get("period", ""))

    @property
    def lot(self) -> str:
        return str(self.run.processing.get("lot", ""))


async def runs(session: AsyncSession, *, line: str | None = None, period: str | None = None) -> list[RunView]:
    master = await repo.read_master_data(session)
    units = {code: item.unit for code, item in master.catalogue.items.items()}
    views = [RunView(order, units.get(order.item)) for order in await repo.list_orders(session) if order.flow == RUN]
    return [v for v in views if (line is None or v.line == line) and (period is None or v.period == period)]


async def run_variance(session: AsyncSession, line: str, period: str) -> tuple[ComponentVariance, ...]:
    """Standard against actual over the runs of one line and period that produced (reversed and refused runs
    consumed nothing, net)."""
    master = await repo.read_master_data(session)
    chosen = [v.run for v in await runs(session, line=line, period=period) if v.run.completed > 0
              and v.run.status is not S.CANCELLED]
    items = set()
    for run in chosen:
        items |= await repo.items_of_order(session, run.order_id)
    ledger = await repo.load_ledger(session, items)
    units = {code: item.unit for code, item in master.catalogue.items.items()}
    return line_variance(master.catalogue, [RunFigures(r.order_id, r.item, r.completed,
                                                       ledger.consumed_by_order(r.order_id)) for r in chosen], units)
