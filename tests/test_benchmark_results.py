"""``benchmarks/results.md`` opens with the current figures (issue 20, item 16): one row per
measure, the latest the history below records, with that run's date and machine. The
history is oldest first, so the latest figure of a measure is its last row there. Rows that
measured the code before a change (``..., before``) are history only."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.md"
CURRENT, HISTORY = "## Current figures", "## History, oldest first"


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[1:] if row]


def history_latest(history: str) -> dict[tuple[str, str], tuple[list[str], str, str]]:
    """Each measure's last row, with the date and machine of the run it sits in."""
    latest: dict[tuple[str, str], tuple[list[str], str, str]] = {}
    for section in re.split(r"^### ", history, flags=re.MULTILINE)[1:]:
        date = machine = "not recorded"
        for line in section.splitlines():
            if line.startswith("- date: "):
                date = line.removeprefix("- date: ").split(";")[0]
            elif line.startswith("- machine: "):
                machine = line.removeprefix("- machine: ")
            elif line.startswith("| ") and not line.startswith("| scenario |"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                if len(cells) == 9 and not cells[1].endswith(", before"):
                    latest[(cells[0], cells[1])] = (cells, date, machine)
    return latest


def test_the_current_table_holds_the_latest_figure_of_every_measure():
    text = RESULTS.read_text(encoding="utf-8")
    assert text.index(CURRENT) < text.index(HISTORY)
    current_text, history = text.split(HISTORY, 1)
    latest = history_latest(history)
    current = {(row[0], row[1]): row for row in table_rows(current_text.split(CURRENT, 1)[1])}

    assert set(current) == set(latest)
    for key, row in current.items():
        cells, date, machine = latest[key]
        assert row[:9] == cells, key
        assert row[9] == date, key
        cpu, kernel = re.match(r"\d+ cores \((.*?)\), Linux \S+-(v\d+)", machine).groups()
        assert ("Xeon" in cpu) == ("Xeon" in row[10]) and row[10].endswith(kernel), key
