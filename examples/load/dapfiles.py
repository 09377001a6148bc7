"""Find dapctl's output files under an output root, table by table, in the order they apply.

Used by load-postgresql.sh (``python3 dapfiles.py pending ROOT LEDGER``) and duckdb_load.py.
Standard library only. A table folder is any folder holding files named
``{kind}-{timestamp}.{format}[.gz]`` (the default template's last part); it is named by its
path under the root, ``data/univ_a/canvas/accounts`` under root ``data`` -> univ_a_canvas_accounts.
Files apply in (timestamp, snapshot before incremental) order. A table's current rows come
from its newest snapshot on, or from its first file when it never had one (a target with
``since`` starts with incrementals).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NAME = re.compile(r"^(snapshot|incremental)-(\d{8}T\d{6}Z)\.(jsonl|csv|tsv|parquet)(\.gz)?$")


class LayoutError(Exception):
    """The output root cannot be read as dapctl's table folders."""


@dataclass(frozen=True)
class DapFile:
    path: Path  # absolute
    rel: str  # relative to the output root, with / separators: the ledger's key
    kind: str  # snapshot | incremental
    stamp: str  # 20261201T120000Z
    format: str  # jsonl | csv | tsv | parquet

    @property
    def order(self) -> tuple[str, bool]:
        return (self.stamp, self.kind == "incremental")


def table_name(parts: tuple[str, ...]) -> str:
    """A SQL-safe name for a folder's path under the root: lower case, ``_`` between parts."""
    name = "_".join(re.sub(r"[^a-z0-9_]+", "_", part.lower()) for part in parts)
    return name.strip("_") or "root"


def table_folders(root: Path) -> dict[str, list[DapFile]]:
    """Every table folder under ``root`` by table name, each with its files in apply order."""
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder (the output root, e.g. data)")
    root = root.resolve()
    tables: dict[str, list[DapFile]] = {}
    folders: dict[str, Path] = {}
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        files = [_parse(root, Path(folder), name) for name in names]
        found = sorted((f for f in files if f is not None), key=lambda f: f.order)
        if not found:
            continue
        name = table_name(Path(folder).relative_to(root).parts)
        if name in folders:
            raise LayoutError(f"{folders[name]} and {folder} would both load into table {name}")
        folders[name] = Path(folder)
        tables[name] = found
    return tables


def _parse(root: Path, folder: Path, name: str) -> DapFile | None:
    match = NAME.match(name)
    if match is None:
        return None
    path = folder / name
    rel = path.relative_to(root).as_posix()
    return DapFile(path, rel, match.group(1), match.group(2), match.group(3))


def current(files: list[DapFile]) -> list[DapFile]:
    """The files that make a table's current rows: from the newest snapshot on."""
    snapshots = [i for i, f in enumerate(files) if f.kind == "snapshot"]
    return files[snapshots[-1] :] if snapshots else list(files)


def pending(files: list[DapFile], newest: tuple[str, bool] | None) -> list[DapFile]:
    """What is left to load after ``newest`` (the newest loaded file's order), in order."""
    return current([f for f in files if newest is None or f.order > newest])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_ledger(path: Path) -> dict[str, tuple[str, bool]]:
    """``table<TAB>stamp<TAB>kind`` lines (the newest loaded file of each table)."""
    newest = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            table, stamp, kind = line.split("\t")
            newest[table] = (stamp, kind == "incremental")
    return newest


def print_pending(root: Path, ledger: Path, prefix: str) -> None:
    """One line per file to load: table, kind, stamp, format, sha256, relative and full path."""
    newest = read_ledger(ledger)
    for name, files in table_folders(root).items():
        table = prefix + name
        for f in pending(files, newest.get(table)):
            fields = (table, f.kind, f.stamp, f.format, sha256(f.path), f.rel, str(f.path))
            if any("\t" in x or "\n" in x for x in fields):
                raise LayoutError(f"{f.path}: tabs and newlines in paths are not supported")
            print(*fields, sep="\t")


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "pending":
        print("usage: dapfiles.py pending ROOT LEDGER_TSV TABLE_PREFIX", file=sys.stderr)
        return 2
    try:
        print_pending(Path(argv[1]), Path(argv[2]), argv[3])
    except (LayoutError, OSError, ValueError) as exc:
        print(f"dapfiles.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
