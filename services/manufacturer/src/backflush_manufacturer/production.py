"""The manufacturer's use cases: production orders through the quality gate, flushes, production and allocation.

Each function runs inside the batch's transaction (`UnitOfWork`): it loads what it needs, asks the domain,
appends the movements the domain returns, and emits events through the outbox. Nothing here decides a quantity.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import master_data as md_events
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import ConsumedComponent, OrderProcessingInfo, QualityCertificate
from backflush_shared.messaging.processor import Handler
from backflush_shared.unit_of_work import UnitOfWork

from backflush_manufacturer.adapters import repository as repo
from backflush_manufacturer.adapters.repository import MasterData, MasterDataCache, ParkedEntry, ProductionOrder
from backflush_manufacturer.domain.allocation import allocate, release_allocations
from backflush_manufacturer.domain.backflush import ComponentIssue, FlushRequest, ParkedFlush, PostedFlush, plan, post_or_park
from backflush_manufacturer.domain.bom import Bom, BomCatalogue, BomLine, FlushPoint, parents_by_component, path_from_top
from backflush_manufacturer.domain.consignment import LotQuantity, flush_reports
from backflush_manufacturer.domain.errors import (
    CompletionNotReversibleError,
    InsufficientComponentStockError,
    ManufacturerDomainError,
)
from backflush_manufacturer.domain.explosion import Requirement
from backflush_manufacturer.domain.identifiers import certificate_id, completion_lot, finished_lot, step_flush_id
from backflush_manufacturer.domain.inspection import InspectionPlan, inspect
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.ledger import DEFAULT_LOCATION, LedgerMovement, MovementReason
from backflush_manufacturer.domain.order_states import ProductionOrderState as S
from backflush_manufacturer.domain.order_states import transition
from backflush_manufacturer.domain.orders import producible
from backflush_manufacturer.domain.parking import holds, reprocess_parked
from backflush_manufacturer.domain.receipts import Receipt, receive
from backflush_manufacturer.domain.reversal import reverse_completion, reverse_order
from backflush_manufacturer.domain.units import Unit, require_quantity
from backflush_manufacturer.errors import (
    CompletionCancellationRefusedError,
    CompletionExceedsOrderError,
    CompletionNotExpectedError,
    InventoryCheckMismatchError,
    MakeToStockMismatchError,
    ProductionOrderClosedError,
    ProductionOrderIdInUseError,
    UnknownParkedEntryError,
    UnknownProductionOrderError,
)
from backflush_manufacturer.settings import ManufacturerSettings

#: A make-to-stock production order's flow: like `post` (the shop floor reports completions), but its finished lots
#: go into the manufacturer's own component stock, not to a customer.
STOCK = "stock"
#: The flows whose completions the shop floor reports.
REPORTED = ("post", STOCK)
#: A run reported by a production line (repetitive production, `runs.py`): no production order and no customer;
#: stored as a production order of this flow, keyed by the run id, so that the engine (flush, park, genealogy,
#: reversal) treats it like one.
RUN = "run"
#: The flows with no customer order behind them: their events are marked `make_to_stock` for the others to ignore.
OWN_STOCK = (STOCK, RUN)


def _code(error: Exception) -> str:
    """`InsufficientComponentStockError` -> `insufficient-component-stock`."""
    name = type(error).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _move(order: ProductionOrder, to: S, reason: str | None) -> None:
    """Move the order to `to` with `reason` (what it waits for, or why it ended), if its state leads there; an illegal
    move raises `IllegalProductionOrderTransitionError`, which refuses the event and keeps the state stored."""
    order.status = transition(order.status, to, run=order.flow == RUN, order_id=order.order_id)
    order.reason = reason


class Production:
    def __init__(self, settings: ManufacturerSettings) -> None:
        self.settings = settings
        self.master_data = MasterDataCache()
        # the committed ledger in memory, caught up from the table under the stock lock (one writer at a time)
        self.ledgers = repo.LedgerCache(enabled=True)

    async def _md(self, uow: UnitOfWork) -> MasterData:
        return await self.master_data.get(uow)

    # -- master data -------------------------------------------------------------------------------------------

    async def define_item(self, uow: UnitOfWork, event: md_events.ItemDefined) -> None:
        md = await self._md(uow)
        item = Item(event.item, Unit(event.unit, event.decimals), event.phantom, event.description,
                    event.supply_location)
        others = [i for code, i in md.catalogue.items.items() if code != item.code]
        BomCatalogue(others + [item], md.catalogue.boms.values(), require_phantom_boms=False)  # raises if bad
        await repo.save_item(uow, item, event.negative_stock_policy)
        uow.log.info("item defined", item=item.code, unit=item.unit.code)
        # a policy changed to `reject` refuses what waits for the item; one changed to `allow` lets it post
        await self.reprocess_parked(uow)

    async def define_bom(self, uow: UnitOfWork, event: md_events.BomDefined) -> None:
        md = await self._md(uow)
        # a refusal names the path from the top item down to the faulty line
        parents = parents_by_component([(b.parent, line.component) for b in md.catalogue.boms.values()
                                        if b.parent != event.parent for line in b.lines]
                                       + [(event.parent, line.component) for line in event.lines])
        top = path_from_top(parents, event.parent)
        bom = Bom(event.parent, tuple(
            BomLine(line.component, line.quantity_per, line.scrap_factor,
                    FlushPoint.parse(line.flush, item=line.component, path=top + (line.component,)))
            for line in event.lines
        ))
        md.catalogue.with_boms(bom)  # validates the whole catalogue: unknown items, cycles at any depth
        await repo.save_bom(uow, bom)
        uow.log.info("BOM defined", parent=bom.parent, lines=len(bom.lines))

    async def define_inspection_plan(self, uow: UnitOfWork, event: md_events.InspectionPlanDefined) -> None:
        await repo.save_plan(uow, InspectionPlan(event.item, event.rule, event.remark))

    async def receive_components(self, uow: UnitOfWork,
                                 event: md_events.ComponentsReceived | md_events.ComponentsConsigned) -> None:
        """A receipt at our dock: the manufacturer's own stock, or (`ComponentsConsigned`) a brand owner's lot that
        stays its property. Either may let parked flushes post."""
        owner = event.owner if isinstance(event, md_events.ComponentsConsigned) else None
        md = await self._md(uow)
        ledger = await self.ledgers.load(uow, [event.item])
        # a receipt naming no location lands where the item's flushes take it from
        location = event.location or md.catalogue.item(event.item).supply_location or DEFAULT_LOCATION
        receipt = Receipt(str(uow.consumed.envelope.event_id), event.item, event.lot, event.quantity, location,
                          owner=owner)
        await self.ledgers.append(uow, receive(md.catalogue, ledger, receipt))
        uow.log.info("components consigned" if owner else "components received", item=event.item, lot=event.lot,
                     quantity=str(event.quantity), owner=owner)
        await self.reprocess_parked(uow)

    # -- production orders ---------------------------------------------------------------------------------------

    async def start_production_order(self, uow: UnitOfWork, event: o.OrderForwarded) -> None:
        if event.flow.value == STOCK:
            # sold from finished-goods stock at the warehouse: nothing to make here
            uow.log.info("stock order: served by the warehouse from stock, not produced")
            return
        existing = await repo.order_for_update(uow, event.order_id)
        if existing is not None:
            same = (existing.item, existing.quantity, existing.flow, existing.components_owner) == \
                (event.item, event.quantity, event.flow.value, event.components_owner)
            if same and not existing.status.finished:
                uow.log.info("production order exists already")  # a redelivery of the running order
                return
            # the id is burned by an order that got past validation (rejected for stock, failed quality, or
            # running): refused loudly, so the sender learns that the order needs another id; a finished order
            # placed again, even unchanged, is refused too, or it would wait for ever at the distributor
            why = f"{existing.status}: {existing.reason}" if existing.reason else existing.status
            reason = (f"production order {event.order_id} exists already for {existing.quantity} {existing.item} "
                      f"({why}); a different order needs another id")
            uow.log.warning("order forwarded again with different content: refused", reason=reason)
            await uow.emit(c.ProductionOrderRejected(order_id=event.order_id, code="order-id-in-use", reason=reason))
            return
        md = await self._md(uow)
        order = ProductionOrder(event.order_id, event.item, event.quantity, event.flow.value, S.CREATED,
                                event.processing.model_dump(mode="json"), Decimal(0), None, None,
                                event.components_owner, event.own_components_allowed)
        try:
            producible(md.catalogue, event.item, event.quantity)
        except ManufacturerDomainError as error:
            # a refusal leaves no order behind: the corrected order can be sent again under the same id
            uow.log.info("production order refused at validation; nothing stored", reason=str(error))
            await uow.emit(c.ProductionOrderRejected(order_id=order.order_id, code=_code(error), reason=str(error)))
            return
        await repo.add_order(uow, order)
        if order.flow == "pre":
            result = inspect(md.plans, order.item)
            if result.awaiting_inspector:
                _move(order, S.AWAITING_INSPECTION, result.reason)
                await repo.save_order(uow, order)
                return
            await self._inspected(uow, md, order, passed=result.passed, inspector="inspection plan",
                                  remark=result.reason)
        else:
            await self._release(uow, md, order)

    async def start_stock_production_order(self, uow: UnitOfWork,
                                           event: md_events.StockProductionOrderPlaced) -> None:
        """A planner's make-to-stock order: validated and released like any production order; the shop floor reports
        its completions, and each finished lot is received into component stock at the item's supply location.
        A refusal is dead-lettered with its reason (like any master-data refusal) and leaves no order behind."""
        existing = await repo.order_for_update(uow, event.order_id)
        if existing is not None:
            # a closed stock order placed again is another batch under a taken id, not a redelivery (those are
            # skipped by their event id): refused, or the planner would wait for seats that are never made
            if (existing.item, existing.quantity, existing.flow) == (event.item, event.quantity, STOCK) \
                    and not existing.status.finished and existing.status is not S.CLOSED:
                uow.log.info("stock production order exists already")  # a redelivery
                return
            why = f"{existing.status}: {existing.reason}" if existing.reason else existing.status
            raise ProductionOrderIdInUseError(event.order_id, f"{existing.flow} order for {existing.quantity} "
                                                              f"{existing.item}, {why}")
        md = await self._md(uow)
        producible(md.catalogue, event.item, event.quantity)  # raises: nothing stored
        processing = {"make_to_stock": True, "placed_by": event.placed_by,
                      "due_date": event.due_date.isoformat() if event.due_date else None}
        order = ProductionOrder(event.order_id, event.item, event.quantity, STOCK, S.CREATED, processing,
                                Decimal(0), None, None)
        await repo.add_order(uow, order)
        uow.log.info("stock production order placed", item=order.item, quantity=str(order.quantity))
        await self._release(uow, md, order)

    async def record_outside_inspection(self, uow: UnitOfWork, event: c.QualityInspectionReported) -> None:
        # Arrives on the shop floor's intake only (ACLs: no one else writes it), so it is an outside inspector's:
        # our own results go out as QualityInspectionRecorded, which we never read back.
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "inspection result")
        if order.status is not S.AWAITING_INSPECTION:
            uow.log.info("inspection result for an order not waiting for one: recorded only",
                         status=order.status.value)
            return
        await self._inspected(uow, await self._md(uow), order, passed=event.passed, inspector=event.inspected_by,
                              remark=event.remark)

    async def _inspected(self, uow: UnitOfWork, md: MasterData, order: ProductionOrder, *, passed: bool,
                         inspector: str, remark: str) -> None:
        await uow.emit(c.QualityInspectionRecorded(order_id=order.order_id, item=order.item, passed=passed,
                                                   inspected_by=inspector, remark=remark))
        if not passed:
            _move(order, S.QUALITY_FAILED, remark)
            await repo.save_order(uow, order)
            await uow.emit(c.ProductionOrderRejected(order_id=order.order_id, code="quality-check-failed",
                                                     reason=f"quality check of {order.item} failed: {remark}"))
            return
        order.certificate = {
            "certificate_id": certificate_id(order.order_id), "item": order.item, "lot": _lot(order, 1),
            "inspected_by": inspector, "inspected_at": datetime.now(UTC).isoformat(),
            "plan": md.plans[order.item].rule.value if order.item in md.plans else "external",
        }
        await repo.save_order(uow, order)
        await self._release(uow, md, order)

    async def _release(self, uow: UnitOfWork, md: MasterData, order: ProductionOrder) -> None:
        request = FlushRequest(step_flush_id(order.order_id, "release"), order.order_id, order.item, FlushPoint.PRE,
                               order.quantity, finished_lot=_lot(order, 1) if order.flow == "pre" else None,
                               event_id=str(uow.consumed.envelope.event_id), **_whose_stock(order))
        posted = await self._flush(uow, md, order, request, step="release")
        if posted is not None:
            await self._after_release(uow, md, order)

    async def _after_release(self, uow: UnitOfWork, md: MasterData, order: ProductionOrder) -> None:
        if order.flow in REPORTED:
            # a reprocessing pass runs its continuations in turn: a stock order's completion posted before this
            # release may have posted and produced this order's completions in its nested pass, whose status stands
            if order.completed == 0:
                await self._settle(uow, order, S.RELEASED)
            return
        # pre-product: produced in full right after release; its post lines flush at that completion (the order
        # counts it as completed once it is produced, not before)
        request = FlushRequest(step_flush_id(order.order_id, "completion"), order.order_id, order.item, FlushPoint.POST,
                               order.quantity, finished_lot=_lot(order, 1),
                               event_id=str(uow.consumed.envelope.event_id), **_whose_stock(order))
        posted = await self._flush(uow, md, order, request, step="completion")
        if posted is not None:
            await self._produce(uow, md, order, order.quantity, _lot(order, 1))

    async def report_completion(self, uow: UnitOfWork, event: c.CompletionReported) -> None:
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "completion reported")
        if order.flow not in REPORTED:
            raise CompletionNotExpectedError(order.order_id)
        if event.make_to_stock != (order.flow == STOCK):
            raise MakeToStockMismatchError(order.order_id, stock_order=order.flow == STOCK)
        if order.status.finished:
            raise ProductionOrderClosedError(order.order_id, order.status, "completion reported")
        # `completed` counts only what was produced; a parked completion is reported but waits for its flush, so
        # it is planned after, and leaves room for, the completions before it
        waiting = await self._waiting_completions(uow, order.order_id)
        remaining = order.quantity - order.completed - waiting
        if event.quantity > remaining:
            raise CompletionExceedsOrderError(order.order_id, event.quantity, remaining, order.quantity)
        md = await self._md(uow)
        item = md.catalogue.item(order.item)
        require_quantity(item.code, item.unit, event.quantity, what="completed quantity")
        before = order.completed + waiting
        lot = completion_lot(order.order_id, item.unit.format(before + event.quantity))
        attempt = 2
        while await repo.finished_lot_exists(uow, lot):  # the name of a cancelled completion is not reused
            lot = completion_lot(order.order_id, f"{item.unit.format(before + event.quantity)}-{attempt}")
            attempt += 1
        request = FlushRequest(str(uow.consumed.envelope.event_id), order.order_id, order.item, FlushPoint.POST,
                               event.quantity, completed_before=before, finished_lot=lot, **_whose_stock(order))
        posted = await self._flush(uow, md, order, request, step="completion")
        if posted is not None:
            await self._produce(uow, md, order, event.quantity, lot)

    async def _waiting_completions(self, uow: UnitOfWork, order_id: str) -> Decimal:
        """What completions of the order reported but still parked add up to."""
        return sum((e.parked.request.quantity for e in await repo.waiting_parked(uow, order_id)
                    if e.step == "completion" and isinstance(e.parked.request, FlushRequest)), Decimal(0))

    async def cancel_completion(self, uow: UnitOfWork, event: c.CompletionCancellationRequested) -> None:
        """Reverse one completion reported by mistake: its flush back to the original lots, its finished lot, its
        genealogy and the completed quantity; the order stays open for the next completion.

        Only the order's latest posted completion can be reversed (cancel later ones first): partial flushes are
        planned on what was completed before, so reversing one in the middle would make the rest drift."""
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "completion cancellation")

        def refuse(why: str) -> CompletionCancellationRefusedError:
            return CompletionCancellationRefusedError(order.order_id, event.completion_id, why)

        if order.flow not in REPORTED:
            raise refuse("a pre-product order is produced in full at release; cancel the order instead")
        if event.make_to_stock != (order.flow == STOCK):
            raise MakeToStockMismatchError(order.order_id, stock_order=order.flow == STOCK)
        if order.status.finished or order.status is S.DELIVERED:
            raise refuse(f"the production order is {order.status}")
        # a stock order's lots go to no one: its latest completion is reversible while its lot is all on hand
        if order.completed >= order.quantity and order.flow != STOCK:
            # a final order may exist and the goods may ship already: reversing now would race them
            raise refuse(f"the order is completed ({order.completed} of {order.quantity} produced)")
        lots = await repo.finished_lots_of(uow, order.order_id)
        ledger = await self.ledgers.load_of_order(uow, order.order_id)
        flushes = {m.into_lot: flush_id for flush_id in ledger.flush_ids_of_order(order.order_id)
                   for m in ledger.flush_movements(flush_id)
                   if m.into_lot is not None and m.reason is MovementReason.BACKFLUSH}
        by_flush = {flush_id: lot for lot, flush_id in flushes.items()}
        lot_name = event.completion_id if any(lot == event.completion_id for lot, _i, _q in lots) else \
            by_flush.get(event.completion_id)
        parked = [e for e in await repo.waiting_parked(uow, order.order_id) if e.step == "completion"]
        if lot_name is None or lot_name not in {lot for lot, _i, _q in lots}:
            if any(event.completion_id in (e.flush_id, e.parked.request.finished_lot) for e in parked):
                raise refuse("it is parked, not produced: nothing of it posted")
            raise refuse("no such posted completion of the order")
        if lot_name != lots[-1][0]:
            raise refuse(f"only the latest completion can be cancelled; cancel {lots[-1][0]} first")
        if parked:
            raise refuse("a later completion of the order is parked, planned after this one")
        if lot_name in await repo.shipped_lots(uow, order.order_id):
            raise refuse(f"lot {lot_name} was shipped")
        _lot, item, quantity = lots[-1]
        flush_id = flushes.get(lot_name)
        try:
            movements = reverse_completion(ledger, production_order=order.order_id, flush_id=flush_id, item=item,
                                           lot=lot_name, quantity=quantity,
                                           event_id=str(uow.consumed.envelope.event_id))
        except CompletionNotReversibleError as error:
            raise refuse(error.why) from None
        await self.ledgers.append(uow, movements)
        await self._report_returned(uow, order, movements)
        await repo.cancel_finished_lot(uow, lot_name)
        order.completed -= quantity
        _move(order, S.IN_PRODUCTION if order.completed > 0 else S.RELEASED,
              f"completion {lot_name} cancelled" + (f": {event.reason}" if event.reason else ""))
        await repo.save_order(uow, order)
        await uow.emit(c.CompletionCancelled(order_id=order.order_id, completion_id=flush_id or event.completion_id,
                                             item=item, lot=lot_name, quantity=quantity,
                                             cumulative_quantity=order.completed, order_quantity=order.quantity,
                                             reason=event.reason, make_to_stock=order.flow in OWN_STOCK))
        uow.log.info("completion cancelled; its flush and lot reversed", lot=lot_name, movements=len(movements))
        await self.reprocess_parked(uow)  # the components given back may let parked flushes post

    async def record_shipment(self, uow: UnitOfWork, event: c.GoodsShipped) -> None:
        """Shipped lots can no longer be taken back by cancelling their completion."""
        await repo.mark_lots_shipped(uow, event.order_id, event.lots)

    async def report_issue(self, uow: UnitOfWork, event: c.ComponentIssueReported) -> None:
        """A manual line issued, or extra scrap: consumed now, charged to the order (variance shows it)."""
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "component issue")
        if order.status.finished:
            raise ProductionOrderClosedError(order.order_id, order.status, "component issue")
        md = await self._md(uow)
        # the order's consumption (its movements and variance), not a finished lot's: which lot it went into is not
        # known, so genealogy lists only what each completion's own flush consumed
        request = ComponentIssue(str(uow.consumed.envelope.event_id), order.order_id, event.component,
                                 event.quantity, MovementReason.SCRAP if event.kind == "scrap" else
                                 MovementReason.MANUAL_ISSUE, **_whose_stock(order))
        requirements = plan(md.catalogue, request)
        ledger = await self.ledgers.load(uow, [event.component])
        outcome = post_or_park(ledger, request, requirements, md.policies(self.settings.negative_stock_policy),
                               reject_raises=False)
        if isinstance(outcome, ParkedFlush):
            # a hand issue records what already happened on the floor: it cannot wait for stock
            shortage = outcome.shortages[0]
            raise InsufficientComponentStockError(shortage.item, needed=shortage.needed,
                                                  available=shortage.available, location=shortage.location,
                                                  production_order=order.order_id)
        await self.ledgers.append(uow, outcome.movements)
        await self._report_consumed(uow, order, outcome.movements, "scrap" if event.kind == "scrap" else "manual")
        await uow.emit(c.ComponentsBackflushed(
            order_id=order.order_id, flush_point="manual", produced_quantity=order.completed or order.quantity,
            make_to_stock=order.flow in OWN_STOCK,
            components=[ConsumedComponent(item=r.item, quantity=r.quantity, unit=r.unit.code,
                                          lots=sorted({m.lot for m in outcome.movements})) for r in requirements],
        ))

    async def _flush(self, uow: UnitOfWork, md: MasterData, order: ProductionOrder, request: FlushRequest, *,
                     step: str, requirements: tuple[Requirement, ...] | None = None) -> PostedFlush | None:
        """Post a flush, or park it whole, or reject the order; returns the posted flush or None. `requirements`
        replace the request's own plan (a run flushes its pre and post lines in one flush)."""
        if requirements is None:
            requirements = plan(md.catalogue, request)
        policies = md.policies(self.settings.negative_stock_policy)
        ledger = await self.ledgers.load(uow, [r.item for r in requirements])
        try:
            # decided against stock like any flush: under `reject` a shortage refuses it even when it would queue
            outcome: PostedFlush | ParkedFlush = post_or_park(ledger, request, requirements, policies)
        except InsufficientComponentStockError as error:
            await self._refuse(uow, order, step, error, request.quantity)
            return None
        if await repo.waiting_parked(uow, order.order_id):
            # an earlier flush of this order waits: this one queues behind it, whole, and posts in the same
            # reprocessing that posts the earlier one if stock covers it then
            outcome = ParkedFlush(request, requirements, ())
            reason = WAITS_BEHIND_OWN_ORDER
        elif isinstance(outcome, PostedFlush) and await self._held_by_queue(uow, md, request, requirements):
            # strict arrival order: a waiting flush short of a component this one needs goes first
            outcome = ParkedFlush(request, requirements, ())
            reason = WAITS_BEHIND_COMPONENTS
        else:
            reason = _parked_reason(outcome, behind_own_order=False) if isinstance(outcome, ParkedFlush) else ""
        if isinstance(outcome, ParkedFlush):
            await repo.park(uow, outcome, order_id=order.order_id, step=step, reason=reason,
                            cause_event_id=str(uow.consumed.envelope.event_id))
            _move(order, S.PARKED, reason)
            await repo.save_order(uow, order)
            await uow.emit(c.BackflushParked(order_id=order.order_id, reason=reason,
                                             make_to_stock=order.flow in OWN_STOCK,
                                             missing=[
                ConsumedComponent(item=s.item, quantity=s.shortfall, unit=s.unit.code) for s in outcome.shortages
            ]))
            uow.log.info("backflush parked", step=step, reason=reason)
            return None
        await self._posted(uow, order, outcome)
        return outcome

    async def _held_by_queue(self, uow: UnitOfWork, md: MasterData, request: FlushRequest,
                             requirements: tuple[Requirement, ...]) -> bool:
        """Whether a waiting parked flush is still short of an (item, location) this flush needs."""
        entries = await repo.waiting_parked(uow)
        if not entries:
            return False
        items = {r.item for e in entries for r in e.parked.requirements}
        ledger = await self.ledgers.load(uow, items)
        held = reprocess_parked(ledger, [e.parked for e in entries],
                                md.policies(self.settings.negative_stock_policy)).held
        return holds(held, request, requirements)

    async def _refuse(self, uow: UnitOfWork, order: ProductionOrder, step: str,
                      error: InsufficientComponentStockError, quantity: Decimal | None = None, *,
                      reprocess: bool = True) -> bool:
        """A flush the `reject` policy refuses: nothing posted. A refused release rejects the order (nothing has
        happened yet); a refused completion is refused alone and the order stays open for the next one, since
        rejecting the order would throw away what was already produced. Returns whether the rejected order gave
        components back (then the queue is reprocessed, unless `reprocess` is False)."""
        if order.flow == RUN:
            from backflush_manufacturer import runs  # runs.py builds on this module

            await runs.refuse_run(self, uow, order, error)
            return False
        if step == "completion" and order.flow in REPORTED:
            waiting = await repo.waiting_parked(uow, order.order_id)
            if not waiting:
                _move(order, S.IN_PRODUCTION if order.completed > 0 else S.RELEASED, order.reason)
            order.reason = f"completion of {quantity} refused: {error}"
            await repo.save_order(uow, order)
            await uow.emit(c.CompletionRefused(order_id=order.order_id, quantity=quantity or Decimal(0),
                                               code=_code(error), reason=str(error),
                                               waits_for_components=bool(waiting),
                                               make_to_stock=order.flow in OWN_STOCK))
            uow.log.info("completion refused under the reject policy; the order stays open", reason=str(error))
            return False
        _move(order, S.REJECTED, str(error))
        await repo.save_order(uow, order)
        # a rejected order consumed nothing: a pre-product order refused at its completion flush gives back what
        # its release flush took
        ledger = await self.ledgers.load_of_order(uow, order.order_id)
        reversal = reverse_order(ledger, order.order_id, str(uow.consumed.envelope.event_id))
        if reversal:
            await self.ledgers.append(uow, reversal)
            await self._report_returned(uow, order, reversal)
        for entry in await repo.waiting_parked(uow, order.order_id):
            await repo.resolve_parked(uow, entry.flush_id, "cancelled")
        if order.flow == STOCK:
            # a planner's order: `backflush production-orders` shows the reason; the distributor knows customer
            # orders only and would dead-letter it as unknown (or file it under a customer order of that id)
            uow.log.warning("make-to-stock order rejected", reason=str(error))
        else:
            await uow.emit(c.ProductionOrderRejected(order_id=order.order_id, code=_code(error), reason=str(error)))
        if reversal and reprocess:
            # the components given back may let parked flushes of other orders post, as a receipt would
            await self.reprocess_parked(uow)
        return bool(reversal)

    async def _report_consumed(self, uow: UnitOfWork, order: ProductionOrder,
                               movements: Sequence[LedgerMovement], flush_point: str) -> None:
        """Tell a brand owner what one posted flush of its order took: its lots, and our own units it used."""
        if order.components_owner is None:
            return
        for report in flush_reports(movements, order.components_owner):
            await uow.emit(c.ConsignedComponentsConsumed(
                order_id=order.order_id, owner=order.components_owner, flush_id=report.flush_id,
                flush_point=flush_point, consigned=_lots(report.consigned), own=_lots(report.own)))

    async def _report_returned(self, uow: UnitOfWork, order: ProductionOrder,
                               movements: Sequence[LedgerMovement]) -> None:
        """Tell a brand owner what a reversal gave back, per flush (the owner's units to the owner's lots)."""
        if order.components_owner is None:
            return
        for report in flush_reports(movements, order.components_owner, sign=1):
            await uow.emit(c.ConsignedComponentsReturned(
                order_id=order.order_id, owner=order.components_owner, flush_id=report.flush_id,
                consigned=_lots(report.consigned), own=_lots(report.own)))

    async def _posted(self, uow: UnitOfWork, order: ProductionOrder, posted: PostedFlush) -> None:
        await self.ledgers.append(uow, posted.movements)
        request = posted.request
        assert isinstance(request, FlushRequest)
        await self._report_consumed(uow, order, posted.movements, request.flush.value)
        if posted.requirements:
            lots: dict[str, list[str]] = {}
            for m in posted.movements:
                lots.setdefault(m.item, [])
                if m.lot not in lots[m.item]:
                    lots[m.item].append(m.lot)
            await uow.emit(c.ComponentsBackflushed(
                order_id=order.order_id, flush_point=request.flush.value, produced_quantity=request.quantity,
                make_to_stock=order.flow in OWN_STOCK,
                components=[ConsumedComponent(item=r.item, quantity=r.quantity, unit=r.unit.code,
                                              lots=lots.get(r.item, [])) for r in posted.requirements],
            ))
        for alert in posted.alerts:
            ledger = await self.ledgers.load(uow, [alert.item])
            await uow.emit(c.NegativeStockPosted(order_id=order.order_id, item=alert.item, lot=alert.lot,
                                                 balance=format(ledger.on_hand(alert.item, alert.location, alert.lot), "f"),
                                                 make_to_stock=order.flow in OWN_STOCK))

    async def _produce(self, uow: UnitOfWork, md: MasterData, order: ProductionOrder, quantity: Decimal,
                       lot: str) -> None:
        if order.flow == RUN:
            from backflush_manufacturer import runs  # runs.py builds on this module

            await runs.produce_run(self, uow, md, order, quantity, lot)
            return
        # a customer's order: its output is its finished goods, turned over or racked and shipped to its holder, so
        # it is never where another order's flush takes stock (even a subassembly); a make-to-stock order's output
        # is component stock, received where the item's flushes take it from
        stock = order.flow == STOCK
        location = (md.catalogue.item(order.item).supply_location or DEFAULT_LOCATION) if stock \
            else self.settings.finished_goods_location
        ledger = await self.ledgers.load(uow, [order.item])
        receipt = Receipt(str(uow.consumed.envelope.event_id), order.item, lot, quantity, location,
                          MovementReason.PRODUCTION_RECEIPT, order.order_id)
        await self.ledgers.append(uow, receive(md.catalogue, ledger, receipt))
        await repo.add_finished_lot(uow, lot, order.order_id, order.item, quantity)
        order.completed += quantity  # produced now: only what was produced counts
        if order.flow == "pre":
            processing = OrderProcessingInfo.model_validate(order.processing)
            _move(order, S.PRODUCED, None)
            await repo.save_order(uow, order)
            assert order.certificate is not None
            await uow.emit(inv.PreSaleInventoryDetailsForwarded(
                order_id=order.order_id, item=order.item, lot=lot, quantity=quantity,
                certificate=QualityCertificate.model_validate(order.certificate), processing=processing,
            ))
            return
        produced = sum((q for _lot, _item, q in await repo.finished_lots_of(uow, order.order_id)), Decimal(0))
        if stock:
            # nothing to turn over: the order is done once its quantity is in stock
            await uow.emit(c.ProductionCompleted(order_id=order.order_id, item=order.item, lot=lot, quantity=quantity,
                                                 cumulative_quantity=produced, order_quantity=order.quantity,
                                                 make_to_stock=True))
            await self._settle(uow, order, S.CLOSED if produced >= order.quantity else S.IN_PRODUCTION)
            uow.log.info("made to stock: lot received into component stock", lot=lot, location=location)
            await self.reprocess_parked(uow)  # like a receipt: parked flushes waiting for the item may post now
            return
        await uow.emit(c.ProductionCompleted(order_id=order.order_id, item=order.item, lot=lot, quantity=quantity,
                                             cumulative_quantity=produced, order_quantity=order.quantity))
        await uow.emit(inv.GoodsTurnedOver(order_id=order.order_id, item=order.item, lot=lot, quantity=quantity,
                                           owner="manufacturer"))
        await self._settle(uow, order, S.COMPLETED if produced >= order.quantity else S.IN_PRODUCTION)

    async def _settle(self, uow: UnitOfWork, order: ProductionOrder, status: S) -> None:
        """Save the order as `status`, unless a flush of it still waits: then it shows that wait (a completion
        reported but parked is not produced, and the order says what it waits for)."""
        waiting = await repo.waiting_parked(uow, order.order_id)
        if waiting:
            _move(order, S.PARKED, waiting[0].reason)
        else:
            _move(order, status, None)
        await repo.save_order(uow, order)
        if waiting:
            # the posting just told the distributor the order's wait is over (ComponentsBackflushed,
            # ProductionCompleted); it is not, so say again what it waits for
            await uow.emit(c.BackflushParked(order_id=order.order_id, reason=waiting[0].reason,
                                             make_to_stock=order.flow == STOCK, missing=[
                ConsumedComponent(item=s.item, quantity=s.shortfall, unit=s.unit.code)
                for s in waiting[0].parked.shortages]))

    # -- the exception queue ---------------------------------------------------------------------------------------

    async def reprocess_parked(self, uow: UnitOfWork, only: str | None = None) -> int:
        """Post the parked flushes that stock now covers, in arrival order, and carry on their orders."""
        entries = await repo.waiting_parked(uow)
        if only is not None:
            target = next((e for e in entries if e.flush_id == only), None)
            # the whole order comes along: its earlier flushes post first (a completion never posts before its
            # order's release), and the later ones queued behind it must not stay waiting once it posts
            entries = [e for e in entries if target is not None and e.order_id == target.order_id]
        if not entries:
            return 0
        md = await self._md(uow)
        items = {r.item for e in entries for r in e.parked.requirements}
        ledger = await self.ledgers.load(uow, items)
        result = reprocess_parked(ledger, [e.parked for e in entries], md.policies(self.settings.negative_stock_policy))
        by_flush = {e.flush_id: e for e in entries}
        await self._update_wait_reasons(uow, entries, result.still_parked)
        gave_back = False
        for parked, error in result.refused:
            entry = by_flush[parked.flush_id]
            await repo.resolve_parked(uow, entry.flush_id, "refused")
            refused_order = await repo.order_for_update(uow, entry.order_id)
            assert refused_order is not None
            uow.log.info("parked backflush refused under the reject policy", parked_order=entry.order_id,
                         step=entry.step, reason=str(error))
            # what a rejected order gives back is reprocessed after this pass, not inside it: this pass has decided
            # its flushes already, and one posted by a nested pass too would be posted twice
            gave_back |= await self._refuse(uow, refused_order, entry.step, error, parked.request.quantity,
                                            reprocess=False)
        # append every posting first: continuations flush again and must see the stock these took
        continuations: list[tuple[ParkedEntry, ProductionOrder]] = []
        for posted in result.posted:
            entry = by_flush[posted.flush_id]
            order = await repo.order_for_update(uow, entry.order_id)
            assert order is not None
            await self._posted(uow, order, posted)
            await repo.resolve_parked(uow, entry.flush_id, "posted")
            continuations.append((entry, order))
        for entry, posted_order in continuations:
            # fresh: an earlier continuation of the same order may have produced (and counted) already
            order = await repo.order_for_update(uow, posted_order.order_id) or posted_order
            uow.log.info("parked backflush posted", parked_order=order.order_id, step=entry.step)
            request = entry.parked.request
            assert isinstance(request, FlushRequest)
            if entry.step == "release":
                await self._after_release(uow, md, order)
            else:
                await self._produce(uow, md, order, request.quantity, request.finished_lot or _lot(order, 1))
        if gave_back:
            return len(result.posted) + await self.reprocess_parked(uow)
        return len(result.posted)

    async def _update_wait_reasons(self, uow: UnitOfWork, entries: list[ParkedEntry],
                                   still: tuple[ParkedFlush, ...]) -> None:
        """A flush still waiting says what it waits for now: a flush parked behind an earlier one of its order may
        now wait for stock of its own, and the exception queue must not name a wait that is over."""
        waiting = {p.flush_id: p for p in still}
        seen_orders: set[str] = set()
        for entry in entries:
            parked = waiting.get(entry.flush_id)
            if parked is None:
                continue
            first_of_order = entry.order_id not in seen_orders
            reason = _parked_reason(parked, behind_own_order=not first_of_order)
            seen_orders.add(entry.order_id)
            if reason == entry.reason:
                continue
            # what it waited for at first may be over (the earlier flush posted, part of the stock came): the queue
            # and the order name what it waits for now
            await repo.update_parked_reason(uow, entry.flush_id, reason)
            order = await repo.order_for_update(uow, entry.order_id) if first_of_order else None
            if order is not None and order.status is S.PARKED:
                order.reason = reason
                await repo.save_order(uow, order)

    async def retry_parked(self, uow: UnitOfWork, event: md_events.ParkedBackflushRetryRequested) -> None:
        entries = [e for e in await repo.waiting_parked(uow) if e.id == event.entry_id]
        if not entries:
            raise UnknownParkedEntryError(event.entry_id)
        posted = await self.reprocess_parked(uow, only=entries[0].flush_id)
        uow.log.info("retry of a parked backflush", entry_id=event.entry_id, posted=bool(posted))

    # -- after production ------------------------------------------------------------------------------------------

    async def allocate_on_inventory_check(self, uow: UnitOfWork, event: c.InventoryCheckReturned) -> None:
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "inventory check")
        if order.status.finished:
            uow.log.info("inventory check for a closed production order: recorded only", status=order.status.value)
            return
        produced = {lot: quantity for lot, _item, quantity in await repo.finished_lots_of(uow, order.order_id)}
        if produced.get(event.lot) != event.quantity:
            raise InventoryCheckMismatchError(order.order_id, event.lot, event.quantity, produced.get(event.lot))
        md = await self._md(uow)
        ledger = await self.ledgers.load(uow, [order.item])
        location = next(iter(ledger.lot_locations(order.item, event.lot)), self.settings.finished_goods_location)
        if ledger.allocated(order.item, location, event.lot):
            return
        movement = allocate(md.catalogue, ledger, item=order.item, lot=event.lot, quantity=event.quantity,
                            production_order=order.order_id, event_id=str(uow.consumed.envelope.event_id),
                            location=location)
        await self.ledgers.append(uow, [movement])
        _move(order, S.ALLOCATED, order.reason)
        await repo.save_order(uow, order)
        await uow.emit(c.GoodsAllocated(order_id=order.order_id, item=order.item, lot=event.lot,
                                        quantity=event.quantity))

    async def cancel(self, uow: UnitOfWork, event: o.OrderCancelled) -> None:
        order = await repo.order_for_update(uow, event.order_id)
        if order is None or order.status.finished:
            return  # never reached production, or already finished here: nothing to undo
        if order.flow in OWN_STOCK:
            # the distributor knows customer orders only: a cancellation under a stock order's id is not for it
            uow.log.warning("customer order cancellation for the id of a make-to-stock order: ignored")
            return
        if order.status is S.DELIVERED:
            # the goods left with their holder: reversing would count consumed components back into stock
            raise ProductionOrderClosedError(order.order_id, order.status,
                                             "cancellation (a return is another flow)")
        event_id = str(uow.consumed.envelope.event_id)
        ledger = await self.ledgers.load_of_order(uow, order.order_id)
        movements: list[LedgerMovement] = list(reverse_order(ledger, order.order_id, event_id))
        movements += release_allocations(ledger, production_order=order.order_id, event_id=event_id)
        for lot, item, _quantity in await repo.finished_lots_of(uow, order.order_id):
            for location, on_hand in ledger.lot_locations(item, lot).items():  # wherever the lot was received
                movements.append(LedgerMovement(item, location, lot, -on_hand, MovementReason.REVERSAL, event_id,
                                                production_order=order.order_id))
        await self.ledgers.append(uow, movements)
        await self._report_returned(uow, order, movements)
        for entry in await repo.waiting_parked(uow, order.order_id):
            await repo.resolve_parked(uow, entry.flush_id, "cancelled")
        _move(order, S.CANCELLED, event.reason)
        await repo.save_order(uow, order)
        uow.log.info("production order cancelled; flushes reversed", movements=len(movements))
        # what this order no longer takes may let parked flushes of other orders post
        await self.reprocess_parked(uow)

    async def record_delivery(self, uow: UnitOfWork, event: c.GoodsSignedFor) -> None:
        if event.from_stock:
            # a stock order, served by the warehouse from finished-goods stock: no production order, but the lots
            # signed for were the manufacturer's until now
            from backflush_manufacturer.runs import deliver_stock_lots

            await deliver_stock_lots(self, uow, event)
            return
        order = await repo.order_for_update(uow, event.order_id)
        if order is None:
            raise UnknownProductionOrderError(event.order_id, "signature")
        if order.status.finished:
            uow.log.warning("signature for a production order that is not open: recorded only",
                            status=order.status.value)
            return
        ledger = await self.ledgers.load(uow, [order.item])
        # goods promised to the order (pre-product: allocated at the inventory check) are no longer promised once
        # they left: without the release the lot would show -N available after the goods went out
        event_id = str(uow.consumed.envelope.event_id)
        movements = list(release_allocations(ledger, production_order=order.order_id, event_id=event_id))
        for lot, item, _quantity in await repo.finished_lots_of(uow, order.order_id):
            for location, on_hand in ledger.lot_locations(item, lot).items():
                if on_hand <= 0:
                    continue
                movements.append(LedgerMovement(item, location, lot, -on_hand, MovementReason.DELIVERY,
                                                str(uow.consumed.envelope.event_id), production_order=order.order_id))
        await self.ledgers.append(uow, movements)
        _move(order, S.DELIVERED, order.reason)
        await repo.save_order(uow, order)


#: The exception queue's reason for a flush queued behind an earlier parked flush of its own order (the audit
#: checks that such an earlier flush still waits).
WAITS_BEHIND_OWN_ORDER = "waits behind an earlier parked flush of the same order"
WAITS_BEHIND_COMPONENTS = "waits behind an earlier parked flush that needs the same components"


def _parked_reason(parked: ParkedFlush, *, behind_own_order: bool) -> str:
    if behind_own_order:
        return WAITS_BEHIND_OWN_ORDER
    if not parked.shortages:
        return WAITS_BEHIND_COMPONENTS
    return "; ".join(
        f"{s.item}: needs {s.unit.format(s.needed)} {s.unit.code}, {s.unit.format(s.available)} available"
        + (f" of {s.owner}'s consigned stock" if s.owner else "")
        for s in parked.shortages
    )


def _lot(order: ProductionOrder, number: int) -> str:
    return finished_lot(order.order_id, number)


def _whose_stock(order: ProductionOrder) -> dict[str, Any]:
    """The stock an order's flushes may take: a brand owner's lots (contract manufacturing), or our own."""
    return {"components_owner": order.components_owner, "own_components_allowed": order.own_components_allowed}


def _lots(lines: Sequence[LotQuantity]) -> list[c.ConsignedLot]:
    return [c.ConsignedLot(item=line.item, lot=line.lot, quantity=line.quantity) for line in lines]


def run_handlers(production: Production) -> dict[type[Event], Handler]:
    from backflush_manufacturer import runs  # runs.py builds on this module

    return runs.handler_table(runs.Runs(production))


def handler_table(production: Production) -> dict[type[Event], Handler]:
    return {
        md_events.ItemDefined: production.define_item,
        md_events.BomDefined: production.define_bom,
        md_events.InspectionPlanDefined: production.define_inspection_plan,
        md_events.ComponentsReceived: production.receive_components,
        md_events.ComponentsConsigned: production.receive_components,
        md_events.ParkedBackflushRetryRequested: production.retry_parked,
        o.OrderForwarded: production.start_production_order,
        md_events.StockProductionOrderPlaced: production.start_stock_production_order,
        o.OrderCancelled: production.cancel,
        c.QualityInspectionReported: production.record_outside_inspection,
        c.CompletionReported: production.report_completion,
        c.CompletionCancellationRequested: production.cancel_completion,
        c.GoodsShipped: production.record_shipment,
        c.ComponentIssueReported: production.report_issue,
        c.InventoryCheckReturned: production.allocate_on_inventory_check,
        c.GoodsSignedFor: production.record_delivery,
        **run_handlers(production),
    }
