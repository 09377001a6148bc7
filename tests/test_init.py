"""``dapctl init``: a commented starter config that validates once its variables are set."""

from __future__ import annotations

import stat
import tomllib

import pytest

from dapctl.cli.starter import STARTER

CREDS = {"DAP_CLIENT_ID": "us-east-1#abc", "DAP_CLIENT_SECRET": "s3cr3t-value"}


def test_init_writes_a_valid_commented_config(tmp_path, run_cli):
    path = tmp_path / "dapctl.toml"

    result = run_cli("init", str(path))

    assert result.code == 0 and f"Wrote {path}" in result.stdout
    assert path.read_text() == STARTER and STARTER.count("\n#") > 10
    assert stat.S_IMODE(path.stat().st_mode) & 0o600 == 0o600
    missing = run_cli("validate", str(path), "--require-credentials")
    assert missing.code == 1 and "DAP_CLIENT_ID" in missing.stderr
    warned = run_cli("validate", str(path))
    assert warned.code == 0 and "WARNING" in warned.stderr and "DAP_CLIENT_ID" in warned.stderr
    valid = run_cli("validate", str(path), environ=CREDS)
    assert valid.code == 0, valid.stderr
    assert valid.stdout == f"{path}: valid (1 profile, 1 target)\n"
    assert "s3cr3t" not in path.read_text()


def test_init_defaults_to_dapctl_toml_and_accepts_a_folder(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("init").code == 0 and (tmp_path / "dapctl.toml").exists()
    (tmp_path / "sub").mkdir()
    assert run_cli("init", str(tmp_path / "sub")).code == 0
    assert (tmp_path / "sub" / "dapctl.toml").read_text() == STARTER


def test_init_never_overwrites(tmp_path, run_cli):
    path = tmp_path / "dapctl.toml"
    path.write_text("# mine\n")
    result = run_cli("init", str(path))
    assert result.code == 1 and "already exists" in result.stderr
    assert path.read_text() == "# mine\n"


def test_the_commented_alternatives_are_valid_too(tmp_path, run_cli):
    # Uncommenting the emulator profile gives a config that runs with no credentials.
    text = STARTER.replace(
        "# [profiles.demo]\n# emulator = true", "[profiles.demo]\nemulator = true"
    )
    tomllib.loads(text)
    path = tmp_path / "demo.toml"
    path.write_text(text)
    assert run_cli("validate", str(path), environ=CREDS).code == 0


def test_init_creates_missing_folders_private(tmp_path, run_cli):
    # Issue "Tried as a new user would": `init exports/dapctl.toml` failed on a new folder.
    path = tmp_path / "exports" / "deeper" / "dapctl.toml"
    result = run_cli("init", str(path))
    assert result.code == 0, result.stderr
    assert path.read_text() == STARTER
    for folder in (tmp_path / "exports", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_init_of_a_path_ending_in_a_separator_writes_dapctl_toml_inside(tmp_path, run_cli):
    # It used to write a file named `sub`.
    result = run_cli("init", f"{tmp_path}/sub/")
    assert result.code == 0, result.stderr
    assert (tmp_path / "sub" / "dapctl.toml").read_text() == STARTER
    assert f"Wrote {tmp_path / 'sub' / 'dapctl.toml'}" in result.stdout


def test_log_file_in_a_missing_folder_is_created(tmp_path, run_cli):
    config = tmp_path / "dapctl.toml"
    assert run_cli("init", str(config)).code == 0
    log_file = tmp_path / "logs" / "x.jsonl"
    result = run_cli("validate", str(config), "--log-file", str(log_file), environ=CREDS)
    assert result.code == 0, result.stderr
    assert log_file.is_file() and stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def in_force(text: str, first: str, last: str | None = None, *, instead_of: str = "") -> str:
    """The starter with its commented lines from the one beginning ``# first`` to the one
    beginning ``# last`` uncommented, and the line beginning ``instead_of`` removed."""
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        inside = inside or line.startswith(f"# {first}")
        if inside:
            out.append(line.removeprefix("#").removeprefix(" "))
            inside = not line.startswith(f"# {last or first}")
        elif not (instead_of and line.startswith(instead_of)):
            out.append(line)
    assert out != lines, first
    return "\n".join(out) + "\n"


ALTERNATIVES = {
    "postgresql-state": lambda: in_force(
        STARTER, 'state = "postgresql://', instead_of='state = "dapctl.state.json"'
    ),
    "s3-state": lambda: STARTER.replace(
        'state = "dapctl.state.json"', 'state = "s3://bucket/dapctl/"'
    ),
    "s3-output": lambda: in_force(STARTER, 'output = "s3://', instead_of='output = "data/'),
    "database-target": lambda: in_force(STARTER, "[databases.warehouse]", "database = "),
}


@pytest.mark.parametrize("name", ALTERNATIVES)
def test_the_commented_state_output_and_database_examples_are_valid(name, tmp_path, run_cli):
    # Issue 20, item 13: the starter had no example of a database target, a bucket output or
    # a state kept in PostgreSQL or S3.
    assert '"s3://bucket/dapctl/"' in STARTER  # the S3 state the starter suggests
    alternative = ALTERNATIVES[name]()
    tomllib.loads(alternative)
    path = tmp_path / "alternative.toml"
    path.write_text(alternative)

    result = run_cli("validate", str(path), environ=CREDS)

    targets = "2 targets" if name == "database-target" else "1 target"
    assert result.code == 0, result.stderr
    assert result.stdout == f"{path}: valid (1 profile, {targets})\n"
