"""The `backflush` command. Services add their own commands through their `ServiceDefinition.cli`."""

from __future__ import annotations

import asyncio
import sys

import typer
from pydantic import ValidationError
from rich.console import Console

from backflush_shared.cli_text import safe
from backflush_shared.errors import BackflushError, ConfigurationError
from backflush_shared.persistence.urls import masked_url

app = typer.Typer(
    name="backflush",
    help="Manufacturing backflush across a manufacturer, a distributor and a warehouse, over Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.command()
def serve(service: str = typer.Argument(..., help="manufacturer, distributor or warehouse")) -> None:
    """Run one service until SIGTERM (configured from BACKFLUSH_* environment variables)."""
    from backflush_shared.logging import configure_logging
    from backflush_shared.service import load_service
    from backflush_shared.service import serve as serve_service

    try:
        definition = load_service(service)
    except ConfigurationError as error:
        fail(str(error))
    try:
        settings = definition.settings_class(service=service)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        # A check across settings (SASL without a password) has no single field to name: its message does.
        where = f"BACKFLUSH_{str(first['loc'][0]).upper()}: " if first["loc"] else ""
        fail(f"bad setting {where}{first['msg']}")
    configure_logging(settings.log_level, service=service)
    try:
        asyncio.run(serve_service(definition, settings))
    except (ConfigurationError, BackflushError) as error:
        fail(f"{service}: {error}")
    except KeyboardInterrupt:
        pass


def fail(message: str, code: int = 2) -> None:
    """One clear line on stderr, no traceback, and a non-zero exit. The message is text, never markup: it often
    quotes what a user or an event said; a database URL in it is shown without its password."""
    err.print(f"[bold red]error:[/] {safe(masked_url(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _add_service_commands() -> None:
    from backflush_shared.service import load_services

    for definition in load_services().values():
        if definition.cli is None:
            continue
        service_app = definition.cli()
        app.registered_commands.extend(service_app.registered_commands)
        app.registered_groups.extend(service_app.registered_groups)


def _add_shared_commands() -> None:
    from backflush_shared import cli_commands

    cli_commands.register(app)


_registered = False


def register_commands() -> None:
    """Add the shared and the installed services' commands to the root app, once."""
    global _registered
    if not _registered:
        _add_shared_commands()
        _add_service_commands()
        _registered = True


def main() -> None:
    register_commands()
    try:
        app()
    except BackflushError as error:
        notes = "".join(f" ({note})" for note in getattr(error, "__notes__", ()))
        err.print(f"[bold red]error:[/] {safe(masked_url(f'{error}{notes}'))}", highlight=False, soft_wrap=True)
        sys.exit(2)
