"""`backflush make-to-stock`: a bad quantity, date or id is refused on the command line, before anything is sent."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner



WIDE = {"COLUMNS": "250"}
NOWHERE = ["--bootstrap-servers", "127.0.0.1:1"]  # never reached: each refusal comes before publishing


@pytest.mark.parametrize(("args", "message"), [
    (["MTS-1", "SEAT-ASSY", "ten"], "QTY must be a decimal number"),
    (["MTS-1", "SEAT-ASSY", "5", "--due", "31.01.2030"], "--due must be a date, YYYY-MM-DD"),
    (["MTS 1", "SEAT-ASSY", "5"], "order_id"),
])
def test_a_bad_make_to_stock_order_is_refused_with_one_line_and_exit_code_2(
        runner: CliRunner, cli_app: typer.Typer, args: list[str], message: str) -> None:
    result = runner.invoke(cli_app, ["make-to-stock", *args, *NOWHERE], env=WIDE)
    assert result.exit_code == 2, result.output
    assert message in result.output
