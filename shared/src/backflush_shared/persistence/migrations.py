"""Alembic, driven from code: each service keeps its revisions in its own `migrations/` folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from backflush_shared.persistence.database import create_engine
from backflush_shared.persistence.locks import advisory_key

#: Instances of one service started together migrate one at a time (PostgreSQL): the others wait, then find the
#: schema current. Without it they all ran `CREATE TABLE alembic_version` at once, and all but one crashed.
MIGRATION_LOCK = "backflush:migrations"


def alembic_config(url: str, script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(url: str, script_location: Path) -> None:
    """Bring the database to the newest schema (blocking; run it in a thread from async code)."""
    command.upgrade(alembic_config(url, script_location), "head")


async def upgrade_to_head_async(url: str, script_location: Path) -> None:
    # Alembic's env runs its own event loop, which cannot nest inside ours: give it a thread.
    await asyncio.to_thread(upgrade_to_head, url, script_location)


def run_env(context: Any, target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        # render_as_batch: SQLite alters tables by copying them, which batch mode does for us
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                if connection.dialect.name == "postgresql":
                    # held until the migration's transaction commits: the next instance then reads the new version
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                             {"key": advisory_key(MIGRATION_LOCK)})
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())
