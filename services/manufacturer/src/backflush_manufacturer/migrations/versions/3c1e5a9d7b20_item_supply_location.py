"""item supply location: where flushes take an item from, and where a subassembly made here is received

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


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_column('supply_location')
