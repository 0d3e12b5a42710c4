"""storage capacity announced by the warehouse

Revision ID: 5c1e2a7b9d40
Revises: 09ab21d9cc7d
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backflush_shared.persistence.types

revision: str = '5c1e2a7b9d40'
down_revision: str | None = '09ab21d9cc7d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('storage_capacity',
    sa.Column('kind', sa.String(length=16), nullable=False, comment='rack | consignment'),
    sa.Column('capacity', backflush_shared.persistence.types.DecimalText(), nullable=False,
              comment='Units all locations of this kind hold together.'),
    sa.Column('announced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cause_event_id', sa.String(length=36), nullable=False, comment="The warehouse's announcement."),
    sa.PrimaryKeyConstraint('kind')
    )


def downgrade() -> None:
    op.drop_table('storage_capacity')
