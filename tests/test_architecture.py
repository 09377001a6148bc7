"""The README's "How it is built" section names the real modules, and every module is named.

Also holds the layering rule it states: the seams' packages never import the command line,
and the core never imports a backend module directly except through its factory.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dapctl"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## How it is built") : README.index("## Guarantees")]


def _named_modules() -> set[str]:
    """``dapctl/x.py`` rows, and ``dapctl/pkg/`` rows with their backticked members."""
    named: set[str] = set()
    for row in re.findall(r"^\| `(dapctl/[\w/.]+)` \|(.*)\|$", SECTION, re.M):
        path, text = row
        if path.endswith(".py"):
            named.add(path)
        elif path != "dapctl/emulator/":
            named.update(f"{path}{m}.py" for m in re.findall(r"`(\w+)`", text) if m.islower())
    return named


def _real_modules() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "emulator" not in p.parts and p.name not in ("__init__.py", "__main__.py")
    }


def test_the_module_map_names_exactly_the_real_modules():
    named, real = _named_modules(), _real_modules()
    assert sorted(named - real) == [], "the README names modules that do not exist"
    assert sorted(real - named) == [], "modules the README's map leaves out"


def test_the_flow_of_a_step_names_real_functions_and_classes():
    names = {
        "plan.plan": "def plan(",
        "jobs.JobStarter": "class JobStarter",
        "collect.collect": "def collect(",
        "outputs.destination.open_destination": "def open_destination(",
        "StepState.started": "def started(",
        "StepState.writing": "def writing(",
        "StepState.completed": "def completed(",
    }
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    for name, definition in names.items():
        assert f"`{name}`" in SECTION, name
        assert definition in sources, name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_below_the_command_line_imports_it():
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "cli" not in p.parts
        and p.name != "__main__.py"
        and any(m == "dapctl.cli" or m.startswith("dapctl.cli.") for m in _imports(p))
    ]
    assert offenders == []


def test_apply_reaches_backends_only_through_their_factories():
    used = _imports(PACKAGE / "apply.py") | _imports(PACKAGE / "jobs.py")
    backends = {"dapctl.state.local", "dapctl.state.memory", "dapctl.outputs.files"}
    assert used & backends == set()


def _reaches(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_state_imports_nothing_from_databases():
    """The PostgreSQL state shares only the leaves `dapctl.pg` and `dapctl.redaction` with the
    table backend, so a change to a table engine cannot break the state (issue 21)."""
    offenders = {
        p.relative_to(ROOT).as_posix()
        for p in (PACKAGE / "state").rglob("*.py")
        if any(_reaches(m, "dapctl.databases") for m in _imports(p))
    }
    assert sorted(offenders) == []


def test_the_shared_postgresql_leaves_import_no_backend():
    for leaf in ("pg.py", "redaction.py"):
        ours = {m for m in _imports(PACKAGE / leaf) if _reaches(m, "dapctl")}
        assert ours <= {"dapctl.errors", "dapctl.redaction"}, leaf


_CONCRETE = (
    "dapctl.databases",
    "dapctl.outputs.tables",
    "dapctl.outputs.records",
    "dapctl.emulator",
    "dapctl.wiring",
    *(
        f"dapctl.state.{backend}"
        for backend in (
            "local",
            "memory",
            "memory_leases",
            "postgres",
            "pg_leases",
            "pg_lock",
            "pg_schema",
            "pg_sends",
            "s3",
            "objects",
            "object_lock",
            "filelock",
        )
    ),
)


def _core_modules() -> list[Path]:
    """The flat core and the plan package: what apply, plan and the workers are made of."""
    return [
        *(p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")),
        *(PACKAGE / "plan").glob("*.py"),
    ]


def test_the_core_knows_the_seams_not_the_backends():
    """No core module imports a table engine, a concrete state backend, the records kept in
    databases, the emulator or the wiring that chooses them (issue 21, item 3)."""
    offenders = sorted(
        f"{p.relative_to(ROOT).as_posix()} imports {m}"
        for p in _core_modules()
        for m in _imports(p)
        if any(_reaches(m, concrete) for concrete in _CONCRETE)
    )
    assert offenders == []


def test_the_api_client_never_imports_the_emulator():
    """The embedded emulator is started by the wiring (``Connection.demo``), so the client a
    real run uses carries none of it."""
    offenders = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (PACKAGE / "api").glob("*.py")
        if any(_reaches(m, "dapctl.emulator") for m in _imports(p))
    )
    assert offenders == []


def _package_map(package: Path) -> set[str]:
    """The names a package's ``__init__`` docstring puts in backticks (single or double)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    return set(re.findall(r"`{1,2}(\w+)`{1,2}", doc or ""))


def _members(package: Path) -> set[str]:
    modules = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    packages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return modules | packages


def test_every_package_map_names_every_module():
    """``dapctl/__init__.py`` maps the core and the subpackages; each subpackage's
    ``__init__`` maps its modules. A module added without a line there fails here."""
    packages = [PACKAGE, *(p.parent for p in PACKAGE.glob("*/__init__.py"))]
    left_out = {
        package.relative_to(ROOT).as_posix(): sorted(_members(package) - _package_map(package))
        for package in packages
    }
    assert {k: v for k, v in left_out.items() if v} == {}


MAX_LINES = 350


def test_no_module_is_over_350_lines():
    """A module past this holds more than one concept: split it by concept (issue 21)."""
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
