"""Driving orders through the running services and reading back what each service recorded."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Writer
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.publish import publish
from backflush_shared.messaging.security import KafkaSecurity
from support.stack import eventually, read_db

from backflush_distributor.adapters.tables import order_events, order_transitions, orders
from backflush_manufacturer.adapters import repository as manufacturer_repo
from backflush_manufacturer.adapters.tables import parked_flushes, production_orders
from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_warehouse.adapters.tables import finished_stock, stock_units, waiting_put_aways


class Flows:
    def __init__(self, stack: LocalStack, *, security: KafkaSecurity | None = None,
                 speakers: Mapping[Writer, KafkaSecurity] | None = None) -> None:
        self.stack = stack
        self.security = security  # None: the environment's settings (plaintext in tests)
        self.speakers = dict(speakers or {})  # on a broker with ACLs: who may write each writer's topics

    async def publish(self, *events: Event) -> None:
        """Publish `events`, each as the writer of its topic when `speakers` names one (in order per writer)."""
        by_writer: dict[Writer, list[Event]] = defaultdict(list)
        for event in events:
            by_writer[event.topic.writer].append(event)
        for writer, written in by_writer.items():
            await publish(self.stack.bootstrap_servers, written, topic_prefix=self.stack.topic_prefix,
                          source=writer.source or "/backflush/tests",  # a service's topic: as that service
                          security=self.speakers.get(writer, self.security))

    async def load_master_data(self, directory: Path) -> None:
        events = events_from(load_master_data(directory))
        await self.publish(*events)
        receipts = [e for e in events if isinstance(e, md.ComponentsReceived)]
        expected = len(receipts)

        async def stocked() -> bool:
            async def count(session: Any) -> int:
                ledger = await manufacturer_repo.load_ledger(session)
                return len({(m.item, m.lot) for m in ledger.movements})
            return await read_db(self.stack.database_url("manufacturer"), count) >= expected

        await eventually(stocked, what="the sample master data in the manufacturer", stack=self.stack)

    async def place(self, order_id: str, *, flow: str, item: str = "CHAIR-ERGO", quantity: str = "10",
                    holder: str = "Acme Offices") -> o.OrderPlaced:
        event = o.OrderPlaced(order_id=order_id, order_holder=holder, flow=flow, item=item,
                              quantity=Decimal(quantity), ship_to="1 Depot Road, Springfield",
                              due_date=dt.date.today() + dt.timedelta(days=14))
        await self.publish(event)
        return event

    async def complete(self, order_id: str, quantity: str) -> None:
        await self.publish(c.CompletionReported(order_id=order_id, quantity=Decimal(quantity)))

    async def sign(self, order_id: str, by: str) -> None:
        await self.publish(c.DeliverySigned(order_id=order_id, signed_by=by, signed_at=dt.datetime.now(dt.UTC)))

    async def cancel(self, order_id: str, reason: str = "changed my mind") -> None:
        await self.publish(o.OrderCancellationRequested(order_id=order_id, reason=reason, requested_by="tests"))

    async def receive(self, item: str, lot: str, quantity: str) -> None:
        await self.publish(md.ComponentsReceived(receipt_id=f"R-{lot}", item=item, lot=lot,
                                                 quantity=Decimal(quantity)))

    async def place_from_stock(self, order_id: str, *, item: str = "SEAT-ASSY", quantity: str = "5",
                               partial: bool = False, holder: str = "Acme Offices") -> o.OrderPlaced:
        """An order served from finished-goods stock at the warehouse (issue 17)."""
        event = o.OrderPlaced(order_id=order_id, order_holder=holder, flow="stock", item=item,
                              quantity=Decimal(quantity), ship_to="1 Depot Road, Springfield",
                              due_date=dt.date.today() + dt.timedelta(days=14), partial_deliveries=partial)
        await self.publish(event)
        return event

    async def report_run(self, run_id: str, *, item: str = "SEAT-ASSY", quantity: str = "10", line: str = "L1",
                         period: str = "2026-W49", lot: str | None = None) -> c.RunQuantityReported:
        """A production line reports a run (repetitive production, issue 17)."""
        event = c.RunQuantityReported(run_id=run_id, line=line, item=item, quantity=Decimal(quantity),
                                      period=period, lot=lot or f"LOT-{run_id}")
        await self.publish(event)
        return event

    async def cancel_run(self, run_id: str, reason: str = "reported by mistake") -> None:
        await self.publish(c.RunCancellationRequested(run_id=run_id, reason=reason, requested_by="tests"))

    async def finished_stock(self) -> list[dict[str, Any]]:
        """The warehouse's lots stocked for sale, with the units of each still free (racked, unallocated)."""
        async def load(session: Any) -> list[dict[str, Any]]:
            lots = [dict(r) for r in (await session.execute(select(finished_stock).order_by(
                finished_stock.c.stocked_at))).mappings()]
            for lot in lots:
                free = (await session.execute(select(stock_units.c.quantity).where(
                    stock_units.c.order_id == lot["run_id"], stock_units.c.status == "stored"))).scalars().all()
                lot["free"] = sum(free, Decimal(0))
            return lots
        return await read_db(self.stack.database_url("warehouse"), load)

    # -- reading back --------------------------------------------------------------------------------------------

    async def order(self, order_id: str) -> dict[str, Any] | None:
        async def load(session: Any) -> dict[str, Any] | None:
            row = (await session.execute(select(orders).where(orders.c.order_id == order_id))).mappings().one_or_none()
            return dict(row) if row else None
        return await read_db(self.stack.database_url("distributor"), load)

    async def wait_state(self, order_id: str, state: str, *, waiting_for: str | None = None,
                         timeout: float = 45.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            row = await self.order(order_id)
            if row and row["state"] == state and (waiting_for is None or row["waiting_for"] == waiting_for):
                return row
            return None
        return await eventually(check, timeout=timeout, what=f"{order_id} {state} {waiting_for or ''}",
                                stack=self.stack)

    async def history(self, order_id: str) -> list[str]:
        async def load(session: Any) -> list[str]:
            rows = await session.execute(select(order_events.c.event_type).where(order_events.c.order_id == order_id)
                                         .order_by(order_events.c.id))
            return [r[0] for r in rows]
        return await read_db(self.stack.database_url("distributor"), load)

    async def wait_history(self, order_id: str, event_type: str, *, timeout: float = 45.0) -> list[str]:
        """The order's history once it holds `event_type`: an event the distributor emits itself (OrderClosed)
        enters its history when it comes back from the broker, a moment after the order's state changed."""
        async def check() -> list[str] | None:
            found = await self.history(order_id)
            return found if event_type in found else None
        return await eventually(check, timeout=timeout, what=f"{order_id} history with {event_type}",
                                stack=self.stack)

    async def transitions(self, order_id: str) -> list[tuple[str, str | None]]:
        async def load(session: Any) -> list[tuple[str, str | None]]:
            rows = await session.execute(
                select(order_transitions.c.state, order_transitions.c.waiting_for)
                .where(order_transitions.c.order_id == order_id).order_by(order_transitions.c.id))
            return [(r[0], r[1]) for r in rows]
        return await read_db(self.stack.database_url("distributor"), load)

    async def consumed_by(self, order_id: str) -> dict[str, Decimal]:
        """Net components the ledger charged to a production order (consumption positive)."""
        async def load(session: Any) -> dict[str, Decimal]:
            ledger = await manufacturer_repo.load_ledger(session)
            return {item: quantity for item, quantity in ledger.consumed_by_order(order_id).items() if quantity}
        return await read_db(self.stack.database_url("manufacturer"), load)

    async def on_hand(self, item: str) -> Decimal:
        async def load(session: Any) -> Decimal:
            return (await manufacturer_repo.load_ledger(session, [item])).on_hand(item)
        return await read_db(self.stack.database_url("manufacturer"), load)

    async def production_order(self, order_id: str) -> dict[str, Any] | None:
        async def load(session: Any) -> dict[str, Any] | None:
            row = (await session.execute(select(production_orders).where(production_orders.c.order_id == order_id))
                   ).mappings().one_or_none()
            return dict(row) if row else None
        return await read_db(self.stack.database_url("manufacturer"), load)

    async def wait_production(self, order_id: str, status: str, timeout: float = 45.0) -> dict[str, Any]:
        """The manufacturer's own view: a completion may only be reported once the order is released there."""
        async def check() -> dict[str, Any] | None:
            row = await self.production_order(order_id)
            return row if row and row["status"] == status else None
        return await eventually(check, timeout=timeout, what=f"production order {order_id} {status}",
                                stack=self.stack)

    async def parked(self) -> list[dict[str, Any]]:
        async def load(session: Any) -> list[dict[str, Any]]:
            rows = (await session.execute(select(parked_flushes).order_by(parked_flushes.c.id))).mappings().all()
            return [dict(r) for r in rows]
        return await read_db(self.stack.database_url("manufacturer"), load)

    async def warehouse_units(self, order_id: str | None = None) -> list[dict[str, Any]]:
        async def load(session: Any) -> list[dict[str, Any]]:
            query = select(stock_units).order_by(stock_units.c.id)
            if order_id:
                query = query.where(stock_units.c.order_id == order_id)
            return [dict(r) for r in (await session.execute(query)).mappings().all()]
        return await read_db(self.stack.database_url("warehouse"), load)

    async def units_by_owner(self) -> dict[tuple[str, str], Decimal]:
        totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for unit in await self.warehouse_units():
            totals[(unit["owner"], unit["status"])] += unit["quantity"]
        return dict(totals)

    async def waiting_put_aways(self) -> list[dict[str, Any]]:
        async def load(session: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in (await session.execute(select(waiting_put_aways))).mappings().all()]
        return await read_db(self.stack.database_url("warehouse"), load)
