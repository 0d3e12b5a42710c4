"""`backflush consign`, `consignment-statement` and `order place --contract-manufacturing`: refusals on the command
line, before anything is sent or read."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

WIDE = {"COLUMNS": "250"}
NOWHERE = ["--bootstrap-servers", "127.0.0.1:1"]  # never reached: each refusal comes before publishing


@pytest.mark.parametrize(("args", "message"), [
    (["BRAND-A", "BASE-STAR-5", "BA-1", "three"], "QTY must be a decimal number"),
    (["Brand A Ltd", "BASE-STAR-5", "BA 1", "3"], "ComponentsConsigned: lot"),
])
def test_a_bad_consignment_is_refused_with_one_line_and_exit_code_2(
        runner: CliRunner, cli_app: typer.Typer, args: list[str], message: str) -> None:
    result = runner.invoke(cli_app, ["consign", *args, *NOWHERE], env=WIDE)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_statement_period_is_a_month(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = runner.invoke(cli_app, ["consignment-statement", "BRAND-A", "--period", "2026-W49"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "a period is a month, YYYY-MM" in result.output


@pytest.mark.parametrize(("flags", "message"), [
    (["--flow", "stock", "--contract-manufacturing"], "builds nothing"),
    (["--flow", "post", "--own-components-allowed"], "contract_manufacturing orders only"),
])
def test_a_contract_order_that_cannot_be_built_is_refused_before_it_is_placed(
        runner: CliRunner, cli_app: typer.Typer, flags: list[str], message: str) -> None:
    result = runner.invoke(cli_app, ["order", "place", "--item", "CHAIR-TASK", "--qty", "5", "--holder", "BRAND-A",
                                     *flags, *NOWHERE], env=WIDE)
    assert result.exit_code == 2, result.output
    assert message in result.output
