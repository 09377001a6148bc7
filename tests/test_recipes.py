"""Every recipe in examples/ is checked: configs validate, and every dapctl command line in
a cron table, systemd unit, Kubernetes manifest, CI workflow or script parses with dapctl's
own parser (PyYAML is not a dependency: YAML files get a structural check)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dapctl.cli import build_parser
from tests.apply_helpers import config_text, environ

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
        "multi-institution.toml",
        "cron.txt",
        "systemd/dapctl.service",
        "systemd/dapctl.timer",
        "kubernetes/cronjob.yaml",
        "ci/github-actions.yml",
        "load/duckdb.sql",
        "load/postgresql.sql",
        "load/load-postgresql.sh",
        "README.md",
    }
    present = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*")
        if p.is_file() and "out" not in p.relative_to(EXAMPLES).parts
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
    assert any(a[0] == "apply" and "--log-file" in a for a in commands)


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


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postgresql_loader_feeds_psql_each_file_written(make_emulator, write_config, tmp_path):
    emu = make_emulator()
    path = write_config(
        config_text(emu, output="data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz")
    )
    script = EXAMPLES / "load" / "load-postgresql.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for args in dapctl_commands(script.read_text()):
        assert_parses([a.replace('"$config"', "c.toml").replace("$config", "c.toml") for a in args])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A stand-in psql records what it is fed; dapctl is the real one.
    (bin_dir / "psql").write_text('#!/bin/sh\n{ echo "ARGS $*"; cat; } >> "$PSQL_LOG"\n')
    (bin_dir / "dapctl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dapctl "$@"\n')
    for name in ("psql", "dapctl"):
        os.chmod(bin_dir / name, 0o700)
    log = tmp_path / "psql.log"
    env = {
        **os.environ,
        **environ(emu),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PSQL_LOG": str(log),
    }

    done = subprocess.run(
        ["sh", str(script), str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    fed = log.read_text()
    assert fed.count("ARGS --quiet -v ON_ERROR_STOP=1 -v table=dap_univ_a_canvas_") == 2
    assert "-v snapshot=true" in fed
    assert (
        "COPY dap_changes (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02');"
        in fed
    )
    assert '{"key": {"id": ' in fed or '{"key":{"id":' in fed
    assert "\n\\.\n" in fed and "ON CONFLICT (key) DO UPDATE" in fed and fed.count("COMMIT;") == 2


def test_duckdb_recipe(make_emulator, write_config, tmp_path):
    sql = (EXAMPLES / "load" / "duckdb.sql").read_text()
    assert "read_json(" in sql and "data/univ_a/canvas/accounts/*.jsonl.gz" in sql
    duckdb = pytest.importorskip("duckdb")
    from tests.apply_helpers import apply, expected_rows

    emu = make_emulator()
    path = write_config(
        config_text(emu, output="data/{profile}/{namespace}/{table}/{kind}-{timestamp}.{format}.gz")
    )
    assert all(r.status == "ok" for r in apply(path, emu))
    emu.advance(60)
    emu.change("canvas", "accounts", inserts=3, updates=4, deletes=2)
    emu.advance(60)
    assert all(r.status == "ok" for r in apply(path, emu))
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        con = duckdb.connect()
        con.execute(sql).fetchall()
        ids = {row[0] for row in con.sql("SELECT id FROM accounts").fetchall()}
    finally:
        os.chdir(cwd)
    expected = expected_rows(emu.expected_snapshot("canvas", "accounts"))
    assert ids == {json.loads(k)["id"] for k in expected}


def test_readme_shows_the_quickstart_plan_as_dapctl_prints_it(tmp_path, run_cli):
    config = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", config)
    readme = (EXAMPLES.parent / "README.md").read_text()
    plan = run_cli("plan", str(config))
    assert plan.code == 0 and plan.stdout.strip() in readme
