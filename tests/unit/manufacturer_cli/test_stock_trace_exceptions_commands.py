"""`backflush stock`, `trace`, `exceptions`, `variance`, `production-orders` on a manufacturer database.

The database (see this folder's conftest) holds the sample stock, SO-PRE-1 (10 chairs, produced into lot
SO-PRE-1-1), SO-POST-1 (20 chairs, 8 completed into lot SO-POST-1-C8), SO-POST-2 (40 chairs, parked, then released
by a receipt of 13 BASE-STAR-5) and SO-POST-3 (5 chairs, parked). Figures worked by hand:

- BASE-STAR-5: 60 + 13 received; 11 (SO-PRE-1) + 21 (SO-POST-1) + 41 (SO-POST-2) flushed: both lots empty.
- CASTOR-50, post lines only: 53 (10 chairs) + 43 (8 chairs) = 96 out of lot CA-0915 (250, first in) -> 154;
  CA-1012 (400) untouched.
- SCREW-M6: 125 + 100 = 225 out of SC-0901 (2000) -> 1775; SC-1020 5000 untouched.
- FOAM-PU is not consumed (SEAT-ASSY is stocked): 60.000 and 45.500 kg, shown with the unit's 3 decimals.
"""

from __future__ import annotations

import uuid

import re
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from backflush_manufacturer.cli import _age

WIDE = {"COLUMNS": "250"}  # rich never wraps a row the tests read


def run(runner: CliRunner, app: typer.Typer, database: str, *args: str):
    return runner.invoke(app, [*args, "--database", database], env=WIDE)


def cells(output: str, *first: str) -> list[str]:
    """The cells of the one table row whose leading cells are `first`."""
    rows = [[cell.strip() for cell in line.split("│")] for line in output.splitlines() if "│" in line]
    found = [row for row in rows if row[: len(first)] == list(first)]
    assert len(found) == 1, (first, output)
    return found[0]


# -- stock ---------------------------------------------------------------------------------------------------------


def test_stock_shows_each_lot_first_in_first_out_at_its_unit_precision(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "stock")

    assert result.exit_code == 0, result.output
    #                                            item, location, lot, on hand, allocated, available, unit
    assert cells(result.stdout, "CASTOR-50", "MAIN", "CA-0915") == ["CASTOR-50", "MAIN", "CA-0915", "154", "0", "154",
                                                                   "pcs"]
    assert cells(result.stdout, "CASTOR-50", "MAIN", "CA-1012")[3] == "400"
    assert cells(result.stdout, "SCREW-M6", "MAIN", "SC-0901")[3:] == ["1775", "0", "1775", "pcs"]
    assert cells(result.stdout, "FOAM-PU", "MAIN", "FP-1015")[3:] == ["45.500", "0.000", "45.500", "kg"]
    assert cells(result.stdout, "CHAIR-ERGO", "FG", "SO-PRE-1-1")[3] == "10"
    assert cells(result.stdout, "CHAIR-ERGO", "FG", "SO-POST-1-C8")[3] == "8"
    lines = result.stdout.splitlines()
    castor = [n for n, line in enumerate(lines) if line.startswith("CASTOR-50 ")]
    assert castor == sorted(castor) and "CA-0915" in lines[castor[0]], "the older lot is listed first"
    total = [cell.strip() for cell in lines[castor[-1] + 1].split("│")]
    assert total == ["", "", "total", "554", "0", "554", "pcs"], "a total under an item with several lots"
    assert "BASE-STAR-5" not in result.stdout, "empty lots are left out by default"


def test_stock_of_one_item_with_empty_lots(runner: CliRunner, cli_app: typer.Typer, sample_database: str) -> None:
    result = run(runner, cli_app, sample_database, "stock", "--item", "BASE-STAR-5", "--all-lots")

    assert result.exit_code == 0, result.output
    assert cells(result.stdout, "BASE-STAR-5", "MAIN", "BS-1001")[3:] == ["0", "0", "0", "pcs"]
    assert cells(result.stdout, "BASE-STAR-5", "MAIN", "BS-1102")[3:] == ["0", "0", "0", "pcs"]
    assert "CASTOR-50" not in result.stdout


def test_stock_of_an_item_without_movements_says_so(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "stock", "--item", "NO-SUCH-ITEM")

    assert result.exit_code == 1
    assert result.stdout.strip() == "no stock of NO-SUCH-ITEM in the ledger"


def test_a_missing_database_is_one_error_line(runner: CliRunner, cli_app: typer.Typer, tmp_path) -> None:
    missing = tmp_path / "nowhere.db"

    result = run(runner, cli_app, f"sqlite+aiosqlite:///{missing}", "stock")

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no manufacturer database at {missing}")
    assert not missing.exists(), "looking must not create an empty database"


# -- trace ---------------------------------------------------------------------------------------------------------


def test_trace_of_a_finished_lot_lists_the_component_lots_that_went_into_it(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "trace", "SO-PRE-1-1")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("CHAIR-ERGO lot SO-PRE-1-1\n")
    assert "made from (component lots that went into it)" in out
    for line in ("BASE-STAR-5 lot BS-1001: 11 pcs, order SO-PRE-1", "CASTOR-50 lot CA-0915: 53 pcs, order SO-PRE-1",
                 "SCREW-M6 lot SC-0901: 125 pcs, order SO-PRE-1", "SEAT-ASSY lot SA-2411-01: 10 pcs, order SO-PRE-1"):
        assert line in out
    assert "went into (finished lots" not in out
    # its own movement: the production receipt into finished goods
    [movement] = [row for row in _rows(out) if row[0].isdigit()]
    assert movement[2:6] == ["FG", "+10 pcs", "production_receipt", "SO-PRE-1"]


def test_trace_of_a_component_lot_lists_the_finished_lots_it_went_into(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "trace", "SA-2411-01")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "went into (finished lots made with it)" in out
    assert "CHAIR-ERGO lot SO-PRE-1-1 (took 10 pcs, order SO-PRE-1)" in out
    assert "CHAIR-ERGO lot SO-POST-1-C8 (took 8 pcs, order SO-POST-1)" in out
    movements = [row for row in _rows(out) if row[0].isdigit()]
    assert [(row[3], row[4], row[5]) for row in movements] == [
        ("+40 pcs", "receipt", ""),
        ("-10 pcs", "backflush", "SO-PRE-1"),
        ("-8 pcs", "backflush", "SO-POST-1"),
    ]
    uuid.UUID(movements[1][6])  # the event that caused the movement (here the OrderForwarded)


def _rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")] for line in output.splitlines() if "│" in line]


def test_trace_of_an_unknown_lot_exits_1(runner: CliRunner, cli_app: typer.Typer, sample_database: str) -> None:
    result = run(runner, cli_app, sample_database, "trace", "NO-SUCH-LOT")

    assert result.exit_code == 1
    assert "no lot NO-SUCH-LOT" in result.stdout


# -- exceptions ----------------------------------------------------------------------------------------------------


def test_exceptions_lists_the_waiting_entries_with_reason_and_age(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "exceptions")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].strip() == "exception queue: 1 waiting"
    entry = cells(result.stdout, "2")
    assert entry[1:4] == ["SO-POST-3", "release", "BASE-STAR-5: needs 6 pcs, 0 available"]
    assert re.fullmatch(r"\d+[smhd]", entry[4])
    assert entry[5] == "waiting"
    assert not [row for row in _rows(result.stdout) if row[0] == "1"], "entry 1 posted: not waiting any more"


def test_exceptions_all_shows_the_resolved_entries_too(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "exceptions", "--all")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].strip() == "exception queue: 1 waiting, 1 resolved"
    posted = cells(result.stdout, "1")
    assert posted[1:4] == ["SO-POST-2", "release", "BASE-STAR-5: needs 41 pcs, 28 available"]
    assert posted[5] == "posted"


def test_retry_of_an_unknown_entry_exits_1_without_publishing(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    # the bootstrap address answers nothing: the command must find out from the database before publishing
    result = run(runner, cli_app, sample_database, "exceptions", "retry", "99", "--bootstrap-servers", "127.0.0.1:1")

    assert result.exit_code == 1
    assert "no entry 99 in the exception queue" in result.stdout


def test_retry_of_a_posted_entry_has_nothing_to_do(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "exceptions", "retry", "1", "--bootstrap-servers", "127.0.0.1:1")

    assert result.exit_code == 0
    assert result.stdout.strip() == "entry 1 (SO-POST-2, release) is posted: nothing to retry"


@pytest.mark.parametrize(
    ("ago", "shown"),
    [(timedelta(seconds=45), "45s"), (timedelta(minutes=3, seconds=59), "3m"), (timedelta(hours=2, minutes=5), "2h"),
     (timedelta(days=4, hours=23), "4d")],
)
def test_age_is_shown_in_its_largest_whole_unit(ago: timedelta, shown: str) -> None:
    now = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)

    assert _age(now - ago, now) == shown
    assert _age((now - ago).replace(tzinfo=None), now) == shown, "SQLite's naive times are UTC"


# -- variance and production orders --------------------------------------------------------------------------------


def test_variance_of_a_partly_completed_order(runner: CliRunner, cli_app: typer.Typer, sample_database: str) -> None:
    """SO-POST-1, 8 of 20 completed. Standard for 8: CASTOR-50 8.16 x 5.15 = 42.024 -> 43, actual 43; BASE-STAR-5
    8.16 -> 9 against the 21 its release flushed for all 20: +12, +133.33 %; CARTON-CH (manual) 8 standard, none
    issued: -8, -100.00 %."""
    result = run(runner, cli_app, sample_database, "variance", "SO-POST-1")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "SO-POST-1 CHAIR-ERGO: completed 8 of 20 pcs (in-production)"
    #                                            component, standard, actual, variance, %, unit
    assert cells(result.stdout, "CASTOR-50") == ["CASTOR-50", "43", "43", "0", "+0.00", "pcs"]
    assert cells(result.stdout, "BASE-STAR-5") == ["BASE-STAR-5", "9", "21", "+12", "+133.33", "pcs"]
    assert cells(result.stdout, "CARTON-CH") == ["CARTON-CH", "8", "0", "-8", "-100.00", "pcs"]
    assert cells(result.stdout, "GREASE-LI") == ["GREASE-LI", "0.135", "0.000", "-0.135", "-100.00", "kg"]
    assert "note: pre lines flushed at release for all 20" in result.stdout


def test_variance_of_an_order_without_consumption(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "variance", "SO-POST-3")

    assert result.exit_code == 0, result.output
    assert "nothing charged to SO-POST-3 yet" in result.stdout


def test_variance_of_an_unknown_order_exits_1(runner: CliRunner, cli_app: typer.Typer, sample_database: str) -> None:
    result = run(runner, cli_app, sample_database, "variance", "SO-NONE")

    assert result.exit_code == 1
    assert "no production order SO-NONE" in result.stdout


def test_production_orders_show_status_progress_and_reason(
    runner: CliRunner, cli_app: typer.Typer, sample_database: str
) -> None:
    result = run(runner, cli_app, sample_database, "production-orders")

    assert result.exit_code == 0, result.output
    #                                    order, item, flow, status, completed, reason
    assert cells(result.stdout, "SO-PRE-1") == ["SO-PRE-1", "CHAIR-ERGO", "pre", "produced", "10 of 10 pcs", ""]
    assert cells(result.stdout, "SO-POST-1")[3:5] == ["in-production", "8 of 20 pcs"]
    assert cells(result.stdout, "SO-POST-3")[3:] == ["parked", "0 of 5 pcs", "BASE-STAR-5: needs 6 pcs, 0 available"]


# -- publishing commands refuse bad input before touching Kafka ----------------------------------------------------


def test_complete_refuses_a_zero_quantity(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = runner.invoke(cli_app, ["complete", "SO-POST-1", "--qty", "0", "--bootstrap-servers", "127.0.0.1:1"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: CompletionReported: quantity: Input should be greater than 0")


def test_complete_without_a_broker_is_one_error_line(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = runner.invoke(cli_app, ["complete", "SO-POST-1", "--qty", "4", "--bootstrap-servers", "127.0.0.1:1"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot publish to Kafka at 127.0.0.1:1")


def test_complete_cancel_needs_the_order_when_the_lot_does_not_name_it(runner: CliRunner, cli_app: typer.Typer) -> None:
    """A shortened lot (`start.digest-C8`) or an event id does not say its order: the command asks for --order."""
    result = runner.invoke(cli_app, ["complete", "cancel", "SO-VERY-LONG.0123456789abcdef-C8",
                                     "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot tell the order of completion SO-VERY-LONG.0123456789abcdef-C8: "
                                    "give --order ORDER-ID")


def test_complete_cancel_of_a_completion_lot_publishes_for_its_order(runner: CliRunner, cli_app: typer.Typer) -> None:
    """`SO-20-C8` names order SO-20: the command gets as far as the broker (none here)."""
    result = runner.invoke(cli_app, ["complete", "cancel", "SO-20-C8", "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "error: cannot publish to Kafka at 127.0.0.1:1" in result.stderr


def test_complete_without_a_quantity_is_one_error_line(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = runner.invoke(cli_app, ["complete", "SO-POST-1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: missing option --qty")
