"""finished-goods stock for sale: runs' lots, stock orders, allocations (issue 17)

Revision ID: a17f5c0e2b61
Revises: 5b7d2e91c4a3
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backflush_shared.persistence.types

revision: str = 'a17f5c0e2b61'
down_revision: str | None = '5b7d2e91c4a3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('finished_stock',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('item', sa.String(length=64), nullable=False),
    sa.Column('lot', sa.String(length=64), nullable=False),
    sa.Column('quantity', backflush_shared.persistence.types.DecimalText(length=40), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='stocked | withdrawn'),
    sa.Column('stocked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_index(op.f('ix_finished_stock_item'), 'finished_stock', ['item'], unique=False)
    op.create_table('stock_orders',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('item', sa.String(length=64), nullable=False),
    sa.Column('quantity', backflush_shared.persistence.types.DecimalText(length=40), nullable=False),
    sa.Column('order_holder', sa.String(length=120), nullable=False),
    sa.Column('ship_to', sa.String(length=200), nullable=False),
    sa.Column('partial', sa.Boolean(), nullable=False, comment='The holder accepts partial deliveries.'),
    sa.Column('shipped', backflush_shared.persistence.types.DecimalText(length=40), nullable=False,
              comment='Units shipped to it so far (in parts if partial).'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='waiting | shipped | cancelled'),
    sa.Column('told', sa.String(length=80), nullable=True, comment='The figures last told in FinishedStockAwaited.'),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('order_id')
    )
    op.create_index(op.f('ix_stock_orders_item'), 'stock_orders', ['item'], unique=False)
    op.create_table('stock_allocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('item', sa.String(length=64), nullable=False),
    sa.Column('lot', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('quantity', backflush_shared.persistence.types.DecimalText(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_stock_allocations_order_id'), 'stock_allocations', ['order_id'], unique=False)
    op.create_index(op.f('ix_stock_allocations_run_id'), 'stock_allocations', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_table('stock_allocations')
    op.drop_table('stock_orders')
    op.drop_table('finished_stock')
