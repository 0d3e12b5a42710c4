"""`backflush bom explode`: the sample chair's explosion from files, as JSON and as a table, and its refusals.

Worked by hand from `services/manufacturer/sample_data` for 10 CHAIR-ERGO:

- BASE-KIT is a phantom on the chair's BOM with scrap 2 %: 10 x 1 x 1.02 = 10.2 kits, never rounded (a phantom is
  never stocked); its children are flushed in its place at their own flush points (the kit line's `pre` is
  ignored).
- BASE-STAR-5, pre: 10.2 x 1 = 10.2, whole pieces round up -> 11. GAS-LIFT-100 likewise -> 11.
- CASTOR-50, post: 10.2 x 5 x 1.03 = 52.53 -> 53.
- SCREW-M6, post, on two paths, added up exactly before rounding once: 10 x 8 x 1.05 = 84 on the chair, plus
  10.2 x 4 = 40.8 under the kit: 124.8 -> 125 (rounding each path first would give 84 + 41 = 125 here too, but
  for 1 chair it gives 9 + 5 = 14 against the correct ceil(8.4 + 4.08) = ceil(12.48) = 13).
- GREASE-LI, manual, kg with 3 decimals: 10.2 x 0.015 x 1.10 = 0.1683 -> half-up at 3 decimals -> 0.168.
- SEAT-ASSY is a stocked subassembly: consumed as itself, 10, and not exploded (no SEAT-SHELL, FOAM-PU, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from backflush_shared import cli as root_cli

SAMPLE_DATA = Path(__file__).resolve().parents[3] / "services" / "manufacturer" / "sample_data"
WIDE = {"COLUMNS": "250"}  # rich never wraps a row the tests read

CHAIR_ERGO_10 = [
    {"item": "BASE-STAR-5", "quantity": "11", "unit": "pcs", "flush": "pre"},
    {"item": "GAS-LIFT-100", "quantity": "11", "unit": "pcs", "flush": "pre"},
    {"item": "ARMREST-PAIR", "quantity": "10", "unit": "pcs", "flush": "post"},
    {"item": "BACKREST-MESH", "quantity": "10", "unit": "pcs", "flush": "post"},
    {"item": "CASTOR-50", "quantity": "53", "unit": "pcs", "flush": "post"},
    {"item": "SCREW-M6", "quantity": "125", "unit": "pcs", "flush": "post"},
    {"item": "SEAT-ASSY", "quantity": "10", "unit": "pcs", "flush": "post"},
    {"item": "CARTON-CH", "quantity": "10", "unit": "pcs", "flush": "manual"},
    {"item": "GREASE-LI", "quantity": "0.168", "unit": "kg", "flush": "manual"},
]


def explode(runner: CliRunner, app: typer.Typer, *args: str, data: Path = SAMPLE_DATA):
    return runner.invoke(app, ["bom", "explode", *args, "--data", str(data)], env=WIDE)


@pytest.mark.parametrize("data", [SAMPLE_DATA, SAMPLE_DATA / "csv"], ids=["yaml", "csv"])
def test_json_lists_every_component_per_flush_point_with_exact_decimal_strings(
    runner: CliRunner, cli_app: typer.Typer, data: Path
) -> None:
    result = explode(runner, cli_app, "--item", "CHAIR-ERGO", "--qty", "10", "--format", "json", data=data)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == CHAIR_ERGO_10


def test_json_of_one_chair_rounds_the_screw_sum_once(runner: CliRunner, cli_app: typer.Typer) -> None:
    """One chair: SCREW-M6 8 x 1.05 + 1.02 x 4 = 12.48 -> 13 (not 9 + 5); GREASE-LI 1.02 x 0.0165 = 0.01683
    -> 0.017 kg; CASTOR-50 1.02 x 5.15 = 5.253 -> 6."""
    result = explode(runner, cli_app, "--item", "CHAIR-ERGO", "--qty", "1", "--format", "json")

    by_item = {line["item"]: line for line in json.loads(result.stdout)}
    assert by_item["SCREW-M6"] == {"item": "SCREW-M6", "quantity": "13", "unit": "pcs", "flush": "post"}
    assert by_item["GREASE-LI"]["quantity"] == "0.017"
    assert by_item["CASTOR-50"]["quantity"] == "6"


def test_a_stocked_subassembly_explodes_to_its_own_components(runner: CliRunner, cli_app: typer.Typer) -> None:
    """SEAT-ASSY x 3: SEAT-SHELL 3 x 1.01 = 3.03 -> 4; FOAM-PU 3 x 1.25 x 1.05 = 3.9375 -> 3.938 kg (half-up);
    FABRIC-MESH 3 x 0.8 x 1.10 = 2.64 -> 2.640 m; SCREW-M6 3 x 6 x 1.02 = 18.36 -> 19."""
    result = explode(runner, cli_app, "--item", "SEAT-ASSY", "--qty", "3", "--format", "json")

    assert json.loads(result.stdout) == [
        {"item": "FABRIC-MESH", "quantity": "2.640", "unit": "m", "flush": "pre"},
        {"item": "FOAM-PU", "quantity": "3.938", "unit": "kg", "flush": "pre"},
        {"item": "SEAT-SHELL", "quantity": "4", "unit": "pcs", "flush": "pre"},
        {"item": "SCREW-M6", "quantity": "19", "unit": "pcs", "flush": "post"},
    ]


def test_table_groups_the_components_by_flush_point(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = explode(runner, cli_app, "--item", "CHAIR-ERGO", "--qty", "10", "--format", "table")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "CHAIR-ERGO x 10 pcs: 9 components to consume"
    pre = next(n for n, line in enumerate(lines) if line.startswith("pre: at release"))
    post = next(n for n, line in enumerate(lines) if line.startswith("post: at completion"))
    manual = next(n for n, line in enumerate(lines) if line.startswith("manual: never flushed"))
    assert pre < post < manual

    def row(item: str) -> tuple[int, list[str]]:
        n, line = next((n, line) for n, line in enumerate(lines) if line.startswith(f"{item} "))
        return n, [cell.strip() for cell in line.split("│")]

    assert row("BASE-STAR-5") == (row("BASE-STAR-5")[0], ["BASE-STAR-5", "11", "pcs", "BASE-KIT > BASE-STAR-5"])
    assert pre < row("BASE-STAR-5")[0] < post
    assert post < row("SCREW-M6")[0] < manual
    assert row("SCREW-M6")[1] == ["SCREW-M6", "125", "pcs", "BASE-KIT > SCREW-M6; SCREW-M6"]
    assert row("GREASE-LI")[0] > manual
    assert row("GREASE-LI")[1] == ["GREASE-LI", "0.168", "kg", "BASE-KIT > GREASE-LI"]
    assert not any(line.startswith("BASE-KIT ") for line in lines), "a phantom is never consumed as itself"


def test_table_is_the_default_format(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = explode(runner, cli_app, "--item", "CHAIR-ERGO", "--qty", "10")

    assert result.exit_code == 0
    assert result.stdout.startswith("CHAIR-ERGO x 10 pcs")


def test_unknown_item_is_one_error_line_and_exit_code_2(runner: CliRunner, cli_app: typer.Typer) -> None:
    result = explode(runner, cli_app, "--item", "CHAIR-GOLD", "--qty", "10", "--format", "json")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: unknown item CHAIR-GOLD (BOM path CHAIR-GOLD)\n"


@pytest.mark.parametrize(
    ("qty", "message"),
    [
        ("10.5", "error: CHAIR-ERGO is counted in pcs with at most 0 decimal(s); 10.5 has more (BOM path CHAIR-ERGO)"),
        ("0", "error: quantity of CHAIR-ERGO must be positive, got 0 (BOM path CHAIR-ERGO)"),
        ("ten", "error: --qty must be a decimal number, got 'ten'"),
    ],
)
def test_a_quantity_the_item_cannot_have_is_refused(
    runner: CliRunner, cli_app: typer.Typer, qty: str, message: str
) -> None:
    result = explode(runner, cli_app, "--item", "CHAIR-ERGO", "--qty", qty)

    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_a_cyclic_bom_file_is_refused_with_its_path_and_file(
    runner: CliRunner, cli_app: typer.Typer, tmp_path: Path
) -> None:
    (tmp_path / "items.yaml").write_text(
        "items:\n  - {code: A, unit: pcs}\n  - {code: B, unit: pcs}\n  - {code: C, unit: pcs}\n"
    )
    (tmp_path / "boms.yaml").write_text(
        "boms:\n"
        "  - {parent: A, lines: [{component: B, quantity_per: 1}]}\n"
        "  - {parent: B, lines: [{component: C, quantity_per: 1}]}\n"
        "  - {parent: C, lines: [{component: A, quantity_per: 1}]}\n"
    )

    result = explode(runner, cli_app, "--item", "A", "--qty", "1", data=tmp_path)

    assert result.exit_code == 2
    assert result.stderr.strip() == "error: the BOM of A contains itself: A > B > C > A (in boms.yaml)"


def test_root_main_turns_an_escaping_domain_error_into_one_line_and_exit_code_2(
    cli_app: typer.Typer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`main()` is the installed `backflush` script: it registers the commands and catches `BackflushError`."""
    monkeypatch.setattr("sys.argv", ["backflush", "bom", "explode", "--item", "NOPE", "--qty", "1",
                                     "--data", str(SAMPLE_DATA)])

    with pytest.raises(SystemExit) as exited:
        root_cli.main()

    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unknown item NOPE (BOM path NOPE)"
