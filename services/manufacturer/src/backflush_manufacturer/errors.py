"""The manufacturer's refusals of events that do not fit its production orders (dead-lettered with the reason)."""

from __future__ import annotations

from decimal import Decimal

from backflush_shared.errors import BackflushError


class ProductionOrderError(BackflushError):
    def __init__(self, message: str, *, order_id: str) -> None:
        super().__init__(message)
        self.order_id = order_id


class UnknownProductionOrderError(ProductionOrderError):
    def __init__(self, order_id: str, what: str) -> None:
        super().__init__(f"{what} for order {order_id}, for which there is no production order", order_id=order_id)


class ProductionOrderClosedError(ProductionOrderError):
    def __init__(self, order_id: str, status: str, what: str) -> None:
        super().__init__(f"{what} for order {order_id}, whose production order is {status}", order_id=order_id)


class CompletionNotExpectedError(ProductionOrderError):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"completion reported for pre-product order {order_id}: pre-product orders complete at release",
            order_id=order_id,
        )


class CompletionExceedsOrderError(ProductionOrderError):
    def __init__(self, order_id: str, reported: Decimal, remaining: Decimal, ordered: Decimal) -> None:
        super().__init__(
            f"completion of {reported} for order {order_id} exceeds what remains to complete: {remaining} of {ordered}",
            order_id=order_id,
        )
        self.reported = reported
        self.remaining = remaining


class CompletionCancellationRefusedError(ProductionOrderError):
    """A completion that cannot be reversed (unknown, not the latest, parked, shipped, allocated or consumed)."""

    def __init__(self, order_id: str, completion_id: str, why: str) -> None:
        super().__init__(f"cannot cancel completion {completion_id} of order {order_id}: {why}", order_id=order_id)
        self.completion_id = completion_id
        self.why = why


class InventoryCheckMismatchError(ProductionOrderError):
    def __init__(self, order_id: str, lot: str, quantity: Decimal, produced: Decimal | None) -> None:
        produced_text = "was never produced for it" if produced is None else f"was produced with {produced}"
        super().__init__(
            f"inventory check for order {order_id} reports {quantity} of lot {lot}, which {produced_text}",
            order_id=order_id,
        )


class UnknownParkedEntryError(BackflushError):
    def __init__(self, entry_id: int) -> None:
        super().__init__(f"no parked backflush with id {entry_id} is waiting in the exception queue")
        self.entry_id = entry_id


class ProductionOrderIdInUseError(ProductionOrderError):
    """A make-to-stock order placed under the id of another production order (or again after it finished)."""

    def __init__(self, order_id: str, existing: str) -> None:
        super().__init__(f"production order {order_id} exists already ({existing}); a different order needs another "
                         "id", order_id=order_id)


class MakeToStockMismatchError(ProductionOrderError):
    """A shop-floor report whose make-to-stock flag does not match the order: the distributor would file (or
    dead-letter) it under the wrong kind of order."""

    def __init__(self, order_id: str, *, stock_order: bool) -> None:
        hint = ("is a make-to-stock order: report it with --stock" if stock_order
                else "is a customer's order: report it without --stock")
        super().__init__(f"production order {order_id} {hint}", order_id=order_id)
