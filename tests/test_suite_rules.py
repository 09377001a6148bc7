"""The test suite's own rules, checked on its source (issue 21, item 7).

Fixtures are shared through plugins registered in ``tests/conftest.py``, never by importing a
conftest as a module: pytest counts each module-level re-binding as a fixture of its own, so
a session fixture (a throwaway PostgreSQL cluster) was set up once per file that re-bound it.
Whether this is a CI run is decided in one place, ``tests/needs.py``. Tests that inject time
use ``tests/clock.FakeClock``, not a one-element list read by a lambda; freezegun stays only
where the code under test takes no clock and the test must show that Python's wall clock is
not the one used.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

TESTS = Path(__file__).resolve().parent

#: where freezegun stays, and why FakeClock cannot stand in there
FREEZEGUN = {
    "test_leases.py": "lease times come from PostgreSQL's now(): freezing Python's shows it",
    "test_state_postgres.py": "lock and row times come from PostgreSQL's now(), likewise",
    "test_operate.py": "`dapctl status` ages the data by the command line's wall clock",
    "test_saved_plans.py": "a saved plan's age is the command line's wall clock",
    "databases/test_lake_iceberg.py": "snapshot times are stamped by pyiceberg's own clock",
}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(TESTS.rglob("*.py")):
        name = path.relative_to(TESTS).as_posix()
        yield name, ast.parse(path.read_text(encoding="utf-8"), filename=name)


def imported(tree: ast.Module) -> Iterator[str]:
    """Every dotted name an import statement in ``tree`` brings in."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield from (f"{node.module or ''}.{alias.name}" for alias in node.names)
            yield node.module or ""


def test_no_test_module_imports_a_conftest():
    found = [
        (name, dotted)
        for name, tree in modules()
        for dotted in imported(tree)
        if "conftest" in dotted.split(".")
    ]
    assert found == [], "use the fixtures by name; share them through a plugin in conftest.py"


def test_only_tests_needs_reads_the_ci_variable():
    found = [
        name
        for name, tree in modules()
        if name not in ("needs.py", "test_needs.py", "test_suite_rules.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "CI"
    ]
    assert found == [], "call tests.needs.unavailable(what, why) instead"


def _is_cell_read(node: ast.AST) -> TypeGuard[ast.Lambda]:
    """``lambda: cell[0]``: a clock read from a one-element list."""
    return (
        isinstance(node, ast.Lambda)
        and not node.args.args
        and isinstance(node.body, ast.Subscript)
        and isinstance(node.body.value, ast.Name)
        and isinstance(node.body.slice, ast.Constant)
        and node.body.slice.value == 0
    )


def test_no_test_keeps_its_clock_in_a_one_element_list():
    found = [
        (name, node.lineno)
        for name, tree in modules()
        for node in ast.walk(tree)
        if _is_cell_read(node)
    ]
    assert found == [], "use tests.clock.FakeClock (fake.clock, fake.utc, fake.tick)"


def test_freezegun_is_used_only_where_no_clock_can_be_passed():
    found = {
        name for name, tree in modules() if "freezegun" in {d.split(".")[0] for d in imported(tree)}
    }
    assert found == {name for name in FREEZEGUN if (TESTS / name).exists()}
