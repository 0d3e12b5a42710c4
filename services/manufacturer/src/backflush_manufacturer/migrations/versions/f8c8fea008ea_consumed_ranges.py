"""consumed ranges: every consumed offset accounted for

Revision ID: f8c8fea008ea
Revises: b5f7dd5af933
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f8c8fea008ea'
down_revision: str | None = 'b5f7dd5af933'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('consumed_ranges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('group_id', sa.String(length=250), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('first_offset', sa.BigInteger(), nullable=False),
    sa.Column('last_offset', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False, comment='records read in [first_offset, last_offset]'),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('dead_lettered', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consumed_ranges', schema=None) as batch_op:
        batch_op.create_index('ix_consumed_ranges_partition', ['group_id', 'topic', 'partition', 'first_offset'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consumed_ranges', schema=None) as batch_op:
        batch_op.drop_index('ix_consumed_ranges_partition')
    op.drop_table('consumed_ranges')
