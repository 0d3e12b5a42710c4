"""Manufacturer commands (filled in below)."""

from __future__ import annotations

import typer


def build_cli() -> typer.Typer:
    return typer.Typer()
