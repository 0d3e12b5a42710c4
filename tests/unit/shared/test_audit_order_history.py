"""The audit's "no order went back from its end" check over a distributor's transitions (issue 15 review)."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from backflush_shared.audit import order_history_checks


async def _check(transitions: list[tuple[str, str, str]], stored: list[tuple[str, str]]) -> tuple[bool, str]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TABLE order_transitions (id INTEGER PRIMARY KEY, order_id TEXT, "
                                          "state TEXT, cause_event_type TEXT)"))
            for order_id, state, cause in transitions:
                await connection.execute(text("INSERT INTO order_transitions (order_id, state, cause_event_type) "
                                              "VALUES (:o, :s, :c)"), {"o": order_id, "s": state, "c": cause})
            async with AsyncSession(bind=connection) as session:
                [finding] = await order_history_checks(
                    session, [SimpleNamespace(order_id=o, state=s) for o, s in stored])
            return finding.ok, finding.detail
    finally:
        await engine.dispose()


PLACED, REJECTED, SHIPPED = "backflush.order.placed", "backflush.order.rejected", "backflush.goods.shipped"


async def test_a_rejected_order_placed_again_under_its_id_did_not_go_back() -> None:
    ok, detail = await _check([("SO-1", "forwarded", PLACED), ("SO-1", "rejected", REJECTED),
                               ("SO-1", "forwarded", PLACED)], [("SO-1", "forwarded")])
    assert ok, detail


async def test_an_order_moved_on_after_its_end_by_anything_but_a_placement_went_back() -> None:
    ok, detail = await _check([("SO-1", "forwarded", PLACED), ("SO-1", "rejected", REJECTED),
                               ("SO-1", "in-production", SHIPPED)], [("SO-1", "in-production")])
    assert not ok and "SO-1: rejected -> in-production" in detail
