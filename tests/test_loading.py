"""Loading a config file: every bad input is one ``ConfigError`` naming the file, the line and
the key path, exits 1 through the CLI, and writes nothing.

Each case of the table below marks the line its error must point at with ``# <-``, so the
expected line number is read from the text rather than counted by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dapctl.errors import ConfigError
from dapctl.loading import format_loc, load_config

ENV = {"UNIV_A_SECRET": "s3cr3t-for-loading-tests"}

PROFILE = """
[profiles.univ_a]
client_id = "id-a"
client_secret_env = "UNIV_A_SECRET"
"""

TARGET = """
[[targets]]
name = "core"
tables = ["accounts"]
"""

GOOD = PROFILE + TARGET


def marked_line(text: str) -> int | None:
    """The 1-based line carrying the ``# <-`` marker, or None when the error has no line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if "# <-" in line:
            return number
    return None


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# (id, config text, key path, substrings the message must hold)
BAD_CONFIGS = [
    # Issue "Tried as a new user would": each of these was accepted, then failed or was
    # ignored later.
    (
        "since-in-the-future",
        GOOD + "since = 2999-01-01T00:00:00Z  # <-\n",
        "targets[0].since",
        ["since is in the future"],
    ),
    (
        "since-with-sync-snapshot",
        GOOD + 'sync = "snapshot"\nsince = 2026-01-01T00:00:00Z  # <-\n',
        "targets[0].since",
        ['sync = "snapshot"', "would be ignored"],
    ),
    (
        "output-extension-contradicts-format",
        GOOD + 'format = "csv"\noutput = "out/{table}-{timestamp}.parquet"  # <-\n',
        "targets[0].output",
        ["ends in .parquet but format = 'csv'", "{format}"],
    ),
    (
        "output-jsonl-gz-for-tsv",
        GOOD + 'format = "tsv"\noutput = "out/{table}-{timestamp}.jsonl.gz"  # <-\n',
        "targets[0].output",
        ["ends in .jsonl but format = 'tsv'"],
    ),
    (
        "namespace-not-lowercase",
        GOOD + 'namespace = "Canvas"  # <-\n',
        "targets[0].namespace",
        ["namespaces are lowercase", "did you mean 'canvas'?"],
    ),
    (
        "quoted-number",
        '[settings]\nconcurrency = "4"  # <-\n' + GOOD,
        "settings.concurrency",
        ["valid integer", "(got '4')"],
    ),
    (
        "catch-up-after-as-text",
        '[settings]\ncatch_up_after = "1h"  # <-\n' + GOOD,
        "settings.catch_up_after",
        ['expected seconds, 0 or more, or "never"', "(got '1h')"],
    ),
    (
        "quoted-boolean",
        '[profiles.demo]\nemulator = "true"  # <-\n' + GOOD,
        "profiles.demo.emulator",
        ["valid boolean", "(got 'true')"],
    ),
    (
        "quoted-float",
        '[retry]\ninitial_backoff = "1.5"  # <-\n' + GOOD,
        "retry.initial_backoff",
        ["valid number", "(got '1.5')"],
    ),
    (
        "unknown-top-level-table",
        GOOD + '\n[setings]  # <-\nstate = "x.json"\n',
        "setings",
        ["unknown key 'setings'", "did you mean 'settings'?"],
    ),
    (
        "unknown-target-key",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a"]\nformt = "csv"  # <-\n',
        "targets[0].formt",
        ["unknown key 'formt'", "did you mean 'format'?"],
    ),
    (
        "unknown-profile-key",
        '[profiles.univ_a]\nclient_id = "i"\nclient_secret_enc = "X"  # <-\n' + TARGET,
        "profiles.univ_a.client_secret_enc",
        ["did you mean 'client_secret_env'?"],
    ),
    (
        "unknown-retry-key",
        GOOD + "\n[retry]\nattempt = 3  # <-\n",
        "retry.attempt",
        ["did you mean 'attempts'?"],
    ),
    (
        "unknown-rate-limit-key",
        PROFILE + "rate_limits = { jobs_per_minut = 5 }  # <-\n" + TARGET,
        "profiles.univ_a.rate_limits.jobs_per_minut",
        ["did you mean 'jobs_per_minute'?"],
    ),
    (
        "unknown-key-nothing-close",
        GOOD + "\n[settings]\nzzzz = 1  # <-\n",
        "settings.zzzz",
        ["unknown key 'zzzz'", "valid keys: state, concurrency, refresh_margin"],
    ),
    (
        "wrong-type-string-for-int",
        '[settings]\nconcurrency = "four"  # <-\n' + GOOD,
        "settings.concurrency",
        ["valid integer", "(got 'four')"],
    ),
    (
        "wrong-type-float-for-int",
        GOOD + "\n[retry]\nattempts = 2.5  # <-\n",
        "retry.attempts",
        ["valid integer", "(got 2.5)"],
    ),
    (
        "wrong-type-tables",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = 3  # <-\n',
        "targets[0].tables",
        ['expected a list of table names or "all"', "(got 3)"],
    ),
    (
        "wrong-type-tables-string",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = "some"  # <-\n',
        "targets[0].tables",
        ['"all"', 'for one table, write ["some"]'],
    ),
    (
        "out-of-range",
        "[settings]\nconcurrency = 0  # <-\n" + GOOD,
        "settings.concurrency",
        ["greater than or equal to 1", "(got 0)"],
    ),
    (
        "bad-format",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a"]\nformat = "xml"  # <-\n',
        "targets[0].format",
        ["'jsonl', 'csv', 'tsv' or 'parquet'", "(got 'xml')"],
    ),
    (
        "bad-sync",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a"]\nsync = "full"  # <-\n',
        "targets[0].sync",
        ["'incremental' or 'snapshot'", "(got 'full')"],
    ),
    (
        "bad-mode",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a"]\nmode = "flat"  # <-\n',
        "targets[0].mode",
        ["'expanded' or 'condensed'", "(got 'flat')"],
    ),
    (
        "bad-on-snapshot-required",
        '[settings]\non_snapshot_required = "retry"  # <-\n' + GOOD,
        "settings.on_snapshot_required",
        ["'snapshot' or 'fail'", "(got 'retry')"],
    ),
    (
        "since-local-datetime",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\nsince = 2026-11-01T00:00:00  # <-\n',
        "targets[0].since",
        ["give the time zone", "2026-11-01T00:00:00Z"],
    ),
    (
        "since-naive-string",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\nsince = "2026-11-01T00:00:00"  # <-\n',
        "targets[0].since",
        ["give the time zone"],
    ),
    (
        "unknown-profile-in-target",
        PROFILE + '\n[[targets]]\nname = "core"\nprofiles = ["univ_b"]  # <-\ntables = ["a"]\n',
        "targets[0].profiles",
        ["unknown profile 'univ_b'", "profiles are: univ_a"],
    ),
    (
        "duplicate-target-name",
        GOOD + '\n[[targets]]\nname = "core"  # <-\ntables = ["courses"]\n',
        "targets[1].name",
        ["two targets are named 'core'"],
    ),
    (
        "unknown-placeholder",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "{tabel}/{timestamp}"  # <-\n',
        "targets[0].output",
        ["unknown placeholder {tabel}", "{table}", "{timestamp}"],
    ),
    (
        "malformed-template",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "{table-{timestamp}"  # <-\n',
        "targets[0].output",
        ["malformed output template"],
    ),
    (
        "dotdot-in-output",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\n'
        + 'output = "../{table}-{timestamp}"  # <-\n',
        "targets[0].output",
        ["'..' is not allowed"],
    ),
    (
        "incremental-without-timestamp",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "{table}.gz"  # <-\n',
        "targets[0].output",
        ["needs {timestamp} in output"],
    ),
    (
        "same-output-within-target",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a", "b"]\noutput = "x/{timestamp}"  # <-\n',
        "targets[0].output",
        ["steps univ_a/core/canvas.a and univ_a/core/canvas.b", "same output path"],
    ),
    (
        "same-output-across-targets",
        PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "x/{table}-{timestamp}"\n'
        + '\n[[targets]]\nname = "two"\ntables = ["a"]\noutput = "x/{table}-{timestamp}"  # <-\n',
        "targets[1].output",
        ["univ_a/core/canvas.a and univ_a/two/canvas.a", "'x/a-{timestamp}'"],
    ),
    (
        "same-output-across-profiles",
        PROFILE
        + "\n[profiles.univ_b]\nemulator = true\n"
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "{table}-{timestamp}"  # <-\n',
        "targets[0].output",
        ["univ_a/core/canvas.a and univ_b/core/canvas.a", "add {table}, {target} or {profile}"],
    ),
    (
        "all-tables-without-table-placeholder",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = "all"\noutput = "x/{timestamp}"  # <-\n',
        "targets[0].output",
        ["univ_a/core/canvas.*", "same output path"],
    ),
    (
        "target-name-pattern",
        PROFILE + '\n[[targets]]\nname = "Core"  # <-\ntables = ["a"]\n',
        "targets[0].name",
        ["lowercase letters, digits, _ and -", "(got 'Core')"],
    ),
    (
        "table-name-pattern",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a.b"]  # <-\n',
        "targets[0].tables[0]",
        ["letters, digits and _", "(got 'a.b')"],
    ),
    (
        "two-client-ids",
        '[profiles.univ_a]  # <-\nclient_id = "i"\nclient_id_env = "ID"\n'
        'client_secret_env = "S"\n' + TARGET,
        "profiles.univ_a",
        ["set only one of client_id and client_id_env"],
    ),
    (
        "two-secrets",
        '[profiles.univ_a]  # <-\nclient_id = "i"\nclient_secret_env = "S"\n'
        'client_secret_file = "f"\n' + TARGET,
        "profiles.univ_a",
        ["set only one of client_secret, client_secret_env and client_secret_file"],
    ),
    (
        "emulator-with-credentials",
        '[profiles.univ_a]  # <-\nemulator = true\nclient_id = "i"\n' + TARGET,
        "profiles.univ_a",
        ["emulator = true serves its own base URL"],
    ),
    (
        "missing-tables",
        PROFILE + '\n[[targets]]  # <-\nname = "core"\n',
        "targets[0].tables",
        ["required key is missing"],
    ),
    (
        "empty-tables",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = []  # <-\n',
        "targets[0].tables",
        ['list at least one table, or write tables = "all"'],
    ),
    (
        "table-listed-twice",
        PROFILE + '\n[[targets]]\nname = "core"\ntables = ["a", "b", "a"]  # <-\n',
        "targets[0].tables",
        ["table listed twice: a"],
    ),
    (
        "no-targets",
        PROFILE,
        "targets",
        ["required key is missing"],
    ),
    (
        "error-in-second-target-block",
        GOOD + '\n[[targets]]\nname = "two"\ntables = ["b"]\nformat = "xml"  # <-\n',
        "targets[1].format",
        ["(got 'xml')"],
    ),
    (
        "error-in-third-target-block-missing-key",
        GOOD
        + '\n[[targets]]\nname = "two"\ntables = ["b"]\n'
        + '\n[[targets]]  # <-\nname = "three"\n',
        "targets[2].tables",
        ["required key is missing"],
    ),
]


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize(
    ("text", "loc", "expected"),
    [pytest.param(text, loc, expected, id=name) for name, text, loc, expected in BAD_CONFIGS],
)
def test_bad_config_names_file_line_and_key_path(
    command, text, loc, expected, write_config, run_cli, tmp_path
):
    path = write_config(text)
    before = tree(tmp_path)

    result = run_cli(command, str(path), environ=ENV)

    line = marked_line(text)
    where = f"{path}:{line}" if line else f"{path}"
    assert result.code == 1, result.stderr
    assert result.stdout == ""
    assert f"{where}: {loc}: " in result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("fmt", "output"),
    [
        ("csv", "out/{table}-{timestamp}.{format}"),
        ("csv", "out/{table}-{timestamp}.csv.gz"),
        ("parquet", "out/{table}-{timestamp}.parquet"),
        ("jsonl", "out/{table}-{timestamp}.ndjson"),
        ("csv", "out/{table}-{timestamp}.txt"),  # names no format: nothing to contradict
        ("csv", "out/{format}/{table}.d/{timestamp}"),
    ],
)
def test_outputs_whose_extension_fits_the_format(fmt, output, write_config):
    load_config(write_config(GOOD + f'format = "{fmt}"\noutput = "{output}"\n'))


def test_since_in_the_past_and_quoted_times_are_accepted(write_config):
    loaded = load_config(write_config(GOOD + 'since = "2026-01-01T00:00:00Z"\n'))
    assert loaded.config.targets[0].since is not None


def test_every_problem_is_reported_together(write_config):
    path = write_config(
        "[settings]\nconcurrency = 0\n\n[retry]\nattempt = 3\n"
        + PROFILE
        + '\n[[targets]]\nname = "core"\ntables = ["a"]\nformat = "xml"\n'
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    message = str(caught.value)
    assert message.startswith("3 problems in the config:\n")
    assert f"{path}:2: settings.concurrency:" in message
    assert f"{path}:5: retry.attempt:" in message
    assert f"{path}:14: targets[0].format:" in message


def test_one_problem_is_singular(write_config):
    path = write_config("[settings]\nconcurrency = 0\n" + GOOD)

    with pytest.raises(ConfigError, match=r"^1 problem in the config:\n"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        (GOOD + "\nfoo = \n", "line 10, column 7"),
        ('[settings]\nstate = "unterminated\n' + GOOD, "line 2, column 22"),
        (GOOD + "\n[[targets]\n", "line 10"),
    ],
    ids=["missing-value", "unterminated-string", "bad-header"],
)
def test_malformed_toml_names_file_line_and_column(text, position, write_config, run_cli):
    path = write_config(text)

    result = run_cli("validate", str(path), environ=ENV)

    assert result.code == 1
    assert f"{path}: malformed TOML:" in result.stderr
    assert position in result.stderr


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000],
    ids=["arrays", "inline-tables"],
)
def test_deeply_nested_toml_is_a_config_error_not_a_crash(value, write_config, run_cli):
    # tomllib recurses per level; it used to end in RecursionError, an internal error (3).
    path = write_config(f"deep = {value}\n" + GOOD)

    result = run_cli("validate", str(path), environ=ENV)

    assert result.code == 1, result.stderr
    assert f"{path}: malformed TOML: arrays or inline tables nested too deeply" in result.stderr


def test_missing_config_file(tmp_path, run_cli):
    path = tmp_path / "nope.toml"

    result = run_cli("plan", str(path))

    assert result.code == 1
    assert f"{path}: no such config file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_config_path_is_a_folder(tmp_path, run_cli):
    result = run_cli("validate", str(tmp_path))

    assert result.code == 1
    assert f"{tmp_path}: is a folder, not a config file" in result.stderr


def test_config_file_not_utf8(tmp_path, run_cli):
    path = tmp_path / "dapctl.toml"
    path.write_bytes(b"# caf\xe9\n" + GOOD.encode())

    result = run_cli("validate", str(path), environ=ENV)

    assert result.code == 1
    assert f"{path}: not UTF-8 text (byte 5)" in result.stderr


def test_relative_config_path_is_taken_from_the_working_directory(
    tmp_path, write_config, monkeypatch
):
    write_config(GOOD)
    monkeypatch.chdir(tmp_path)

    loaded = load_config("dapctl.toml")

    assert loaded.path == tmp_path / "dapctl.toml"
    assert loaded.base_dir == tmp_path


def test_state_resolves_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "dapctl.toml").write_text('[settings]\nstate = "s/state.json"\n' + GOOD)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    loaded = load_config("../conf/dapctl.toml")

    assert loaded.state_path == (conf / "s" / "state.json").resolve()
    assert loaded.resolve_path("data/x.gz") == (conf / "data" / "x.gz").resolve()


def test_plan_reads_the_state_beside_the_config_even_from_another_cwd(
    tmp_path, monkeypatch, run_cli
):
    conf = tmp_path / "conf"
    (conf / "s").mkdir(parents=True)
    (conf / "dapctl.toml").write_text('[settings]\nstate = "s/state.json"\n' + GOOD)
    watermark = {"watermark": "2026-11-02T03:04:05Z"}
    state = {"version": 1, "serial": 3, "lineage": "l", "steps": {}}
    state["steps"]["univ_a/core/canvas.accounts"] = watermark
    (conf / "s" / "state.json").write_text(json.dumps(state))
    decoy = tmp_path / "elsewhere"
    (decoy / "s").mkdir(parents=True)
    (decoy / "s" / "state.json").write_text("not json at all")
    monkeypatch.chdir(decoy)

    result = run_cli("plan", "../conf/dapctl.toml", environ=ENV)

    assert result.code == 0, result.stderr
    assert "~ univ_a/core/canvas.accounts" in result.stdout
    assert "since 2026-11-02T03:04:05Z" in result.stdout


def test_absolute_and_home_state_paths(tmp_path, write_config, _isolated_home):
    absolute = write_config(f'[settings]\nstate = "{tmp_path}/abs.json"\n' + GOOD, "a.toml")
    home = write_config('[settings]\nstate = "~/st/state.json"\n' + GOOD, "b.toml")

    assert load_config(absolute).state_path == (tmp_path / "abs.json").resolve()
    assert load_config(home).state_path == (_isolated_home / "st" / "state.json").resolve()


def test_inline_secret_is_accepted_with_a_warning(write_config):
    path = write_config(
        '[profiles.univ_a]\nclient_id = "i"\nclient_secret = "inline-xyz"\n' + TARGET
    )

    loaded = load_config(path)

    assert len(loaded.warnings) == 1
    assert "profiles.univ_a.client_secret holds the secret in the config file" in loaded.warnings[0]
    assert str(path) in loaded.warnings[0]
    assert "inline-xyz" not in loaded.warnings[0]


def test_valid_config_loads_with_defaults(write_config):
    path = write_config("#:schema ./schemas/dapctl.schema.json\n" + GOOD)

    loaded = load_config(path)

    target = loaded.config.targets[0]
    assert (target.namespace, target.format, target.sync, target.mode) == (
        "canvas",
        "jsonl",
        "incremental",
        None,
    )
    assert loaded.config.settings.concurrency == 4
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("targets",), "targets"),
        (("targets", 1, "format"), "targets[1].format"),
        (
            ("profiles", "univ_a", "rate_limits", "jobs_per_minute"),
            "profiles.univ_a.rate_limits.jobs_per_minute",
        ),
        (("targets", 0, "tables", 2), "targets[0].tables[2]"),
    ],
)
def test_format_loc(loc, text):
    assert format_loc(loc) == text


@pytest.mark.parametrize("output", ["{table!x}-{timestamp}", "{table:d}-{timestamp}"])
def test_bad_format_spec_in_output_names_the_output_key(output, write_config, run_cli):
    text = PROFILE + f'\n[[targets]]\nname = "core"\ntables = ["a"]\noutput = "{output}"  # <-\n'
    path = write_config(text)

    result = run_cli("validate", str(path), environ=ENV)

    assert result.code == 1
    assert f"{path}:{marked_line(text)}: targets[0].output: " in result.stderr
