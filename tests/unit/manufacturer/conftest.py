"""The worked-example chair the manufacturer's unit tests share.

    CHAIR (pcs)
    |- SEAT     1                 post     stocked subassembly: consumed as itself, never exploded
    |  |- FOAM  1.25 kg  scrap 5 %  pre
    |  `- SHELL 1                 post
    |- BASE     1        scrap 2 %  manual   phantom: this flush point is ignored
    |  |- CASTOR 5       scrap 3 %  post
    |  |- GREASE 0.015 kg scrap 10 % pre
    |  `- SCREW  4                  post
    |- SCREW    8        scrap 5 %  post     (the same screw as under BASE: aggregated)
    |- FABRIC   0.833 m  scrap 10 % post
    `- LABEL    1                   manual

Per chair, exactly: BASE 1.02; CASTOR 1.02 x 5 x 1.03 = 5.253; GREASE 1.02 x 0.015 x 1.10 = 0.01683 kg;
SCREW 8 x 1.05 + 1.02 x 4 = 8.4 + 4.08 = 12.48; FABRIC 0.833 x 1.10 = 0.9163 m; SEAT 1; LABEL 1.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from backflush_manufacturer.domain import (
    KG,
    M,
    PCS,
    Bom,
    BomCatalogue,
    BomLine,
    FlushPoint,
    Item,
    Receipt,
    StockLedger,
    receive_all,
)

D = Decimal


def chair_catalogue() -> BomCatalogue:
    items = [
        Item("CHAIR", PCS),
        Item("SEAT", PCS),
        Item("BASE", PCS, phantom=True),
        Item("FOAM", KG),
        Item("SHELL", PCS),
        Item("CASTOR", PCS),
        Item("GREASE", KG),
        Item("SCREW", PCS),
        Item("FABRIC", M),
        Item("LABEL", PCS),
    ]
    boms = [
        Bom(
            "CHAIR",
            (
                BomLine("SEAT", D(1), flush=FlushPoint.POST),
                BomLine("BASE", D(1), D("0.02"), FlushPoint.MANUAL),
                BomLine("SCREW", D(8), D("0.05"), FlushPoint.POST),
                BomLine("FABRIC", D("0.833"), D("0.10"), FlushPoint.POST),
                BomLine("LABEL", D(1), flush=FlushPoint.MANUAL),
            ),
        ),
        Bom(
            "BASE",
            (
                BomLine("CASTOR", D(5), D("0.03"), FlushPoint.POST),
                BomLine("GREASE", D("0.015"), D("0.10"), FlushPoint.PRE),
                BomLine("SCREW", D(4), flush=FlushPoint.POST),
            ),
        ),
        Bom("SEAT", (BomLine("FOAM", D("1.25"), D("0.05"), FlushPoint.PRE), BomLine("SHELL", D(1)))),
    ]
    return BomCatalogue(items, boms)


CHAIR_STOCK = (
    ("CASTOR", "C1", D(300)),
    ("CASTOR", "C2", D(300)),
    ("SCREW", "S1", D(1000)),
    ("SCREW", "S2", D(1000)),
    ("FABRIC", "F1", D("50.000")),
    ("FABRIC", "F2", D("60.000")),
    ("SEAT", "SE1", D(100)),
    ("GREASE", "G1", D("2.000")),
    ("LABEL", "L1", D(200)),
)


def stocked_ledger(catalogue: BomCatalogue, stock=CHAIR_STOCK) -> StockLedger:
    """A ledger holding `stock` (item, lot, quantity) at MAIN, received in that order."""
    receipts = [Receipt(f"receipt-{n}", item, lot, quantity) for n, (item, lot, quantity) in enumerate(stock, 1)]
    return StockLedger.from_movements(receive_all(catalogue, StockLedger(), receipts))


@pytest.fixture
def catalogue() -> BomCatalogue:
    return chair_catalogue()


@pytest.fixture
def ledger(catalogue: BomCatalogue) -> StockLedger:
    return stocked_ledger(catalogue)


@pytest.fixture
def make_ledger(catalogue: BomCatalogue):
    """Build a ledger from (item, lot, quantity) receipts at MAIN, in that order."""
    return lambda stock: stocked_ledger(catalogue, stock)


@pytest.fixture(scope="session")
def chair() -> BomCatalogue:
    """The worked-example catalogue, session-scoped so that hypothesis tests can use it."""
    return chair_catalogue()
