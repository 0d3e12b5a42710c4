"""The warehouse's repository owns every SQL statement: handlers keep the decisions and call it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import backflush_warehouse

PACKAGE = Path(backflush_warehouse.__file__).parent
USE_CASES = ("handlers.py", "stock_sales.py", "layout.py", "queries.py")


def sql_in(source: str) -> list[str]:
    """What in `source` builds or runs SQL itself: an import of SQLAlchemy or of the tables, a `.execute(` call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] == "sqlalchemy" and node.module != "sqlalchemy.ext.asyncio"
                or node.module.endswith("adapters.tables")):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "sqlalchemy" for alias in node.names):
            found.append(f"line {node.lineno}: import sqlalchemy")
        elif isinstance(node, ast.Attribute) and node.attr == "execute":
            found.append(f"line {node.lineno}: .execute")
    return found


@pytest.mark.parametrize("module", USE_CASES)
def test_warehouse_use_cases_hold_no_sql_of_their_own(module: str) -> None:
    assert sql_in((PACKAGE / module).read_text()) == []


def test_a_statement_built_in_a_handler_is_found() -> None:
    assert sql_in("from sqlalchemy import select\nasync def f(s):\n    await s.execute(select(1))\n") == [
        "line 1: from sqlalchemy import ...", "line 3: .execute"]
