"""Write a new Alembic revision for one service by comparing its tables with its migrations.

    .venv/bin/python scripts/new_migration.py distributor "add racks"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from backflush_shared.persistence.migrations import alembic_config
from backflush_shared.service import load_service


def main() -> None:
    service, message = sys.argv[1], sys.argv[2]
    definition = load_service(service)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'scratch.db'}"
        config = alembic_config(url, definition.migrations)
        command.upgrade(config, "head")
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    main()
