from alembic import context

from backflush_distributor.adapters.tables import metadata
from backflush_shared.persistence.migrations import run_env

run_env(context, metadata)
