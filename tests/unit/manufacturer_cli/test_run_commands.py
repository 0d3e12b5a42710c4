"""`backflush run report`, `run cancel` and `variance --line`: refusals on the command line, before anything is
sent; the run id is derived from line, period and lot when not given."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

WIDE = {"COLUMNS": "250"}
NOWHERE = ["--bootstrap-servers", "127.0.0.1:1"]  # never reached: each refusal comes before publishing


@pytest.mark.parametrize(("args", "message"), [
    (["SEAT-ASSY", "ten", "--line", "L1", "--period", "2026-W49", "--lot", "SA-1"], "QTY must be a decimal number"),
    (["SEAT-ASSY", "5", "--line", "L 1", "--period", "2026-W49", "--lot", "SA-1"], "run_id"),
    (["SEAT-ASSY", "5", "--line", "L1", "--period", "2026 W49", "--lot", "SA-1", "--run", "R-1"], "period"),
])
def test_a_bad_run_report_is_refused_with_one_line_and_exit_code_2(
        runner: CliRunner, cli_app: typer.Typer, args: list[str], message: str) -> None:
    result = runner.invoke(cli_app, ["run", "report", *args, *NOWHERE], env=WIDE)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_variance_needs_an_order_or_a_line_and_a_period(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = runner.invoke(cli_app, ["variance", "--line", "L1"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "--line LINE --period PERIOD" in result.output
