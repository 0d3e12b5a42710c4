from alembic import context

from backflush_manufacturer.adapters.tables import metadata
from backflush_shared.persistence.migrations import run_env

run_env(context, metadata)
