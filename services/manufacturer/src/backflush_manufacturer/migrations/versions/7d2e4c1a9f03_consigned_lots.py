"""consigned lots: the owner of a ledger movement's lot, and the owner a production order consumes

Contract manufacturing: a brand owner's component lots stay its property (`ledger_movements.owner`, null for the
manufacturer's own stock), and an order for an owner names it (`production_orders.components_owner`) and whether
the manufacturer's own stock may cover what the owner's lots cannot.

Revision ID: 7d2e4c1a9f03
Revises: 3c1e5a9d7b20
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7d2e4c1a9f03'
down_revision: str | None = '3c1e5a9d7b20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_movements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=120), nullable=True,
                                      comment='The brand owner of a consigned lot; null: our own stock.'))
    with op.batch_alter_table('production_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('components_owner', sa.String(length=120), nullable=True,
                                      comment='Contract manufacturing: the brand owner whose consigned lots the '
                                              'order consumes.'))
        batch_op.add_column(sa.Column('own_components_allowed', sa.Boolean(), nullable=False,
                                      server_default=sa.false(),
                                      comment='With an owner: our own stock may cover what the owner\'s lots '
                                              'cannot.'))


def downgrade() -> None:
    with op.batch_alter_table('production_orders', schema=None) as batch_op:
        batch_op.drop_column('own_components_allowed')
        batch_op.drop_column('components_owner')
    with op.batch_alter_table('ledger_movements', schema=None) as batch_op:
        batch_op.drop_column('owner')
