"""The command line as a whole: help, version, usage errors and exit statuses.

argparse's own output (``--help``, ``--version``, usage errors) must reach the streams
``main`` is given, like everything else, so these tests read only ``run_cli``'s result.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from dapctl import __version__
from dapctl.cli import build_parser, main
from dapctl.errors import ExitStatus

CONFIG = '[profiles.demo]\nemulator = true\n\n[[targets]]\nname = "core"\ntables = ["accounts"]\n'


def command_names() -> list[str]:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(commands.choices)


def test_known_commands_are_registered():
    assert {"validate", "plan", "config-schema"} <= set(command_names())


def test_version(run_cli, capsys):
    result = run_cli("--version")

    assert (result.code, result.stdout, result.stderr) == (0, f"dapctl {__version__}\n", "")
    assert capsys.readouterr() == ("", "")


def test_python_m_dapctl_is_the_same_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "dapctl", "--version"], capture_output=True, text=True, timeout=30
    )

    assert (done.returncode, done.stdout) == (0, f"dapctl {__version__}\n")


@pytest.mark.parametrize(
    "argv", [[], *([name] for name in command_names())], ids=lambda a: " ".join(a) or "dapctl"
)
def test_help_exits_0_with_examples(argv, run_cli, capsys):
    result = run_cli(*argv, "--help")

    out = result.stdout
    assert result.code == 0
    assert capsys.readouterr() == ("", "")
    assert out.startswith(f"usage: dapctl {' '.join(argv)}".rstrip())
    examples = out.split("\nexamples:\n", 1)[1].splitlines()
    assert examples
    assert examples[0].startswith("  dapctl")
    assert any(f"dapctl {argv[0] if argv else ''}".rstrip() in line for line in examples)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuch"],
        ["plan"],
        ["validate", "a.toml", "b.toml"],
        ["plan", "a.toml", "--bogus"],
        ["validate", "a.toml", "--detailed-exitcode"],
        ["--json", "token", "a.toml"],
    ],
    ids=[
        "no-command",
        "unknown-command",
        "missing-config",
        "extra-argument",
        "unknown-option",
        "option-of-another-command",
        "json-before-a-command-without-json",
    ],
)
def test_usage_error_exits_1_not_2(argv, run_cli, capsys):
    # 2 is `plan --detailed-exitcode`'s "changes pending": a typo must not look like that.
    result = run_cli(*argv)

    assert result.code == ExitStatus.ERROR == 1
    assert "usage: dapctl" in result.stderr
    assert result.stdout == ""
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    "argv", [["plan", "a.toml", "--bogus"], ["--bogus", "plan", "a.toml"]], ids=["after", "before"]
)
def test_an_unknown_option_shows_the_usage_of_its_command(argv, run_cli):
    # Issue 20, item 13: argparse reported it with the top-level usage, not plan's.
    result = run_cli(*argv)

    assert result.code == ExitStatus.ERROR
    assert result.stderr.startswith("usage: dapctl plan [-h]")
    assert "dapctl plan: error: unrecognized arguments: --bogus" in result.stderr


def test_an_unknown_option_of_a_subcommand_shows_the_subcommands_usage(run_cli):
    result = run_cli("state", "list", "a.toml", "--bogus")

    assert result.code == ExitStatus.ERROR
    assert result.stderr.startswith("usage: dapctl state list [-h]")


SHARED_BEFORE_AND_AFTER = [
    ["--debug"],
    ["--log-level", "info"],
    ["--log-format", "json"],
    ["--log-file", "x.log"],
    ["--no-color"],
    ["--json"],
]


@pytest.mark.parametrize("flag", SHARED_BEFORE_AND_AFTER, ids=lambda f: f[0])
def test_shared_flags_work_before_the_command_as_after_it(flag):
    parser = build_parser()
    before = parser.parse_args([*flag, "plan", "a.toml"])
    after = parser.parse_args(["plan", "a.toml", *flag])
    neither = parser.parse_args(["plan", "a.toml"])

    assert vars(before) == vars(after) != vars(neither)


def test_a_shared_flag_after_the_command_wins_over_one_before_it():
    args = build_parser().parse_args(
        ["--log-level", "info", "plan", "a.toml", "--log-level", "error"]
    )
    assert args.log_level == "error"


def test_debug_before_the_command_is_debug(write_config, run_cli):
    path = write_config(CONFIG)
    assert run_cli("--debug", "plan", str(path)) == run_cli("plan", str(path), "--debug")
    err = io.StringIO()

    code = main(
        ["--debug", "config-schema"], stdout=Exploding(RuntimeError("boom")), stderr=err, environ={}
    )

    assert code == ExitStatus.INTERNAL_ERROR
    assert "Traceback (most recent call last)" in err.getvalue()


def test_help_says_where_apply_writes_and_where_state_lives(run_cli):
    top = run_cli("--help").stdout
    assert "files" in top and "bucket" in top and "PostgreSQL or DuckDB database" in top
    assert "logging and display (before or after COMMAND)" in top
    state = run_cli("state", "--help").stdout
    for word in ("mv", "migrate", "PostgreSQL", "S3", "postgresql://", "s3://"):
        assert word in state, word
    migrate = run_cli("state", "migrate", "--help").stdout
    to_help = migrate.split("--to URL_OR_PATH", 2)[2]
    assert "postgresql://" in to_help and "s3://" in to_help


def test_validate_success(write_config, run_cli):
    path = write_config(CONFIG)

    result = run_cli("validate", str(path))

    assert result == type(result)(0, f"{path}: valid (1 profile, 1 target)\n", "")


def test_config_errors_exit_1_with_an_error_prefix(tmp_path, run_cli):
    result = run_cli("validate", str(tmp_path / "missing.toml"))

    assert result.code == ExitStatus.ERROR
    assert result.stderr == f"Error: {tmp_path / 'missing.toml'}: no such config file\n"
    assert "Traceback" not in result.stderr


class Exploding(io.StringIO):
    """An output stream that fails the way only a bug (or a broken terminal) would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


@pytest.mark.parametrize("argv", [["config-schema"], ["plan", "{config}"]])
def test_unexpected_exception_exits_3_without_a_traceback(argv, write_config):
    path = write_config(CONFIG)
    err = io.StringIO()

    code = main(
        [a.format(config=path) for a in argv],
        stdout=Exploding(RuntimeError("boom")),
        stderr=err,
        environ={},
    )

    assert code == ExitStatus.INTERNAL_ERROR == 3
    assert err.getvalue() == (
        "Internal error: dapctl hit an unexpected problem (a bug). "
        "Run again with --debug for the traceback, and report it.\n"
    )


def test_unexpected_exception_with_debug_shows_the_traceback():
    err = io.StringIO()

    code = main(
        ["config-schema", "--debug"], stdout=Exploding(RuntimeError("boom")), stderr=err, environ={}
    )

    assert code == 3
    assert "Traceback (most recent call last)" in err.getvalue()
    assert "RuntimeError: boom" in err.getvalue()
    assert "Internal error: dapctl hit an unexpected problem (a bug)." in err.getvalue()
    assert "Run again with --debug" not in err.getvalue()


def test_ctrl_c_exits_130():
    err = io.StringIO()

    code = main(["config-schema"], stdout=Exploding(KeyboardInterrupt()), stderr=err, environ={})

    assert code == ExitStatus.INTERRUPTED == 130
    assert err.getvalue() == "Interrupted.\n"


def test_exit_statuses_are_stable():
    assert {s.name: int(s) for s in ExitStatus} == {
        "SUCCESS": 0,
        "ERROR": 1,
        "CHANGES_PENDING": 2,
        "INTERNAL_ERROR": 3,
        "STALE_WARN": 4,
        "STALE_ERROR": 5,
        "INTERRUPTED": 130,
        "TERMINATED": 143,
    }


def test_building_the_parser_does_not_import_the_emulator():
    # Every command builds the whole grammar; the emulator costs ~50 ms to import, so its
    # flags are added only when `dapctl emulator` is parsed or its help shown.
    code = (
        "import sys; from dapctl.cli import build_parser; build_parser(); "
        "assert 'dapctl.emulator' not in sys.modules, 'the parser imported the emulator'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_emulator_flags_are_there_when_the_command_is_used(run_cli):
    args = build_parser().parse_args(["emulator", "--cut-every", "3", "--port", "0"])
    assert (args.command, args.cut_every, args.port) == ("emulator", 3, 0)
    result = run_cli("emulator", "--help")
    assert result.code == 0 and "--error-every" in result.stdout, result
