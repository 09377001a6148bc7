"""The README's claims stay true: its test command is what CI runs, and every test its
Guarantees section points at exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readmes_test_command():
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci


def test_every_guarantee_points_at_a_test_that_exists():
    section = README[README.index("## Guarantees") : README.index("## Performance")]
    files = re.findall(r"`(tests/[\w/]+\.py)", section)
    names = re.findall(r"::(test_\w+)", section)
    assert files and names
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    assert [f for f in files if not (ROOT / f).is_file()] == []
    assert [n for n in names if f"def {n}(" not in sources] == []
