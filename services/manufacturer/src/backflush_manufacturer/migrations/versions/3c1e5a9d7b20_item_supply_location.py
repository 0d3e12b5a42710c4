"""item supply location, and finished lots that are shipped or cancelled

Where flushes take an item from (and where a subassembly made here is received); when a finished lot was shipped
(its completion can no longer be cancelled) or cancelled (one completion reversed).

Revision ID: 3c1e5a9d7b20
Revises: f8c8fea008ea
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '3c1e5a9d7b20'
down_revision: str | None = 'f8c8fea008ea'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supply_location', sa.String(length=64), nullable=True,
                                      comment='Where flushes take it from; null: MAIN.'))
    with op.batch_alter_table('finished_lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True,
                                      comment='Its completion was cancelled: the lot is no longer produced.'))


def downgrade() -> None:
    with op.batch_alter_table('finished_lots', schema=None) as batch_op:
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('shipped_at')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_column('supply_location')
