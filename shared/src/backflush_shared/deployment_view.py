"""What an observer reads of a running deployment: one snapshot per service, from that service's own database.

The demo (and the compose test through it) reads the services' state through a `DeploymentView`:
- `DatabaseView` opens the databases directly (the services run as processes on this machine);
- `ComposeView` runs `backflush snapshot SERVICE` inside each service's container with `docker compose exec`,
  since a compose deployment keeps its databases in volumes that only its containers see.
Both go through the same snapshot functions below, so the demo checks the same figures either way.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from backflush_shared.errors import BackflushError
from backflush_shared.persistence.database import missing_sqlite_file, read_once

class DeploymentViewError(BackflushError):
    """The state of a service could not be read (a container not running, a database not there yet)."""


# ------------------------------------------------------------------------------------------------- snapshots


class OrderRow(BaseModel):
    order_id: str
    flow: str
    item: str
    quantity: Decimal
    order_holder: str
    state: str
    waiting_for: str | None


class DistributorSnapshot(BaseModel):
    orders: list[OrderRow]


class ComponentStock(BaseModel):
    """One component at MAIN: on hand, and what was received and consumed (net of reversals)."""

    unit: str
    on_hand: Decimal = Decimal(0)
    received: Decimal = Decimal(0)
    consumed: Decimal = Decimal(0)


class ParkedRow(BaseModel):
    id: int
    order_id: str
    step: str
    status: str
    reason: str


class ConsignedLot(BaseModel):
    """One lot a brand owner consigned: received, consumed (net of reversals) and on hand, at every location."""

    owner: str
    item: str
    lot: str
    received: Decimal = Decimal(0)
    consumed: Decimal = Decimal(0)
    on_hand: Decimal = Decimal(0)


class ManufacturerSnapshot(BaseModel):
    #: order id -> production order status
    production_orders: dict[str, str]
    component_stock: dict[str, ComponentStock]
    parked: list[ParkedRow]
    consigned: list[ConsignedLot] = []


class OwnerStock(BaseModel):
    owner: str
    kind: str
    item: str
    status: str
    quantity: Decimal


class LocationRow(BaseModel):
    code: str
    kind: str
    capacity: Decimal
    used: Decimal


class WarehouseSnapshot(BaseModel):
    stock_by_owner: list[OwnerStock]
    locations: list[LocationRow]


S = TypeVar("S", bound=BaseModel)


async def distributor_snapshot(session: Any) -> DistributorSnapshot:
    from backflush_distributor import queries

    return DistributorSnapshot(orders=[OrderRow.model_validate(r, from_attributes=True)
                                       for r in await queries.list_orders(session)])


async def manufacturer_snapshot(session: Any) -> ManufacturerSnapshot:
    from backflush_manufacturer.adapters import repository
    from backflush_manufacturer.domain.ledger import MovementReason

    master = await repository.read_master_data(session)
    stock: dict[str, ComponentStock] = {}
    for code, item in sorted(master.catalogue.items.items()):
        # Purchased components, and the seat assembly (a subassembly bought in, whose shortage the demo shows).
        if not item.phantom and not master.catalogue.bom(code) or code == "SEAT-ASSY":
            stock[code] = ComponentStock(unit=item.unit.code)
    consigned: dict[tuple[str, str, str], ConsignedLot] = {}
    for _id, movement, _at in await repository.all_movements(session):
        if movement.owner is not None and not movement.is_allocation:
            lot = consigned.setdefault((movement.owner, movement.item, movement.lot),
                                       ConsignedLot(owner=movement.owner, item=movement.item, lot=movement.lot))
            lot.on_hand += movement.quantity
            if movement.quantity > 0 and movement.reason is MovementReason.RECEIPT:
                lot.received += movement.quantity
            else:
                lot.consumed -= movement.quantity
        entry = stock.get(movement.item)
        if entry is None or movement.location != "MAIN" or movement.is_allocation:
            continue
        entry.on_hand += movement.quantity
        if movement.reason is MovementReason.RECEIPT:
            entry.received += movement.quantity
        elif movement.reason is not MovementReason.SETTLEMENT:
            entry.consumed -= movement.quantity
    return ManufacturerSnapshot(
        production_orders={order.order_id: order.status for order in await repository.list_orders(session)},
        component_stock=stock,
        parked=[ParkedRow(id=e.id, order_id=e.order_id, step=e.step, status=e.status, reason=e.reason)
                for e in await repository.all_parked(session)],
        consigned=[consigned[key] for key in sorted(consigned)],
    )


async def warehouse_snapshot(session: Any) -> WarehouseSnapshot:
    from backflush_warehouse import queries

    return WarehouseSnapshot(
        stock_by_owner=[OwnerStock(owner=owner, kind=kind, item=item, status=status, quantity=quantity)
                        for owner, kind, item, status, quantity in await queries.stock_by_owner(session)],
        locations=[LocationRow(code=u.code, kind=u.kind, capacity=u.capacity, used=u.used)
                   for u in await queries.location_use(session)],
    )


SNAPSHOTS = {
    "manufacturer": manufacturer_snapshot,
    "distributor": distributor_snapshot,
    "warehouse": warehouse_snapshot,
}


async def read_snapshot(service: str, database_url: str) -> BaseModel:
    """The snapshot of `service` read from its database."""
    if service not in SNAPSHOTS:
        raise DeploymentViewError(f"unknown service {service!r}: one of {', '.join(SNAPSHOTS)}")
    missing = missing_sqlite_file(database_url)
    if missing:
        raise DeploymentViewError(f"the {service} has no database yet: no file {missing}")
    return await read_once(database_url, SNAPSHOTS[service])


# ----------------------------------------------------------------------------------------------------- views


class DeploymentView(Protocol):
    """Where the demo reads the services' state."""

    #: Said in messages: where the services' logs are.
    logs_hint: str

    async def snapshot(self, service: str, model: type[S]) -> S: ...


class DatabaseView:
    """The services' databases opened directly (services run as processes here)."""

    def __init__(self, database_urls: Mapping[str, str], logs_hint: str) -> None:
        self.database_urls = dict(database_urls)
        self.logs_hint = logs_hint

    async def snapshot(self, service: str, model: type[S]) -> S:
        snapshot = await read_snapshot(service, self.database_urls[service])
        assert isinstance(snapshot, model)
        return snapshot


class ComposeView:
    """`docker compose exec -T SERVICE backflush snapshot SERVICE` for each read (one process in the container)."""

    def __init__(self, compose: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60) -> None:
        #: The compose command with its project options, e.g. ["docker", "compose", "--project-name", "backflush"].
        self.compose = list(compose)
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.logs_hint = f"`{' '.join(self.compose)} logs`"

    async def snapshot(self, service: str, model: type[S]) -> S:
        command = [*self.compose, "exec", "-T", service, "backflush", "snapshot", service]
        try:
            done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                           timeout=self.timeout, check=False, env=self.env)
        except FileNotFoundError as error:
            raise DeploymentViewError(f"cannot run {command[0]!r}: {error}") from None
        except subprocess.TimeoutExpired:
            raise DeploymentViewError(f"`{' '.join(command)}` did not answer within {self.timeout:.0f} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise DeploymentViewError(f"cannot read the {service}'s state (`{' '.join(command)}` exited "
                                      f"{done.returncode}): {last}")
        return model.model_validate_json(done.stdout)
