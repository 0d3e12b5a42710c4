"""cancelled lots: a completion cancelled before its lot was turned over is never put away

Revision ID: 5b7d2e91c4a3
Revises: d96e40866aeb
Create Date: 2026-12-06 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b7d2e91c4a3'
down_revision: str | None = 'd96e40866aeb'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cancelled_lots',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('lot', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id', 'lot')
    )


def downgrade() -> None:
    op.drop_table('cancelled_lots')
