"""Free text from events is printed as text: never Rich markup, never a terminal escape sequence.

A holder named `[/]` used to crash `backflush orders` for as long as the order existed, `[link=...]` rendered a
clickable link, and raw ESC sequences reached the terminal even when piped. The distributor's database is filled
the way the running distributor fills it: each event encoded into a Kafka record and applied by the service's own
batch processor, only without a broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from backflush_distributor.app import SERVICE
from backflush_shared.cli_text import safe, visible
from backflush_shared.contracts import orders as o
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from support.manufacturer_feed import apply

ESC = "\x1b"
#: Holders as an order's event may carry them (the contract limits their length, not their characters).
HOLDERS = {
    "ORD-CLOSE-TAG": "[/]",
    "ORD-LINK": "[link=https://evil.example]Acme[/link]",
    "ORD-ESC": f"{ESC}[31mRed Corp{ESC}]8;;https://evil.example{ESC}\\x{ESC}]8;;{ESC}\\",
}


async def _seed(url: str) -> None:
    await upgrade_to_head_async(url, SERVICE.migrations)
    runtime = ServiceRuntime.create(SERVICE, SERVICE.settings_class(service="distributor", database_url=url))
    try:
        await apply(runtime, [
            o.OrderPlaced(order_id=order_id, order_holder=holder, flow="pre", item="CHAIR-ERGO",
                          quantity=Decimal(2), ship_to="1 Depot Road", due_date=dt.date(2030, 1, 31))
            for order_id, holder in HOLDERS.items()
        ])
    finally:
        await runtime.database.close()


@pytest.fixture(scope="module")
def distributor_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('distributor') / 'distributor.db'}"
    asyncio.run(_seed(url))
    return url


def backflush(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command, its output piped (where escape sequences used to pass through untouched)."""
    return subprocess.run([sys.executable, "-m", "backflush_shared", *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "250"})


def test_orders_prints_a_holder_named_like_a_closing_tag_literally(distributor_database: str) -> None:
    done = backflush("orders", "--database", distributor_database)
    assert done.returncode == 0, done.stderr
    assert "[/]" in done.stdout


def test_orders_prints_a_link_tag_as_text_not_a_hyperlink(distributor_database: str) -> None:
    done = backflush("orders", "--database", distributor_database)
    assert done.returncode == 0, done.stderr
    assert "[link=https://evil.example]Acme[/link]" in done.stdout


def test_orders_shows_escape_sequences_visibly_and_never_sends_them(distributor_database: str) -> None:
    done = backflush("orders", "--database", distributor_database)
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout
    assert "\\x1b[31mRed Corp" in done.stdout


@pytest.mark.parametrize("order_id", sorted(HOLDERS))
def test_order_status_prints_the_holder_and_the_history_as_text(distributor_database: str, order_id: str) -> None:
    done = backflush("order", "status", order_id, "--database", distributor_database)
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout
    assert visible(HOLDERS[order_id]) in done.stdout


def test_safe_text_is_literal_for_rich_and_free_of_control_characters() -> None:
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None)
    for text in [*HOLDERS.values(), "back\\", "tab\there", "\u202eevil", "bell\x07"]:
        console.print(safe(text), end="|")
    shown = console.export_text()
    assert "[/]" in shown and "[link=https://evil.example]Acme[/link]" in shown and "back\\" in shown
    assert "\\t" in shown and "\\u202e" in shown and "\\x07" in shown
    assert not any(ord(char) < 0x20 and char != "\n" for char in shown)
