"""Master data from files: items, BOMs, initial stock, negative-stock policies and inspection plans.

A directory holds either YAML files (`items.yaml`, `boms.yaml`, `stock.yaml`, `policies.yaml`, `inspection.yaml`)
or CSV files with the same names (`items.csv`, `boms.csv` with one row per BOM line, `stock.csv`, `policies.csv`
with `*` for the global policy, `inspection.csv`); `items` and `boms` are required, the others optional (no
stock, policy `park`, no inspection plans). `load_master_data(directory)` turns them into domain values.

Numbers are read as exact decimals: the YAML loader never makes a float (`0.015` is `Decimal("0.015")`).
A file that cannot be read as master data raises `MasterDataFileError` naming the file and the entry; a value
the domain refuses raises the domain's own error (`CyclicBomError`, `UnknownFlushPointError`, ...) with a note
naming the file and the entry.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from backflush_shared.errors import BackflushError

from backflush_manufacturer.domain import (
    STANDARD_UNITS,
    Bom,
    BomCatalogue,
    BomLine,
    DuplicateDefinitionError,
    FlushPoint,
    InspectionPlan,
    Item,
    LedgerMovement,
    NegativeStockPolicy,
    Receipt,
    StockLedger,
    StockPolicies,
    Unit,
    UnknownUnitError,
    receive_all,
)
from backflush_manufacturer.domain.bom import parents_by_component, path_from_top
from backflush_manufacturer.domain.ledger import DEFAULT_LOCATION

T = TypeVar("T")

FILES = ("items", "boms", "stock", "policies", "inspection")


class MasterDataFileError(BackflushError):
    """A master-data file that cannot be read: missing, malformed, or with a field that is missing or unreadable."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class MasterData:
    """Everything the files describe, as domain values."""

    catalogue: BomCatalogue
    receipts: tuple[Receipt, ...] = ()
    policies: StockPolicies = field(default_factory=StockPolicies)
    inspection_plans: Mapping[str, InspectionPlan] = field(default_factory=lambda: MappingProxyType({}))

    def initial_movements(self) -> tuple[LedgerMovement, ...]:
        """The ledger movements of the initial stock, in file order (which is the lots' receipt order)."""
        return receive_all(self.catalogue, StockLedger(), self.receipts)

    def ledger(self) -> StockLedger:
        """A ledger holding the initial stock."""
        return StockLedger.from_movements(self.initial_movements())


def load_master_data(directory: str | Path) -> MasterData:
    """Load a directory of YAML files, or else of CSV files (whichever has `items`)."""
    directory = Path(directory)
    if (directory / "items.yaml").is_file():
        return load_yaml_directory(directory)
    if (directory / "items.csv").is_file():
        return load_csv_directory(directory)
    raise MasterDataFileError(str(directory), "no items.yaml or items.csv in this directory")


# -- YAML ---------------------------------------------------------------------------------------------------------


class _DecimalLoader(yaml.SafeLoader):
    """A safe YAML loader that reads every number with a fraction as a Decimal, never as a float."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(None, None, f"not a decimal number: {text!r}", node.start_mark)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def load_yaml_directory(directory: str | Path) -> MasterData:
    directory = Path(directory)
    documents = {name: _read_yaml(directory / f"{name}.yaml", required=name in ("items", "boms")) for name in FILES}

    items_doc = documents["items"]
    units = _units(
        (f"items.yaml: units[{n}]", entry) for n, entry in enumerate(_list(items_doc, "units", "items.yaml"))
    )
    rows = []
    for where, bom in _entries(_list(documents["boms"], "boms", "boms.yaml"), "boms.yaml: boms"):
        _check_fields(where, bom, required=("parent", "lines"))
        for line_where, line in _entries(bom["lines"], f"{where}.lines"):
            rows.append((line_where, {"parent": bom["parent"], **line}))
    parents = _parents(rows)
    items = [
        _item(where, entry, units, parents)
        for where, entry in _entries(_list(items_doc, "items", "items.yaml"), "items.yaml: items")
    ]
    receipts = [
        _receipt(where, entry, n)
        for n, (where, entry) in enumerate(
            _entries(_list(documents["stock"], "receipts", "stock.yaml"), "stock.yaml: receipts"), start=1
        )
    ]
    policies_doc = documents["policies"] or {}
    if not isinstance(policies_doc, Mapping):
        raise MasterDataFileError("policies.yaml", "expected a mapping with `default` and `overrides`")
    _check_fields("policies.yaml", policies_doc, optional=("default", "overrides"))
    overrides = policies_doc.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise MasterDataFileError("policies.yaml", "`overrides` must map items to policies")
    policies = _noted(
        "policies.yaml",
        lambda: StockPolicies(
            NegativeStockPolicy.parse(policies_doc.get("default", "park")),
            {str(item): NegativeStockPolicy.parse(policy, item=str(item)) for item, policy in overrides.items()},
        ),
    )
    plan_entries = _list(documents["inspection"], "plans", "inspection.yaml")
    plans = [_plan(where, entry) for where, entry in _entries(plan_entries, "inspection.yaml: plans")]
    return _assemble(items, rows, receipts, policies, plans, source="boms.yaml")


def _read_yaml(path: Path, *, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise MasterDataFileError(str(path), "file is missing")
        return None
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        raise MasterDataFileError(str(path), f"not valid YAML: {error}") from None


def _list(document: Any, key: str, file: str) -> list[Any]:
    if document is None:
        return []
    if not isinstance(document, Mapping):
        raise MasterDataFileError(file, f"expected a mapping with a `{key}` list at the top")
    value = document.get(key) or []
    if not isinstance(value, list):
        raise MasterDataFileError(file, f"`{key}` must be a list")
    return value


def _entries(entries: Any, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(entries, list):
        raise MasterDataFileError(prefix, "expected a list")
    for n, entry in enumerate(entries):
        where = f"{prefix}[{n}]"
        if not isinstance(entry, Mapping):
            raise MasterDataFileError(where, "expected a mapping")
        yield where, entry


# -- CSV ----------------------------------------------------------------------------------------------------------


def load_csv_directory(directory: str | Path) -> MasterData:
    directory = Path(directory)
    units = dict(STANDARD_UNITS)
    if (directory / "units.csv").is_file():
        units = _units(_read_csv(directory / "units.csv", required=True))
    rows = list(_read_csv(directory / "boms.csv", required=True))
    parents = _parents(rows)
    items = [_item(where, row, units, parents) for where, row in _read_csv(directory / "items.csv", required=True)]
    receipts = [
        _receipt(where, row, n) for n, (where, row) in enumerate(_read_csv(directory / "stock.csv"), start=1)
    ]
    default = NegativeStockPolicy.PARK
    overrides: dict[str, NegativeStockPolicy] = {}
    for where, row in _read_csv(directory / "policies.csv"):
        _check_fields(where, row, required=("item", "policy"))
        item = _text(where, row, "item")
        policy = _noted(where, lambda: NegativeStockPolicy.parse(row["policy"], item=item))
        if item == "*":
            default = policy
        else:
            overrides[item] = policy
    plans = [_plan(where, row) for where, row in _read_csv(directory / "inspection.csv")]
    return _assemble(items, rows, receipts, StockPolicies(default, overrides), plans, source="boms.csv")


def _read_csv(path: Path, *, required: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        if required:
            raise MasterDataFileError(str(path), "file is missing")
        return
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        for row in reader:
            if None in row:
                raise MasterDataFileError(f"{path.name} line {reader.line_num}", "more values than columns")
            values = {key.strip(): (value or "").strip() for key, value in row.items()}
            yield f"{path.name} line {reader.line_num}", {key: value for key, value in values.items() if value != ""}


# -- both formats -------------------------------------------------------------------------------------------------


def _assemble(
    items: Sequence[Item],
    rows: Sequence[tuple[str, Mapping[str, Any]]],
    receipts: Sequence[Receipt],
    policies: StockPolicies,
    plans: Sequence[InspectionPlan],
    *,
    source: str,
) -> MasterData:
    lines: dict[str, list[BomLine]] = {}
    parents = _parents(rows)
    for where, row in rows:
        _check_fields(where, row, required=("parent", "component", "quantity_per"), optional=("scrap_factor", "flush"))
        parent = _text(where, row, "parent")
        component = _text(where, row, "component")
        lines.setdefault(parent, []).append(
            _noted(
                where,
                lambda: BomLine(
                    component,
                    _decimal(where, row, "quantity_per"),
                    _decimal(where, row, "scrap_factor", default=Decimal(0)),
                    FlushPoint.parse(row.get("flush", "post"), item=component,
                                     path=path_from_top(parents, parent) + (component,)),
                ),
            )
        )
    catalogue = _noted(source, lambda: BomCatalogue(items, (Bom(parent, tuple(ls)) for parent, ls in lines.items())))
    plan_map: dict[str, InspectionPlan] = {}
    for plan in plans:
        if plan.item in plan_map:
            raise DuplicateDefinitionError("inspection plan", item=plan.item)
        plan_map[plan.item] = plan
    # a receipt naming no location lands where the item's flushes take it from, as a ComponentsReceived does
    by_code = {item.code: item for item in items}
    receipts = [r if r.location else replace(r, location=(by_code[r.item].supply_location if r.item in by_code
                                                          else None) or DEFAULT_LOCATION)
                for r in receipts]
    return MasterData(catalogue, tuple(receipts), policies, MappingProxyType(plan_map))


def _units(entries: Any) -> dict[str, Unit]:
    units = dict(STANDARD_UNITS)
    for where, entry in entries:
        _check_fields(where, entry, required=("code", "decimals"))
        decimals = _decimal(where, entry, "decimals")
        if decimals != decimals.to_integral_value():
            raise MasterDataFileError(where, f"decimals must be a whole number, got {decimals}")
        code = _text(where, entry, "code")
        units[code] = _noted(where, lambda: Unit(code, int(decimals)), wrap=ValueError)
    return units


def _parents(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """Which parents use each component, from the raw BOM rows (read before anything is validated, so that every
    refusal can name the BOM path from the top)."""
    return parents_by_component((str(row["parent"]), str(row["component"])) for _where, row in rows
                                if isinstance(row, Mapping) and "parent" in row and "component" in row)


def _item(where: str, entry: Mapping[str, Any], units: Mapping[str, Unit],
          parents: Mapping[str, Sequence[str]] | None = None) -> Item:
    _check_fields(where, entry, required=("code", "unit"), optional=("phantom", "description", "supply_location"))
    code = _text(where, entry, "code")
    unit_code = _text(where, entry, "unit")
    if unit_code not in units:
        error = UnknownUnitError(unit_code, item=code, known=sorted(units), path=path_from_top(parents or {}, code))
        error.add_note(f"in {where}")
        raise error
    return _noted(
        where,
        lambda: Item(code, units[unit_code], _bool(where, entry, "phantom"), str(entry.get("description", "")),
                     entry.get("supply_location") or None),
        wrap=ValueError,
    )


def _receipt(where: str, entry: Mapping[str, Any], number: int) -> Receipt:
    _check_fields(where, entry, required=("item", "lot", "quantity"), optional=("location",))
    return Receipt(
        f"initial-stock-{number}",
        _text(where, entry, "item"),
        _text(where, entry, "lot"),
        _decimal(where, entry, "quantity"),
        location=_text(where, entry, "location", default=""),  # "": the item's supply location (see _assemble)
    )


def _plan(where: str, entry: Mapping[str, Any]) -> InspectionPlan:
    _check_fields(where, entry, required=("item", "rule"), optional=("reason",))
    item = _text(where, entry, "item")
    return _noted(where, lambda: InspectionPlan(item, entry["rule"], str(entry.get("reason", ""))))


def _check_fields(
    where: str, entry: Mapping[str, Any], *, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> None:
    for name in required:
        if entry.get(name) in (None, ""):
            raise MasterDataFileError(where, f"missing field `{name}`")
    unknown = sorted(set(map(str, entry)) - set(required) - set(optional))
    if unknown:
        expected = ", ".join([*required, *optional])
        raise MasterDataFileError(where, f"unknown field(s) {', '.join(unknown)}; expected {expected}")


def _text(where: str, entry: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
    value = entry.get(name, default)
    if value is None or isinstance(value, (Mapping, list)):
        raise MasterDataFileError(where, f"field `{name}` must be text")
    return str(value).strip()


def _decimal(where: str, entry: Mapping[str, Any], name: str, *, default: Decimal | None = None) -> Decimal:
    value = entry.get(name, default)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            pass
        else:
            if number.is_finite():
                return number
    raise MasterDataFileError(where, f"field `{name}` must be a decimal number, got {value!r}")


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}


def _bool(where: str, entry: Mapping[str, Any], name: str) -> bool:
    value = entry.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise MasterDataFileError(where, f"field `{name}` must be true or false, got {value!r}")


def _noted(where: str, build: Callable[[], T], *, wrap: type[Exception] | None = None) -> T:
    """Build a domain value; a domain error keeps its type and gains a note naming the file and entry."""
    try:
        return build()
    except BackflushError as error:
        if not isinstance(error, MasterDataFileError):
            error.add_note(f"in {where}")
        raise
    except Exception as error:
        if wrap is not None and isinstance(error, wrap):
            raise MasterDataFileError(where, str(error)) from None
        raise
