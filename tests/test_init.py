"""``dapctl init``: a commented starter config that validates once its variables are set."""

from __future__ import annotations

import stat
import tomllib

from dapctl.cli.starter import STARTER

CREDS = {"DAP_CLIENT_ID": "us-east-1#abc", "DAP_CLIENT_SECRET": "s3cr3t-value"}


def test_init_writes_a_valid_commented_config(tmp_path, run_cli):
    path = tmp_path / "dapctl.toml"

    result = run_cli("init", str(path))

    assert result.code == 0 and f"Wrote {path}" in result.stdout
    assert path.read_text() == STARTER and STARTER.count("\n#") > 10
    assert stat.S_IMODE(path.stat().st_mode) & 0o600 == 0o600
    missing = run_cli("validate", str(path))
    assert missing.code == 1 and "DAP_CLIENT_ID" in missing.stderr
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
