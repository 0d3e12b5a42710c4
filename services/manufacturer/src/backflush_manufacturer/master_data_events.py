"""Master data from files, as the events that carry it to the running manufacturer (topic `master-data`)."""

from __future__ import annotations

from backflush_shared.contracts import master_data as md
from backflush_shared.contracts.base import Event

from backflush_manufacturer.master_data_files import MasterData


def events_from(master: MasterData) -> list[Event]:
    """Items, then BOMs (parents after their components), then inspection plans, then the initial stock."""
    catalogue = master.catalogue
    events: list[Event] = []
    for item in catalogue.items.values():
        policy = master.policies.overrides.get(item.code)
        events.append(md.ItemDefined(item=item.code, description=item.description, unit=item.unit.code,
                                     decimals=item.unit.decimals, phantom=item.phantom,
                                     negative_stock_policy=policy.value if policy else None,
                                     supply_location=item.supply_location))
    for bom in catalogue.boms.values():
        events.append(md.BomDefined(parent=bom.parent, lines=[
            md.BomLineDefinition(component=line.component, quantity_per=line.quantity_per,
                                 scrap_factor=line.scrap_factor, flush=line.flush.value)
            for line in bom.lines
        ]))
    for plan in master.inspection_plans.values():
        events.append(md.InspectionPlanDefined(item=plan.item, rule=plan.rule.value, remark=plan.reason))
    for receipt in master.receipts:
        events.append(md.ComponentsReceived(receipt_id=receipt.receipt_id, item=receipt.item, lot=receipt.lot,
                                            quantity=receipt.quantity, location=receipt.location))
    return events
