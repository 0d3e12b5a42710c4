"""The domain core imports the standard library and `backflush_shared.errors` only."""

import ast
import sys
from pathlib import Path

import backflush_manufacturer.domain as domain

ALLOWED = {"backflush_shared.errors"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_domain_imports_nothing_but_the_standard_library_and_the_shared_errors():
    package = Path(domain.__file__).parent
    foreign = {
        (path.name, module)
        for path in package.glob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] not in sys.stdlib_module_names
        and not module.startswith("backflush_manufacturer.domain")
        and module not in ALLOWED
    }
    assert foreign == set()
