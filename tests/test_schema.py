"""The JSON Schema in ``schemas/`` matches the models, and every shipped example is valid."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema  # a test dependency: missing, these tests fail rather than skip
import pytest

from dapctl.cli.inspect_commands import config_schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schemas" / "dapctl.schema.json"
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def test_schema_file_matches_the_models(run_cli):
    result = run_cli("config-schema")

    assert result.code == 0
    assert result.stdout.rstrip("\n") == SCHEMA_FILE.read_text(encoding="utf-8").rstrip("\n"), (
        "schemas/dapctl.schema.json is out of date with the config models; regenerate it with "
        "`dapctl config-schema > schemas/dapctl.schema.json`"
    )


def test_schema_text_is_the_command_output(run_cli):
    assert run_cli("config-schema").stdout == config_schema_text() + "\n"


def test_schema_describes_the_whole_file():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "dapctl config"
    assert set(schema["properties"]) == {
        "settings", "retry", "profiles", "targets", "databases", "notify"
    }  # fmt: skip
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["profiles", "targets"]


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"quickstart.toml", "single-institution.toml"}


def environ_for(example: Path) -> dict[str, str]:
    """A value for every variable the example's profiles name, and the DAP_* fallbacks."""
    raw = tomllib.loads(example.read_text(encoding="utf-8"))
    environ = {"DAP_CLIENT_ID": "dap-id", "DAP_CLIENT_SECRET": "dap-secret"}
    for profile in raw.get("profiles", {}).values():
        for key in ("client_id_env", "client_secret_env"):
            if key in profile:
                environ[profile[key]] = f"value-of-{profile[key]}"
    return environ


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_validate(example, run_cli):
    result = run_cli("validate", str(example), environ=environ_for(example))

    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"{example}: valid (")
    assert result.stderr == ""


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_the_json_schema(example):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    jsonschema.validate(tomllib.loads(example.read_text(encoding="utf-8")), schema)


@pytest.mark.parametrize(
    "bad",
    [
        {
            "profiles": {"a": {"emulator": True}},
            "targets": [{"name": "c", "tables": ["x"], "formt": "csv"}],
        },
        {
            "profiles": {"a": {"emulator": True}},
            "targets": [{"name": "c", "tables": ["x"], "format": "xml"}],
        },
        pytest.param(
            {"profiles": {"A": {"emulator": True}}, "targets": [{"name": "c", "tables": ["x"]}]},
        ),
        {"profiles": {"a": {"emulator": True}}, "targets": [{"name": "c", "tables": "some"}]},
        {"profiles": {"a": {"emulator": True}}},
    ],
    ids=["unknown-key", "bad-enum", "bad-profile-name", "bad-tables", "no-targets"],
)
def test_the_json_schema_refuses_what_the_models_refuse(bad):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
