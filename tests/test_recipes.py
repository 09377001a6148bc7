"""Every recipe in examples/ is checked: configs validate, and every dapctl command line in
a cron table, systemd unit, Kubernetes manifest, CI workflow or script parses with dapctl's
own parser (PyYAML is not a dependency: YAML files get a structural check; nor is Airflow:
the DAG is parsed with ast, not run). The loading scripts in examples/load/ run end to end:
dapctl against the emulator, then the real psql and PostgreSQL at 127.0.0.1:5432
(``pg_url`` from tests/postgres_fixtures.py), or DuckDB."""

from __future__ import annotations

import ast
import configparser
import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from dapctl.cli import build_parser
from dapctl.emulator import Emulator
from tests.apply_helpers import GENEROUS, SECRET_VAR, apply, config_text, environ, expected_rows
from tests.needs import unavailable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PREFIX = re.compile(r"^\s*(?:-\s+)?(?:run:\s*|ExecStart=|(?:[\d*/,-]+\s+){5})")


def dapctl_commands(text: str) -> list[list[str]]:
    """The argument lists of every ``dapctl`` command in shell-like text."""
    commands = []
    logical = text.replace("\\\n", " ")
    for line in logical.splitlines():
        if line.strip().startswith("#") or "dapctl" not in line:
            continue
        lexer = shlex.shlex(PREFIX.sub("", line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|<>()"):
                if segment and Path(segment[0]).name == "dapctl":
                    args = segment[1:]
                    if args and args[-1].isdigit() and token[0] in "<>":  # "2" of "2>&1"
                        args = args[:-1]
                    commands.append(args)
                segment = []
            else:
                segment.append(token)
    return commands


def assert_parses(args: list[str]) -> None:
    try:
        build_parser().parse_args(args)
    except SystemExit:  # pragma: no cover - the message went to stderr
        pytest.fail(f"not a valid dapctl command line: dapctl {shlex.join(args)}")


def validate(run_cli, path: Path, env: dict[str, str]) -> None:
    result = run_cli("validate", str(path), environ=env)
    assert result.code == 0, result.stderr


def test_every_example_is_covered_here():
    covered = {
        "quickstart.toml",
        "single-institution.toml",
        "warehouse.toml",
        "postgresql.toml",
        "lake.toml",
        "multi-institution.toml",
        "cron.txt",
        "systemd/dapctl.service",
        "systemd/dapctl.timer",
        "kubernetes/cronjob.yaml",
        "kubernetes/workers.yaml",
        "airflow/dapctl_dag.py",
        "ci/github-actions.yml",
        "load/dapfiles.py",
        "load/duckdb_load.py",
        "load/postgresql.sql",
        "load/load-postgresql.sh",
        "README.md",
    }
    present = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*")
        if p.is_file() and not {"out", "__pycache__"} & set(p.relative_to(EXAMPLES).parts)
    }
    assert present <= covered, present - covered


def test_the_extractor_finds_commands():
    text = (
        "15 2 * * * cd /srv/dapctl && /opt/bin/dapctl apply c.toml --json > r.json 2>&1\n# dapctl x"
    )
    assert dapctl_commands(text) == [["apply", "c.toml", "--json"]]


def test_database_target_recipes(run_cli):
    validate(run_cli, EXAMPLES / "warehouse.toml", {})
    validate(
        run_cli, EXAMPLES / "postgresql.toml", {"UNIV_A_CLIENT_ID": "id", "UNIV_A_SECRET": "s"}
    )


def test_the_lake_recipe_runs_and_a_delta_reader_reads_it(run_cli, tmp_path):
    """Copied out of the tree (its out/ folder is the copy's), applied twice against the
    emulator, read back by delta-rs: the second apply merges, the record moves on."""
    from deltalake import DeltaTable

    recipe = tmp_path / "lake.toml"
    recipe.write_text((EXAMPLES / "lake.toml").read_text())
    for _ in range(2):
        done = run_cli("apply", str(recipe))
        assert done.code == 0, done.stderr
    users = DeltaTable(str(tmp_path / "out" / "lake" / "canvas" / "users"))
    assert users.to_pyarrow_table().num_rows > 0
    assert [c["dapctl.record"] for c in users.history() if "dapctl.record" in c]


def test_single_institution(run_cli):
    validate(
        run_cli,
        EXAMPLES / "single-institution.toml",
        {"UNIV_A_CLIENT_ID": "id", "UNIV_A_SECRET": "s"},
    )


def test_multi_institution_switches_profiles(run_cli):
    env = {
        f"{p}_{k}": "x" for p in ("UNIV_A", "UNIV_B", "COLLEGE_C") for k in ("CLIENT_ID", "SECRET")
    }
    path = EXAMPLES / "multi-institution.toml"
    validate(run_cli, path, env)
    plan = json.loads(run_cli("plan", str(path), "--json", environ=env).stdout)
    addresses = {s["address"] for s in plan["steps"]}
    assert {
        "univ_a/core/canvas.users",
        "univ_b/core/canvas.users",
        "college_c/core/canvas.users",
    } <= addresses
    assert (
        "univ_b/quizzes/new_quizzes.*" in addresses
        and "college_c/quizzes/new_quizzes.*" not in addresses
    )
    assert {a for a in addresses if "/catalog/" in a} == {"college_c/catalog/catalog.courses"}


def test_cron_lines():
    text = (EXAMPLES / "cron.txt").read_text()
    entries = [e for e in text.splitlines() if e.strip() and not e.lstrip().startswith("#")]
    assert entries and all(len(e.split()) > 5 for e in entries)
    commands = dapctl_commands(text)
    assert len(commands) == len(entries)
    for args in commands:
        assert_parses(args)
    assert any(a[0] == "apply" and "--log-file" in a and "--metrics-file" in a for a in commands)
    assert any(a[0] == "status" for a in commands)


def test_systemd_units():
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read(EXAMPLES / "systemd" / "dapctl.service")
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(EXAMPLES / "systemd" / "dapctl.timer")
    assert service["Service"]["Type"] == "oneshot"
    assert "EnvironmentFile" in service["Service"]
    [args] = dapctl_commands("ExecStart=" + service["Service"]["ExecStart"])
    assert_parses(args)
    assert args[0] == "apply" and "--no-progress" in args
    assert (
        timer["Timer"]["Persistent"] == "true" and timer["Install"]["WantedBy"] == "timers.target"
    )


def test_kubernetes_cronjob_mounts_secrets_as_files(run_cli, tmp_path):
    text = (EXAMPLES / "kubernetes" / "cronjob.yaml").read_text()
    assert "\t" not in text
    documents = [d for d in text.split("\n---\n")[1:] if d.strip()]
    kinds = [re.search(r"^kind: (\w+)$", d, re.M).group(1) for d in documents]  # type: ignore[union-attr]
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "CronJob"]
    assert all(re.search(r"^apiVersion: \S+$", d, re.M) for d in documents)
    assert "concurrencyPolicy: Forbid" in text and "secretName: dapctl-credentials" in text
    command = json.loads(re.search(r"command: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    args = json.loads(re.search(r"args: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    assert command == ["dapctl"]
    assert_parses(args)
    # The embedded config validates once its secret file exists where it is mounted.
    block = re.search(r"dapctl\.toml: \|\n((?:    .*\n|\n)+)", text).group(1)  # type: ignore[union-attr]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "univ_a-secret").write_text("s3cret\n")
    os.chmod(secrets / "univ_a-secret", stat.S_IRUSR)
    config = textwrap.dedent(block).replace("/var/run/secrets/dapctl", str(secrets))
    path = tmp_path / "dapctl.toml"
    path.write_text(config)
    validate(run_cli, path, {"UNIV_A_CLIENT_ID": "us-east-1#x"})
    assert "/etc/dapctl/dapctl.toml" in args and "mountPath: /etc/dapctl" in text
    assert "mountPath: /var/run/secrets/dapctl" in text


def embedded_config(text: str, tmp_path: Path) -> Path:
    """The manifest's ConfigMap ``dapctl.toml``, its secret files made where it reads them."""
    block = re.search(r"dapctl\.toml: \|\n((?:    .*\n|\n)+)", text).group(1)  # type: ignore[union-attr]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in re.findall(r"/var/run/secrets/dapctl/([\w-]+)", block):
        (secrets / name).write_text("s3cret\n")
        os.chmod(secrets / name, stat.S_IRUSR)
    path = tmp_path / "dapctl.toml"
    path.write_text(textwrap.dedent(block).replace("/var/run/secrets/dapctl", str(secrets)))
    return path


def env_from(text: str, name: str) -> str:
    """The ``valueFrom`` source of the container variable ``name``, as text."""
    found = re.search(rf"- name: {name}\b.*\n\s+valueFrom:\n((?:\s+\w+:.*\n){{2,3}})", text)
    assert found, f"{name} is not set from a secret or field"
    return found.group(1)


def test_kubernetes_workers_share_a_postgresql_state(run_cli, tmp_path, pg_url):
    text = (EXAMPLES / "kubernetes" / "workers.yaml").read_text()
    assert "\t" not in text
    documents = [d for d in text.split("\n---\n")[1:] if d.strip()]
    kinds = [re.search(r"^kind: (\w+)$", d, re.M).group(1) for d in documents]  # type: ignore[union-attr]
    assert kinds == ["ConfigMap", "CronJob"]
    assert all(re.search(r"^apiVersion: \S+$", d, re.M) for d in documents)
    # A work queue of N pods, one Job at a time, stopped by a deadline.
    assert re.search(r"^  concurrencyPolicy: Forbid\b", text, re.M)
    assert re.search(r"^      parallelism: [2-9]\d*\b", text, re.M)
    assert not re.search(r"^\s*completions:", text, re.M)
    assert re.search(r"^      activeDeadlineSeconds: \d+", text, re.M)
    assert re.search(r"^          restartPolicy: Never\b", text, re.M)
    # One round per Job, from its name; the state URL and its password from a Secret.
    assert re.search(
        r"fieldPath: metadata\.labels\['(?:batch\.kubernetes\.io/)?job-name'\]",
        env_from(text, "DAPCTL_ROUND"),
    )
    config = embedded_config(text, tmp_path)
    state_var = re.search(r'^state_env = "(\w+)"', config.read_text(), re.M).group(1)  # type: ignore[union-attr]
    assert re.search(r"^lease_seconds = \d+", config.read_text(), re.M)
    assert not re.search(r"^state = ", config.read_text(), re.M)
    assert "secretKeyRef:" in env_from(text, state_var)
    assert "secretKeyRef:" in env_from(text, "PGPASSWORD")
    ids = re.findall(r'client_id_env = "(\w+)"', config.read_text())
    assert ids and all("secretKeyRef:" in env_from(text, var) for var in ids)
    assert "mountPath: /var/run/secrets/dapctl" in text and "mountPath: /etc/dapctl" in text
    command = json.loads(re.search(r"command: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    args = json.loads(re.search(r"args: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    assert command == ["dapctl"] and args[:2] == ["apply", "/etc/dapctl/dapctl.toml"]
    assert_parses(args)
    assert args[args.index("--log-format") + 1] == "json"
    # The config works as the pods run it: its state in PostgreSQL, through state_env.
    env = {var: "us-east-1#x" for var in ids}
    validate(run_cli, config, env)
    planned = run_cli("plan", str(config), "--json", environ={**env, state_var: pg_url})
    assert planned.code == 0, planned.stderr
    steps = json.loads(planned.stdout)["steps"]
    assert {s["profile"] for s in steps} == {"univ_a", "univ_b"} and len(steps) == 10
    unset = run_cli("plan", str(config), environ=env)
    assert unset.code == 1 and state_var in unset.stderr


def airflow_commands(tree: ast.AST) -> list[list[str]]:
    """Every ``["dapctl", ...]`` list in the DAG, its names filled in with sample values."""
    sample = {"CONFIG": ["dapctl.toml"], "profile": ["univ_a"]}
    starred = {"targets": ["--target", "univ_a/core/canvas.users"]}
    commands = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.List) and len(node.elts) > 1):  # not tags=["dapctl"]
            continue
        first = node.elts[0]
        if not (isinstance(first, ast.Constant) and first.value == "dapctl"):
            continue
        args: list[str] = []
        for elt in node.elts[1:]:
            if isinstance(elt, ast.Constant):
                args.append(elt.value)
            elif isinstance(elt, ast.Starred):
                args.extend(starred[elt.value.id])  # type: ignore[attr-defined]
            else:
                args.extend(sample[elt.id])  # type: ignore[attr-defined]
        commands.append(args)
    return commands


def test_airflow_dag_plans_then_maps_one_pooled_task_per_profile(tmp_path, run_cli):
    path = EXAMPLES / "airflow" / "dapctl_dag.py"
    tree = ast.parse(path.read_text(), str(path))
    compile(tree, str(path), "exec")
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import)]
    assert any(getattr(n, "module", "").startswith("airflow") for n in imports)
    commands = airflow_commands(tree)
    for args in commands:
        assert_parses(args)
    [plan] = [c for c in commands if c[0] == "plan"]
    [apply] = [c for c in commands if c[0] == "apply"]
    [status] = [c for c in commands if c[0] == "status"]  # the freshness check after
    assert len(commands) == 3 and "--json" in status
    assert "--json" in plan and {"--json", "--profile", "--target"} <= set(apply)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(isinstance(c.func, ast.Attribute) and c.func.attr == "expand" for c in calls)
    [pool] = [k.value for c in calls for k in c.keywords if k.arg == "pool"]
    assert isinstance(pool, ast.JoinedStr)
    assert ast.unparse(pool) == "f'dap_{profile}'"
    source = path.read_text()
    assert '"DAPCTL_ROUND": get_current_context()["run_id"]' in source
    assert "airflow pools set dap_" in source  # how to create the pools
    # The plan document has what the DAG reads of it.
    config = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", config)
    steps = json.loads(run_cli("plan", str(config), "--json").stdout)["steps"]
    assert steps and all({"address", "profile"} <= set(s) for s in steps)
    for key in ('"steps"', '"address"', '"profile"'):
        assert f"[{key}]" in source


def test_ci_workflow():
    text = (EXAMPLES / "ci" / "github-actions.yml").read_text()
    assert "\t" not in text
    for key in ("on:", "jobs:", "schedule:", "steps:"):
        assert re.search(rf"^\s*{key}", text, re.M), key
    commands = dapctl_commands(text)
    assert [c[0] for c in commands] == ["validate", "plan", "apply"]
    for args in commands:
        assert_parses(args)
    assert "secrets.UNIV_A_SECRET" in text


def test_readme_shows_the_quickstart_plan_as_dapctl_prints_it(tmp_path, run_cli):
    config = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", config)
    readme = (EXAMPLES.parent / "README.md").read_text()
    plan = run_cli("plan", str(config))
    assert plan.code == 0 and plan.stdout.strip() in readme


# --- The load recipes (examples/load/): files an apply wrote, into PostgreSQL or DuckDB. ---

LOAD = EXAMPLES / "load"
DEFAULT_LAYOUT = "data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz"


def real_psql() -> str:
    """The machine's psql; CI must have it, elsewhere the test says why it cannot run."""
    found = shutil.which("psql") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), reverse=True)), None
    )
    if found is None:
        unavailable(
            "the psql client", "load-postgresql.sh runs it (apt-get install postgresql-client)"
        )
    return found


class Loader:
    """Runs load-postgresql.sh as cron would: real dapctl, real psql, PG* variables."""

    def __init__(self, emu: Emulator, config: Path, url: str) -> None:
        self.config, self.url = config, url
        bin_dir = config.parent / "bin"
        bin_dir.mkdir()
        (bin_dir / "psql").symlink_to(real_psql())
        (bin_dir / "dapctl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dapctl "$@"\n')
        os.chmod(bin_dir / "dapctl", 0o700)
        parts = urlsplit(url)
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env = {
            **keep,
            **environ(emu),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PGHOST": parts.hostname or "",
            "PGPORT": str(parts.port or 5432),
            "PGUSER": parts.username or "",
            "PGDATABASE": parts.path.lstrip("/"),
        }

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(LOAD / "load-postgresql.sh"), str(self.config)],
            cwd=self.config.parent,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )

    def query(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(query).fetchall()  # type: ignore[arg-type]

    def ledger(self) -> dict[str, Any]:
        if self.query("SELECT to_regclass('dap_loaded_files')") == [(None,)]:
            return {}
        return dict(self.query("SELECT path, loaded_at FROM dap_loaded_files"))

    def rows(self, table: str) -> dict[str, Any]:
        found = self.query(f"SELECT key, value FROM dap_univ_a_canvas_{table}")  # noqa: S608
        return {json.dumps(key, sort_keys=True): value for key, value in found}


def written(root: Path) -> set[str]:
    return {p.relative_to(root / "data").as_posix() for p in (root / "data").rglob("*.gz")}


def assert_current(loader: Loader, emu: Emulator) -> None:
    for table in ("accounts", "users"):
        expected = expected_rows(emu.expected_snapshot("canvas", table))
        assert loader.rows(table) == expected, table


def test_postgresql_loader_catches_up_after_a_failed_load(make_emulator, write_config, pg_url):
    script = LOAD / "load-postgresql.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    for args in dapctl_commands(script.read_text()):
        assert_parses([a.replace("$config", "c.toml") for a in args])
    emu = make_emulator()
    path = write_config(config_text(emu, output=DEFAULT_LAYOUT))
    loader = Loader(emu, path, pg_url)

    # The apply moves the watermarks, then psql cannot reach the database.
    failed = loader.run(PGDATABASE=f"dapctl_missing_{uuid.uuid4().hex[:8]}")
    assert failed.returncode != 0 and "nothing loaded" in failed.stderr
    first = written(path.parent)
    assert len(first) == 2 and loader.ledger() == {}

    emu.advance(60)
    emu.change("canvas", "accounts", inserts=3, updates=4, deletes=2)
    emu.change("canvas", "users", inserts=1, updates=2, deletes=1)
    emu.advance(60)
    caught_up = loader.run()
    assert caught_up.returncode == 0, caught_up.stderr
    loaded = [line for line in caught_up.stdout.splitlines() if line.startswith("loaded ")]
    assert len(loaded) == 4 and len(written(path.parent)) == 4
    assert_current(loader, emu)
    ledger = loader.ledger()
    assert set(ledger) == written(path.parent)

    emu.advance(60)
    emu.change("canvas", "users", updates=3)
    emu.advance(60)
    third = loader.run()
    assert third.returncode == 0, third.stderr
    [new] = written(path.parent) - set(ledger)
    assert [line for line in third.stdout.splitlines() if line.startswith("loaded ")] == [
        f"loaded {path.parent / 'data' / new} into dap_univ_a_canvas_users"
    ]
    assert loader.ledger() == {**ledger, new: loader.ledger()[new]}  # the rest untouched
    assert_current(loader, emu)


def test_postgresql_loader_stops_a_table_at_its_first_failure(make_emulator, write_config, pg_url):
    emu = make_emulator()
    path = write_config(config_text(emu, output=DEFAULT_LAYOUT))
    loader = Loader(emu, path, pg_url)
    assert loader.run().returncode == 0
    with psycopg.connect(pg_url) as conn:  # users refuses every write until the trigger goes
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON dap_univ_a_canvas_users "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    stuck: list[str] = []
    for _ in range(2):
        emu.advance(60)
        emu.change("canvas", "accounts", inserts=1, updates=1)
        emu.change("canvas", "users", inserts=1, updates=2, deletes=1)
        emu.advance(60)
        done = loader.run()
        stuck = sorted(f for f in written(path.parent) - set(loader.ledger()))
        assert done.returncode != 0
        assert stuck and all("/users/incremental-" in f for f in stuck)
        assert done.stderr.count("failed to load") == 1 and stuck[0] in done.stderr
        assert all(f not in done.stdout + done.stderr for f in stuck[1:])  # never over a gap
    assert len(stuck) == 2
    assert loader.rows("accounts") == expected_rows(emu.expected_snapshot("canvas", "accounts"))

    with psycopg.connect(pg_url) as conn:
        conn.execute("DROP TRIGGER refuse ON dap_univ_a_canvas_users")
    done = loader.run()
    assert done.returncode == 0, done.stderr
    assert set(loader.ledger()) == written(path.parent)
    assert_current(loader, emu)


def duckdb_load(root: Path, database: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOAD / "duckdb_load.py"), str(root), str(database)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def two_profiles(emu: Emulator, since: str) -> str:
    """univ_a and univ_b (the same emulator); accounts from ``since`` in JSON Lines, users
    from a snapshot in CSV, courses in Parquet."""
    more = f"""since = "{since}"

[[targets]]
name = "flat"
tables = ["users"]
format = "csv"

[[targets]]
name = "columnar"
tables = ["courses"]
format = "parquet"
output = "data/{{profile}}/{{namespace}}/{{table}}/{{kind}}-{{timestamp}}.parquet"
"""
    text = config_text(emu, tables='["accounts"]', output=DEFAULT_LAYOUT, extra_target=more)
    univ_b = f"""[profiles.univ_b]
base_url = "{emu.base_url}"
client_id = "{emu.credentials[0]}"
client_secret_env = "{SECRET_VAR}"
{GENEROUS}

"""
    return text.replace("[[targets]]", univ_b + "[[targets]]", 1)


def test_duckdb_loader_reads_since_csv_parquet_and_every_profile(
    make_emulator, write_config, tmp_path
):
    duckdb = pytest.importorskip("duckdb")
    emu = make_emulator()
    since = emu.now - timedelta(days=7)
    path = write_config(two_profiles(emu, since.isoformat()))
    for changes in (0, 1, 2):
        if changes:
            emu.advance(60)
            emu.change("canvas", "accounts", inserts=3, updates=4, deletes=2)
            emu.change("canvas", "users", inserts=2, updates=3, deletes=2)
            emu.change("canvas", "courses", inserts=1, updates=2, deletes=1)
            emu.advance(60)
        assert all(r.status == "ok" for r in apply(path, emu))
    accounts = sorted((tmp_path / "data" / "univ_a" / "canvas" / "accounts").iterdir())
    assert len(accounts) == 3 and all(p.name.startswith("incremental-") for p in accounts)

    done = duckdb_load(tmp_path / "data", tmp_path / "canvas.duckdb")

    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(tmp_path / "canvas.duckdb"), read_only=True)
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    profiles = ("univ_a", "univ_b")
    names = ("accounts", "users", "courses")
    assert tables == {f"{p}_canvas_{t}" for p in profiles for t in names}
    changed = emu.expected_changes("canvas", "accounts", since)
    assert any(r["meta"]["action"] == "D" for r in changed)
    columns = {
        "accounts": (["name", "workflow_state", "parent_account_id"], changed),
        "users": (
            ["name", "sortable_name", "email", "locale", "workflow_state"],
            emu.expected_snapshot("canvas", "users"),
        ),
        "courses": (["name", "course_code"], emu.expected_snapshot("canvas", "courses")),
    }
    for profile in profiles:
        for table, (names, records) in columns.items():
            expected = {
                r["key"]["id"]: tuple(r["value"].get(n) for n in names)
                for r in records
                if r["meta"]["action"] != "D"
            }
            query = f"SELECT id, {', '.join(names)} FROM {profile}_canvas_{table}"  # noqa: S608
            assert {row[0]: row[1:] for row in con.execute(query).fetchall()} == expected


def test_duckdb_loader_refuses_a_folder_of_mixed_formats(tmp_path):
    pytest.importorskip("duckdb")
    folder = tmp_path / "data" / "univ_a" / "canvas" / "accounts"
    folder.mkdir(parents=True)
    (folder / "snapshot-20261201T120000Z.jsonl").write_text('{"key":{"id":1},"meta":{}}\n')
    (folder / "incremental-20261201T130000Z.csv").write_text("meta.ts,key.id\nx,1\n")
    done = duckdb_load(tmp_path / "data", tmp_path / "canvas.duckdb")
    assert done.returncode == 1 and str(folder) in done.stderr and "nothing changed" in done.stderr


def test_load_recipes_pick_files_from_the_newest_snapshot_on(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("dapfiles", LOAD / "dapfiles.py")
    assert spec is not None and spec.loader is not None
    dapfiles = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dapfiles", dapfiles)  # its dataclass looks itself up
    spec.loader.exec_module(dapfiles)
    folder = tmp_path / "univ-a" / "canvas" / "accounts"
    folder.mkdir(parents=True)
    names = [
        "incremental-20261101T000000Z.jsonl.gz",  # a target with since: no snapshot first
        "snapshot-20261102T000000Z.jsonl.gz",
        "incremental-20261102T000000Z.jsonl.gz",  # same stamp: after the snapshot
        "incremental-20261103T000000Z.jsonl.gz",
        "notes.txt",
    ]
    for name in names:
        (folder / name).write_text("")
    [(table, files)] = dapfiles.table_folders(tmp_path).items()
    assert table == "univ_a_canvas_accounts"
    assert [f.path.name for f in files] == names[:4]
    assert [f.path.name for f in dapfiles.current(files)] == names[1:4]
    assert [f.path.name for f in dapfiles.current(files[:1])] == names[:1]
    assert [f.path.name for f in dapfiles.pending(files, files[2].order)] == names[3:4]
    assert dapfiles.pending(files, files[3].order) == []
