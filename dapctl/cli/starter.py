"""The starter config ``dapctl init`` writes: every section, commented, valid as it stands.

The file names its credentials through the official client's variables (``DAP_CLIENT_ID``,
``DAP_CLIENT_SECRET``), so it validates as soon as those are set, and holds no secret itself
(mode 0644 is fine). ``write_starter`` never overwrites: an existing file is an error.
Missing folders on the way are created 0700; ``sub/`` means ``sub/dapctl.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from dapctl.budgets import BUDGETS
from dapctl.errors import ConfigError
from dapctl.files import ensure_private_dir

_TEMPLATE = """\
# dapctl config: which DAP tables to export, for which institutions, into which files.
# Check it:   dapctl validate dapctl.toml
# Preview:    dapctl plan dapctl.toml
# Run it:     dapctl apply dapctl.toml      (from cron, CI or by hand; it resumes itself)
# Reference:  the README's "A config file" section; `dapctl config-schema` for editors.

[settings]                            # every key is optional
state = "dapctl.state.json"           # watermarks; relative to this file's folder
# state = "postgresql://dapctl@db.example.edu/dapctl"   # instead: in PostgreSQL, for CI pods
#                                     # and many workers at once; no password here (PGPASSWORD,
#                                     # ~/.pgpass); pip install 'dapctl[postgresql]'.
#                                     # Or "s3://bucket/dapctl/" (pip install 'dapctl[s3]')
concurrency = 4                       # tables downloaded at once
# refresh_margin = 300                # renew a token this many seconds before it expires
# on_snapshot_required = "snapshot"   # or "fail", when an incremental window is gone

[retry]                               # every key is optional
attempts = 5
initial_backoff = 1.0                 # seconds, doubling with jitter
max_backoff = 60.0

# One profile per institution (or credential). Never write a secret here: name the
# environment variable or the file (chmod 600) that holds it.
[profiles.main]
client_id_env = "DAP_CLIENT_ID"           # e.g. us-east-1#0123abcd-...
client_secret_env = "DAP_CLIENT_SECRET"
# client_secret_file = "secrets/main.secret"   # instead of client_secret_env
# base_url = "https://api-gateway.instructure.com"
{rate_limits}

# Try dapctl offline first: a profile that starts the built-in emulator, no credentials.
# [profiles.demo]
# emulator = true

# What to export. Each target runs for every profile unless `profiles` says otherwise.
[[targets]]
name = "core"
# profiles = ["main"]
namespace = "canvas"                  # canvas, canvas_logs, catalog, new_quizzes, ...
tables = ["accounts", "courses", "enrollments", "users"]   # or "all"
format = "jsonl"                      # jsonl, csv, tsv or parquet
sync = "incremental"                  # a snapshot first, then only the changes
# since = 2026-01-01T00:00:00Z        # first run: changes since then instead of a snapshot
output = "data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz"
# output = "s3://bucket/canvas/{profile}/{table}/{kind}-{timestamp}.{format}.gz"   # instead:
#                                     # objects in a bucket (pip install 'dapctl[s3]'; AWS
#                                     # credentials from the environment, never from here)

# Tables kept in a database instead of files: a snapshot, then changes merged in.
# pip install 'dapctl[postgresql]' (or 'dapctl[mysql]', or 'dapctl[duckdb]' for a DuckDB file).
# [databases.warehouse]
# url = "postgresql://dapctl@db.example.edu/canvas"  # or mysql://…, duckdb:///w.duckdb
#
# [[targets]]
# name = "warehouse"
# tables = ["accounts", "courses", "enrollments", "users"]
# database = "warehouse"              # add output = "..." to keep files as well
"""

WIDTH = 92  # as the hand-written lines around it


def rate_limits_lines() -> str:
    """The commented ``rate_limits`` line: every budget at DAP's limit, wrapped."""
    lines, line = [], "# rate_limits = {"
    for budget in BUDGETS:
        pair = f" {budget.key} = {budget.per_minute},"
        if len(line) + len(pair) > WIDTH:
            lines.append(line)
            line = "#" + " " * 16
        line += pair
    return "\n".join([*lines, line[:-1] + " }"])


# Not str.format: the template's output patterns hold braces of their own.
STARTER = _TEMPLATE.replace("{rate_limits}", rate_limits_lines())


def write_starter(given: str | Path) -> Path:
    """Write the starter config at ``given``; never overwrite. A folder, or a path ending in
    a separator (``sub/``), gets ``dapctl.toml`` inside; missing folders are created 0700."""
    text = str(given)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / "dapctl.toml"
    try:
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists; dapctl init never overwrites a file",
            hint="pick another path, or move the file away first",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create it: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(STARTER)
    return path
