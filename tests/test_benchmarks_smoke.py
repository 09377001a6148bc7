"""The benchmark harness (issue 7) still runs: ``benchmarks/run.py --quick`` at tiny sizes
prints a table with every scenario's rows. No timing is asserted; the figures are the
benchmark's business, not the test suite's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
DAP = Path(sys.executable).with_name("dap")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DAP.exists(), reason="scenario 3 needs instructure-dap-client"),
]


def test_quick_run_prints_a_row_for_every_scenario(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAP_")}
    result = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--out", str(tmp_path / "results.md")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| scenario | measure | median | min | max |")
    # Scenario 6, like 5, needs PostgreSQL at 127.0.0.1:5432 (its workers' shared state);
    # scenario 7 needs MariaDB (or MySQL) at 127.0.0.1:3306 and `dap`'s aiomysql.
    for scenario in ("| 1. ", "| 2. ", "| 3. ", "| 4. ", "| 6. ", "| 7. "):
        assert any(row.startswith(scenario) for row in rows), f"no {scenario!r} row"
    assert "ratio to lower bound" in result.stdout
    assert "dapctl / raw" in result.stdout
    assert "dap / dapctl" in result.stdout
    assert "dapctl / LOAD DATA" in result.stdout
    assert "dapctl plan peak RSS" in result.stdout
    assert "large tables (CPU)" in result.stdout and "tables (quota)" in result.stdout
    saved = (tmp_path / "results.md").read_text()
    assert "cores" in saved and "Python" in saved
