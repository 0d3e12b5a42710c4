"""Commands that need no particular service: topics, publishing, the demo."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

out = Console()


def register(app: typer.Typer) -> None:
    topics_app = typer.Typer(help="The system's Kafka topics.", no_args_is_help=True)

    @topics_app.command("create")
    def create_topics(
        bootstrap_servers: str = typer.Option("127.0.0.1:9092", envvar="BACKFLUSH_BOOTSTRAP_SERVERS"),
        prefix: str = typer.Option("", envvar="BACKFLUSH_TOPIC_PREFIX"),
        partitions: int = typer.Option(3, envvar="BACKFLUSH_TOPIC_PARTITIONS"),
    ) -> None:
        """Create every topic (and dead-letter twin) that does not exist yet."""
        from backflush_shared.contracts.topics import TopicNames
        from backflush_shared.messaging.admin import ensure_topics

        created = asyncio.run(ensure_topics(bootstrap_servers, TopicNames(prefix).all(), partitions=partitions,
                                            replication=1))
        out.print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")

    app.add_typer(topics_app, name="topics")

    @app.command()
    def demo(
        bootstrap_servers: str = typer.Option("", envvar="BACKFLUSH_DEMO_BOOTSTRAP_SERVERS",
                                              help="Use this broker instead of starting a local one."),
        workdir: str = typer.Option("var/demo", help="Where the services keep their databases and logs."),
        sample_data: str = typer.Option("services/manufacturer/sample_data", help="The master data to load."),
        compose: bool = typer.Option(False, "--compose", help="Run against a fresh `docker compose up` deployment "
                                     "(its broker on localhost:9092 unless --bootstrap-servers) instead of "
                                     "starting a broker and services."),
        compose_command: str = typer.Option("docker compose", envvar="BACKFLUSH_COMPOSE_COMMAND",
                                            help="With --compose: the compose command to read the services' "
                                                 "state with (`... exec SERVICE backflush snapshot SERVICE`)."),
        compose_project: str = typer.Option("", help="With --compose: the compose project name, if not the "
                                                     "compose file's own."),
        result_json: str = typer.Option("", help="Also write the end states, times and consumption as JSON here."),
        principals: str = typer.Option("var/compose/principals", help="With --compose: the folder of the host "
                                       "clients' settings made by `make up` (<principal>.env); each event is sent "
                                       "as the principal allowed to write its topic."),
    ) -> None:
        """Every flow: six orders and a run through the three services, then the results (exit 1 if they differ
        from the README's walkthrough)."""
        from pathlib import Path

        from backflush_shared.demo import compose_demo_command, demo_command

        result = Path(result_json) if result_json else None
        if compose:
            code = compose_demo_command(bootstrap_servers or "localhost:9092", compose_command, compose_project,
                                        Path(sample_data), result, principals=Path(principals))
        else:
            code = demo_command(bootstrap_servers or None, Path(workdir), Path(sample_data), result)
        raise typer.Exit(code)

    @app.command()
    def snapshot(
        service: str = typer.Argument(..., help="manufacturer, distributor or warehouse"),
        database: str = typer.Option("", envvar="BACKFLUSH_DATABASE_URL", help="The service's database."),
    ) -> None:
        """One service's state as JSON (orders; stock, production orders and parked flushes; racks and
        consignment): what `demo --compose` reads inside each container."""
        from backflush_shared.deployment_view import read_snapshot

        if not database:
            raise typer.BadParameter("no database: set BACKFLUSH_DATABASE_URL or --database", param_hint="--database")
        typer.echo(asyncio.run(read_snapshot(service, database)).model_dump_json())

    docs_app = typer.Typer(help="The published contract documents.", no_args_is_help=True)

    @docs_app.command("export")
    def export_docs(docs: str = typer.Option("docs", help="The docs folder.")) -> None:
        """Write the JSON Schema of every event and the AsyncAPI document of every service under docs/."""
        from pathlib import Path

        from backflush_shared.docs_export import write

        written = write(Path(docs))
        out.print(f"{len(written)} files written" + "".join(f"\n  {p}" for p in written))

    app.add_typer(docs_app, name="docs")
    from backflush_shared.dead_letters import register_dlq_commands  # dlq list|replay, and audit
    register_dlq_commands(app)
