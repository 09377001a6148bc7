"""``dapctl tables`` and ``dapctl describe`` against the emulator, and schema flattening."""

from __future__ import annotations

import json

from dapctl.inspect import flatten
from tests.apply_helpers import config_text, environ

EMULATED = '[profiles.demo]\nemulator = true\n\n[[targets]]\nname = "core"\ntables = ["accounts"]\n'


def test_tables_lists_the_profiles_namespace(make_emulator, write_config, run_cli):
    emu = make_emulator()
    path = write_config(config_text(emu))

    text = run_cli("tables", str(path), "--profile", "univ_a", environ=environ(emu))
    as_json = run_cli("tables", str(path), "--json", environ=environ(emu))

    assert text.code == 0, text.stderr
    assert text.stdout.startswith("canvas: 6 tables (profile univ_a)\n  accounts\n")
    document = json.loads(as_json.stdout)
    assert document["profile"] == "univ_a" and "users" in document["namespaces"]["canvas"]


def test_tables_with_the_embedded_emulator_and_an_unknown_namespace(write_config, run_cli):
    path = write_config(EMULATED)
    result = run_cli("tables", str(path), "--namespace", "nosuch", "--json")
    assert result.code == 1
    assert "namespace not found" in result.stderr and "error uuid" in result.stderr
    assert json.loads(result.stdout)["ok"] is False
    assert json.loads(result.stdout)["error"]["uuid"]


def test_several_profiles_need_profile(write_config, run_cli):
    path = write_config(EMULATED + "\n[profiles.other]\nemulator = true\n")
    result = run_cli("tables", str(path))
    assert result.code == 1 and "say which with --profile: demo, other" in result.stderr
    result = run_cli("tables", str(path), "--profile", "nope")
    assert result.code == 1 and "no such profile" in result.stderr


def test_describe_text_json_and_output_file(write_config, run_cli, tmp_path):
    path = write_config(EMULATED)

    text = run_cli("describe", str(path), "canvas.accounts")
    as_json = run_cli("describe", str(path), "canvas.accounts", "--json")
    out = tmp_path / "schemas" / "accounts.json"
    (tmp_path / "schemas").mkdir()
    written = run_cli("describe", str(path), "canvas.accounts", "--output", str(out))

    assert text.code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "canvas.accounts: schema version 1, 9 columns"
    assert lines[2].split() == ["COLUMN", "TYPE", "NULLABLE", "VALUES", "/", "NOTE"]
    assert any(line.split()[:4] == ["key.id", "integer", "(int64)", "no"] for line in lines)
    assert any(line.split()[:3] == ["value.settings", "object", "yes"] for line in lines)
    document = json.loads(as_json.stdout)
    assert document["version"] == 1 and document["schema"]["type"] == "object"
    columns = {c["name"]: c for c in document["columns"]}
    assert columns["value.workflow_state"]["enum"] == ["active", "deleted", "completed"]
    assert (
        columns["value.name"]["nullable"] is False and columns["meta.ts"]["format"] == "date-time"
    )
    assert (
        written.code == 0 and written.stdout == f"Wrote canvas.accounts schema version 1 to {out}\n"
    )
    assert json.loads(out.read_text()) == document


def test_describe_needs_namespace_dot_table(write_config, run_cli):
    path = write_config(EMULATED)
    result = run_cli("describe", str(path), "accounts")
    assert result.code == 1 and "NAMESPACE.TABLE" in result.stderr


def test_describe_an_unknown_table(write_config, run_cli):
    result = run_cli("describe", str(write_config(EMULATED)), "canvas.nosuch")
    assert result.code == 1 and "error uuid" in result.stderr


def test_flatten_follows_refs_and_nullable_unions():
    schema = {
        "type": "object",
        "definitions": {
            "Money": {
                "type": "object",
                "properties": {"cents": {"type": "integer"}},
                "required": ["cents"],
            }
        },
        "properties": {
            "key": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            "value": {
                "type": "object",
                "properties": {
                    "price": {"$ref": "#/definitions/Money"},
                    "note": {
                        "oneOf": [{"type": "null"}, {"type": "string", "description": "free text"}]
                    },
                    "tags": {"type": ["array", "null"]},
                },
                "required": ["price", "note", "tags"],
            },
        },
    }

    columns = {c.name: c for c in flatten(schema)}

    assert list(columns) == ["key.id", "value.price.cents", "value.note", "value.tags"]
    assert (
        columns["value.price.cents"].type == "integer" and not columns["value.price.cents"].nullable
    )
    assert columns["value.note"].nullable and columns["value.note"].description == "free text"
    assert columns["value.tags"].type == "array" and columns["value.tags"].nullable
