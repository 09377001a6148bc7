"""Shared helpers for the hardening suites: their scale, fast configs, and the invariants
every run keeps.

``SCALE`` comes from the ``DAPCTL_HARDENING_SCALE`` environment variable (a float, default 1,
read here and nowhere else); ``scaled(n)`` multiplies a suite's default size by it: soak
rounds and seeds, fuzzed examples, kill points. CI runs at 1; a long run, e.g.
``DAPCTL_HARDENING_SCALE=20 pytest tests/hardening -n 2``, digs deeper.

The invariants are the issue's (issue 5): the union of a table's output files, replayed in
watermark order, equals the emulator's data at the state's watermark; the state's files,
bytes, sha256 and records match the disk; no temporary file remains; no record version is
written twice; every final file is whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dapctl.emulator import Emulator
from dapctl.state import LocalStateStore, State, StepState
from tests.apply_helpers import GENEROUS, SECRET_VAR, expected_rows, read_jsonl, replay


def _scale() -> float:
    text = os.environ.get("DAPCTL_HARDENING_SCALE", "1")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"DAPCTL_HARDENING_SCALE must be a number, got {text!r}") from None
    if not 0 < value < float("inf"):  # also refuses nan
        raise ValueError(f"DAPCTL_HARDENING_SCALE must be above 0 and finite, got {text!r}")
    return value


SCALE = _scale()


def scaled(n: int) -> int:
    """``n`` (a suite's size at scale 1) times the scale, and never below 1."""
    return max(1, round(n * SCALE))


TEMP_SUFFIX = ".dapctl-tmp"
OUTPUT = "out/{profile}/{table}/{kind}-{timestamp}.{format}.gz"


def hardened_config(
    emu: Emulator,
    *,
    tables: Iterable[str],
    output: str = OUTPUT,
    attempts: int = 8,
    initial_backoff: float = 0.01,
    max_backoff: float = 0.05,
    settings: str = "",
    concurrency: int = 3,
) -> str:
    client_id, _ = emu.credentials
    return f"""
[settings]
state = "state/dapctl.state.json"
concurrency = {concurrency}
{settings}

[retry]
attempts = {attempts}
initial_backoff = {initial_backoff}
max_backoff = {max_backoff}

[profiles.univ_a]
base_url = "{emu.base_url}"
client_id = "{client_id}"
client_secret_env = "{SECRET_VAR}"
{GENEROUS}

[[targets]]
name = "core"
tables = {json.dumps(list(tables))}
format = "jsonl"
output = "{output}"
"""


def read_state(config: Path) -> State | None:
    return LocalStateStore(config.parent / "state" / "dapctl.state.json").read()


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(f"*{TEMP_SUFFIX}"))


def final_files(folder: Path) -> list[Path]:
    """Files under their final names (temporary ones start with ``.``), in chain order."""
    if not folder.exists():
        return []
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=chain_key)


def chain_key(path: Path) -> tuple[str, int]:
    # {kind}-{timestamp}...: compact UTC timestamps sort in time order; at one instant a
    # snapshot (its ``at``) comes before an incremental that ends there.
    kind, _, rest = path.name.partition("-")
    return rest.split(".", 1)[0], 0 if kind == "snapshot" else 1


def whole_gzip(path: Path, *, json_lines: bool = True) -> bool:
    """True when ``path`` is one or more complete gzip members (if ``.gz``) and, with
    ``json_lines``, valid JSON Lines."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else None
        if data is None:
            data = path.read_bytes()
        if not json_lines:
            return True
        for line in data.decode().splitlines():
            if line:
                json.loads(line)
    except (OSError, EOFError, zlib.error, ValueError):
        return False
    return True


def check_step_matches_disk(step: StepState, base: Path) -> None:
    """The state's record of a step's last file (relative to ``base``, the config's folder)
    matches the file on disk."""
    if not step.files:
        assert step.bytes == 0 and step.records == 0, step
        return
    (location,) = step.files
    assert not Path(location).is_absolute(), location
    file = base / location
    data = file.read_bytes()
    assert len(data) == step.bytes, (file, step.bytes, len(data))
    assert hashlib.sha256(data).hexdigest() == step.sha256, file
    assert len(read_jsonl(file)) == step.records, file


def check_chain(emu: Emulator, table: str, files: list[Path], step: StepState) -> None:
    """Replaying ``files`` gives the table at the step's watermark; no version twice."""
    chains = [read_jsonl(f) for f in files]
    if step.watermark is None:
        assert not files, files
        return
    want = expected_rows(emu.expected_snapshot("canvas", table, at=step.watermark))
    got = replay(chains)
    assert got == want, (table, len(got), len(want), sorted(set(got) ^ set(want))[:5])
    versions = Counter(
        (json.dumps(r["key"], sort_keys=True), r["meta"]["ts"])
        for records in chains
        for r in records
    )
    twice = [v for v, n in versions.items() if n > 1]
    assert not twice, (table, twice[:5])


def assert_no_temp_files(root: Path) -> None:
    left = temp_files(root)
    assert not left, left


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
