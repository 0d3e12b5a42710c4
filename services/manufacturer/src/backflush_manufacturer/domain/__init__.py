"""The manufacturer's pure domain core: items, BOMs, explosion, the stock ledger and the backflush engine.

Standard library and `backflush_shared.errors` only: no I/O, no clock, no framework. Every operation takes values
(a `BomCatalogue`, a `StockLedger` built from movements, a request) and returns values (requirements, movements to
append, a parked flush, alerts); the caller persists them. The rules a user must be able to predict are in
`rules.PREDICTABLE_RULES`.
"""

from backflush_manufacturer.domain.allocation import allocate, release_allocations
from backflush_manufacturer.domain.backflush import (
    ComponentIssue,
    FlushOutcome,
    FlushRequest,
    ParkedFlush,
    PostedFlush,
    backflush,
    issue,
    plan,
    post_or_park,
)
from backflush_manufacturer.domain.bom import Bom, BomCatalogue, BomLine, FlushPoint
from backflush_manufacturer.domain.errors import (
    CyclicBomError,
    DuplicateDefinitionError,
    InsufficientComponentStockError,
    InsufficientStockError,
    ManufacturerDomainError,
    MissingBomError,
    NegativeScrapFactorError,
    NonPositiveQuantityError,
    PhantomProductionOrderError,
    PhantomWithStockError,
    ReservedLotError,
    TooManyDecimalsError,
    UnknownFlushPointError,
    UnknownInspectionRuleError,
    UnknownItemError,
    UnknownNegativeStockPolicyError,
    UnknownUnitError,
)
from backflush_manufacturer.domain.explosion import Requirement, explode, flush_requirements, requirements_as_json
from backflush_manufacturer.domain.genealogy import Genealogy, GenealogyLink, links_from_movements
from backflush_manufacturer.domain.inspection import InspectionPlan, InspectionResult, InspectionRule, inspect
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.ledger import (
    DEFAULT_LOCATION,
    NEGATIVE_LOT,
    LedgerMovement,
    LotBalance,
    MovementReason,
    NegativeDebt,
    StockLedger,
)
from backflush_manufacturer.domain.negative_stock import (
    NegativeStockAlert,
    NegativeStockPolicy,
    Shortage,
    StockPolicies,
)
from backflush_manufacturer.domain.order_states import (
    IllegalProductionOrderTransitionError,
    ProductionOrderState,
    next_states,
    transition,
)
from backflush_manufacturer.domain.orders import producible
from backflush_manufacturer.domain.parking import Reprocessed, reprocess_parked
from backflush_manufacturer.domain.receipts import Receipt, receive, receive_all
from backflush_manufacturer.domain.reversal import reverse_completion, reverse_flush, reverse_order
from backflush_manufacturer.domain.rules import PREDICTABLE_RULES, Rule
from backflush_manufacturer.domain.units import KG, L, M, PCS, STANDARD_UNITS, Unit
from backflush_manufacturer.domain.variance import ComponentVariance, order_variance, standard_consumption, variance

__all__ = [
    "DEFAULT_LOCATION",
    "KG",
    "L",
    "M",
    "NEGATIVE_LOT",
    "PCS",
    "PREDICTABLE_RULES",
    "STANDARD_UNITS",
    "Bom",
    "BomCatalogue",
    "BomLine",
    "ComponentIssue",
    "ComponentVariance",
    "CyclicBomError",
    "DuplicateDefinitionError",
    "FlushOutcome",
    "FlushPoint",
    "FlushRequest",
    "Genealogy",
    "GenealogyLink",
    "IllegalProductionOrderTransitionError",
    "InspectionPlan",
    "InspectionResult",
    "InspectionRule",
    "InsufficientComponentStockError",
    "InsufficientStockError",
    "Item",
    "LedgerMovement",
    "LotBalance",
    "ManufacturerDomainError",
    "MissingBomError",
    "MovementReason",
    "NegativeDebt",
    "NegativeScrapFactorError",
    "NegativeStockAlert",
    "NegativeStockPolicy",
    "NonPositiveQuantityError",
    "ParkedFlush",
    "PhantomProductionOrderError",
    "PhantomWithStockError",
    "PostedFlush",
    "ProductionOrderState",
    "Receipt",
    "Reprocessed",
    "Requirement",
    "ReservedLotError",
    "Rule",
    "Shortage",
    "StockLedger",
    "StockPolicies",
    "TooManyDecimalsError",
    "Unit",
    "UnknownFlushPointError",
    "UnknownInspectionRuleError",
    "UnknownItemError",
    "UnknownNegativeStockPolicyError",
    "UnknownUnitError",
    "allocate",
    "backflush",
    "explode",
    "flush_requirements",
    "inspect",
    "issue",
    "links_from_movements",
    "next_states",
    "order_variance",
    "plan",
    "post_or_park",
    "producible",
    "receive",
    "receive_all",
    "release_allocations",
    "reprocess_parked",
    "requirements_as_json",
    "reverse_completion",
    "reverse_flush",
    "reverse_order",
    "standard_consumption",
    "transition",
    "variance",
]
