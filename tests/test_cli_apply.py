"""``dapctl apply`` and ``dapctl token`` end to end through ``main(argv)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dapctl.api.auth import jwt_expiry
from tests.apply_helpers import config_text, environ

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_apply_json_document(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli("apply", str(path), "--json", environ=environ(emu))
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    first = document["results"][0]
    assert set(first) >= {
        "address",
        "profile",
        "target",
        "namespace",
        "table",
        "kind",
        "status",
        "job_id",
        "at",
        "since",
        "until",
        "schema_version",
        "files",
        "bytes",
        "records",
        "error",
    }
    assert first["address"] == "univ_a/core/canvas.accounts"
    assert first["status"] == "ok" and first["kind"] == "snapshot" and first["error"] is None
    assert Path(first["files"][0]).is_absolute() and Path(first["files"][0]).exists()


def test_apply_text_output_and_failure_exit_status(make_emulator, write_config, run_cli):
    emu = make_emulator()
    emu.faults.fail_table("canvas", "users")
    path = write_config(config_text(emu))
    result = run_cli("apply", str(path), environ=environ(emu))
    assert result.code == 1
    assert "ok      univ_a/core/canvas.accounts  snapshot" in result.stdout
    assert "failed  univ_a/core/canvas.users" in result.stdout
    assert "error uuid" in result.stdout
    assert "Apply finished with failures: 1 failed, 1 ok" in result.stdout


def test_apply_then_plan_shows_incrementals(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    assert run_cli("apply", str(path), environ=environ(emu)).code == 0
    plan = run_cli("plan", str(path), "--json", environ=environ(emu))
    actions = {s["address"]: (s["action"], s["since"]) for s in json.loads(plan.stdout)["steps"]}
    since = emu.now.isoformat().replace("+00:00", "Z")
    assert actions["univ_a/core/canvas.accounts"] == ("incremental", since)


def test_apply_selects_by_target(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli(
        "apply", str(path), "--json", "--target", "*/canvas.users", environ=environ(emu)
    )
    assert [r["table"] for r in json.loads(result.stdout)["results"]] == ["users"]


def test_apply_locked_state_exits_1_naming_the_holder(make_emulator, write_config, run_cli):
    from dapctl.loading import load_config
    from dapctl.state import LocalStateStore

    emu = make_emulator()
    path = write_config(config_text(emu))
    with LocalStateStore(load_config(path).state_path).lock(timeout=0, command="other"):
        result = run_cli("apply", str(path), environ=environ(emu))
    assert result.code == 1
    assert "locked by pid" in result.stderr and "--lock-timeout" in result.stderr


def test_token_prints_only_a_valid_token(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli("token", str(path), "--profile", "univ_a", environ=environ(emu))
    assert result.code == 0 and result.stderr == ""
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and jwt_expiry(token) is not None


def test_token_defaults_to_the_only_profile(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli("token", str(path), environ=environ(emu))
    assert result.code == 0, result.stderr
    assert jwt_expiry(result.stdout.strip()) is not None
    two = write_config(config_text(emu) + "\n[profiles.demo]\nemulator = true\n", name="two.toml")
    result = run_cli("token", str(two), environ=environ(emu))
    assert result.code == 1 and "say which with --profile: univ_a, demo" in result.stderr


def test_token_for_an_unknown_profile(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    result = run_cli("token", str(path), "--profile", "nope", environ=environ(emu))
    assert result.code == 1 and "no such profile" in result.stderr


def test_bad_credentials_fail_with_a_hint_and_no_secret(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    wrong = {"TEST_DAP_SECRET": "wrong-secret-value-123"}
    result = run_cli("apply", str(path), "--debug", environ=wrong)
    assert result.code == 1
    assert "client ID and secret" in result.stdout + result.stderr
    assert "wrong-secret-value-123" not in result.stdout + result.stderr
    token = run_cli("token", str(path), "--profile", "univ_a", environ=wrong)
    assert token.code == 1 and token.stdout == ""
    assert "wrong-secret-value-123" not in token.stderr


def test_apply_output_never_shows_secret_or_token(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))
    printed = run_cli("token", str(path), "--profile", "univ_a", environ=environ(emu))
    assert printed.code == 0, printed.stderr
    token = printed.stdout
    for args in (["apply", str(path), "--debug"], ["apply", str(path), "--json", "--debug"]):
        result = run_cli(*args, environ=environ(emu))
        seen = result.stdout + result.stderr
        # A run that failed early proves nothing: it must have logged in and exported.
        assert result.code == 0, seen
        assert emu.credentials[1] not in seen
        assert token.strip().split(".")[2] not in seen  # the JWT's signature


def test_quickstart_example_runs_against_the_embedded_emulator(tmp_path, run_cli):
    config = tmp_path / "quickstart.toml"
    shutil.copy(EXAMPLES / "quickstart.toml", config)
    first = run_cli("apply", str(config), "--json")
    assert first.code == 0, first.stderr
    results = json.loads(first.stdout)["results"]
    assert len(results) == 4 and all(r["kind"] == "snapshot" for r in results)
    assert all(Path(r["files"][0]).is_relative_to(tmp_path / "out") for r in results)
    second = run_cli("apply", str(config), "--json")
    assert second.code == 0, second.stderr
    assert {r["kind"] for r in json.loads(second.stdout)["results"]} == {"incremental"}
