"""Bad input, fuzzed (issue 5): the config loader and the CLI never answer with a traceback.

Hypothesis feeds ``dapctl validate`` and ``dapctl plan`` (through ``main(argv)``) random TOML
text, mutations of a valid config (characters deleted or inserted, values swapped for other
types, huge numbers, long strings, odd unicode with NUL and surrogate escapes, keys dropped or
invented), and random selection flags. Hand-picked cases cover the file system: a missing
file, a folder, a dangling symlink, a symlink loop, a path through a file, bytes that are not
UTF-8, a file the user cannot read, and folders or worse where a secret file or the state is
expected. The property: exit status 0 or 1 (2 for ``plan --detailed-exitcode``), never 3;
on 1 an ``Error:`` line (or argparse's usage error) on stderr; never ``Traceback``.

Tests run as root, where ``chmod 000`` does not make a file unreadable; the unreadable cases
therefore run ``main`` in a forked child that has dropped to uid/gid 65534. A FIFO is not
used: reading one with no writer blocks, for dapctl as for ``cat``.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import select
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dapctl.cli import main
from tests.apply_helpers import SECRET_VAR
from tests.hardening.helpers import scaled

SETTINGS = settings(
    max_examples=scaled(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENVIRON = {SECRET_VAR: "fuzz-secret", "OTHER": "x"}

VALID: dict[str, Any] = {
    "settings": {"state": "state/dapctl.state.json", "concurrency": 4, "refresh_margin": 300},
    "retry": {"attempts": 5, "initial_backoff": 1.0, "max_backoff": 60.0},
    "profiles": {
        "univ_a": {
            "base_url": "https://api-gateway.instructure.com",
            "client_id": "us-east-1#abc",
            "client_secret_env": SECRET_VAR,
            "rate_limits": {"jobs_per_minute": 5, "status_per_minute": 500},
        },
        "demo": {"emulator": True},
    },
    "targets": [
        {
            "name": "core",
            "tables": ["accounts", "users"],
            "format": "jsonl",
            "since": datetime(2026, 11, 1, tzinfo=UTC),
            "output": "data/{profile}/{table}/{kind}-{timestamp}.{format}.gz",
        },
        {
            "name": "logs",
            "profiles": ["univ_a"],
            "namespace": "canvas_logs",
            "tables": "all",
            "sync": "snapshot",
            "output": "logs/{table}.csv",
            "format": "csv",
            "mode": "expanded",
        },
    ],
}

VALID_TEXT = """\
#:schema ./schemas/dapctl.schema.json
[settings]
state = "state/dapctl.state.json"
concurrency = 4

[retry]
attempts = 5
initial_backoff = 1.0

[profiles.univ_a]
base_url = "https://api-gateway.instructure.com"
client_id = "us-east-1#abc"
client_secret_env = "TEST_DAP_SECRET"

[profiles.demo]
emulator = true

[[targets]]
name = "core"
tables = ["accounts", "users"]
since = 2026-11-01T00:00:00Z
output = "data/{profile}/{table}/{kind}-{timestamp}.{format}.gz"

[[targets]]
name = "logs"
profiles = ["univ_a"]
namespace = "canvas_logs"
tables = "all"
sync = "snapshot"
output = "logs/{table}.csv"
format = "csv"
"""

# Never the real service: a loopback port where nothing listens (discard, refused).
LOCAL_TEXT = VALID_TEXT.replace(
    "https://api-gateway.instructure.com", "http://127.0.0.1:9"
).replace("initial_backoff = 1.0", "initial_backoff = 0.01\nmax_backoff = 0.02")

# -- a small TOML writer (inline tables only, which is valid TOML) -------------------------


def toml_string(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04X}")  # surrogates as escapes: invalid TOML, on purpose
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    return "\n".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in doc.items()) + "\n"


# -- strategies ------------------------------------------------------------------------------

ODD = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\u202e",
        "\ufeff",
        "\u0301",
        "\U0001d521\U0001d51e\U0001d52d",
        "../",
        "{table}",
        "{",
        "}",
    ]
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(ODD, st.text(max_size=3)), max_size=8).map("".join),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 10**18]),
    st.floats(),
    TEXT,
    st.datetimes(timezones=st.none() | st.just(UTC)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def leaf_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        out = [prefix] if prefix else []
        for key, inner in value.items():
            out += leaf_paths(inner, (*prefix, key))
        return out
    if isinstance(value, list):
        out = [prefix]
        for index, inner in enumerate(value):
            out += leaf_paths(inner, (*prefix, index))
        return out
    return [prefix]


def set_at(doc: Any, path: tuple, value: Any, *, delete: bool = False) -> None:
    for part in path[:-1]:
        doc = doc[part]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    doc = json.loads(json.dumps(VALID, default=str))  # a deep copy; the date becomes a string
    doc["targets"][0]["since"] = VALID["targets"][0]["since"]
    for _ in range(draw(st.integers(1, 3))):
        paths = leaf_paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            set_at(doc, path, None, delete=True)
        elif action == "add":
            parent = path[:-1]
            container = doc
            for part in parent:
                container = container[part]
            if isinstance(container, dict):
                container[draw(TEXT)] = draw(VALUES)
            else:
                set_at(doc, path, draw(VALUES))
        else:
            set_at(doc, path, draw(VALUES))
    return toml_document(doc)


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    text = VALID_TEXT
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = (
                text[:at]
                + draw(st.one_of(TEXT, ODD, st.sampled_from(['"', "[", "=", "\n"])))
                + text[at:]
            )
    return text


DOCUMENTS = st.one_of(st.text(max_size=300), mutated_documents(), text_mutations())
FLAGS = st.lists(
    st.one_of(
        st.just(["--json"]),
        st.just(["--detailed-exitcode"]),
        st.just(["--debug"]),
        st.tuples(
            st.just("--profile"), st.sampled_from(["univ_a", "demo", "nope", "", "../x"])
        ).map(list),
        st.tuples(st.just("--target"), st.sampled_from(["*", "core", "univ_a/*", "[", "\x7f"])).map(
            list
        ),
    ),
    max_size=3,
).map(lambda groups: [flag for group in groups for flag in group])


# -- the property ----------------------------------------------------------------------------


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err, environ=dict(ENVIRON if environ is None else environ))
    return code, out.getvalue(), err.getvalue()


def check(code: int, stdout: str, stderr: str, *, detailed: bool = False) -> None:
    allowed = {0, 1, 2} if detailed else {0, 1}
    assert code in allowed, (code, stdout, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert "Internal error" not in stderr, stderr
    if code == 1 and "Apply finished with failures" in stdout:
        assert "failed " in stdout, stdout  # an apply whose steps failed says so on stdout
    elif code == 1:
        lines = stderr.splitlines()
        assert any(line.startswith("Error:") for line in lines) or "usage:" in stderr, stderr
        # Anything before the error is a warning, never noise.
        first = next(i for i, line in enumerate(lines) if line.startswith(("Error:", "usage:")))
        assert all(line.startswith("WARNING: ") for line in lines[:first]), stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def fuzz_check(argv: list[str], environ: dict[str, str] | None = None) -> None:
    code, stdout, stderr = run(argv, environ)
    if code == 3:  # an internal error: show its traceback
        _, _, debug = run([*argv, "--debug"], environ)
        raise AssertionError(debug)
    check(code, stdout, stderr, detailed="--detailed-exitcode" in argv)


@SETTINGS
@given(document=DOCUMENTS, command=st.sampled_from(["validate", "plan"]), flags=FLAGS)
@example(document=VALID_TEXT, command="plan", flags=["--json"])
@example(document=toml_document(VALID), command="validate", flags=[])
@example(document="concurrency = 99999999999999999999999", command="plan", flags=[])
@example(
    document="[settings]\nconcurrency = 9223372036854775807\n" + VALID_TEXT.split("\n", 4)[4],
    command="plan",
    flags=[],
)
def test_config_fuzz_never_tracebacks(workdir: Path, document: str, command: str, flags: list[str]):
    path = workdir / "dapctl.toml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    argv = [command, str(path)] if command == "validate" else [command, str(path), *flags]
    fuzz_check(argv)


def test_the_valid_config_is_valid(workdir: Path):
    # The fuzzer's starting point must itself pass, or the mutations prove little.
    for text in (VALID_TEXT, toml_document(VALID)):
        path = workdir / "valid.toml"
        path.write_text(text, encoding="utf-8")
        code, _, stderr = run(["validate", str(path)])
        assert code == 0, stderr
        code, _, stderr = run(["plan", str(path), "--json"])
        assert code == 0, stderr


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes_as_config(workdir: Path, data: bytes):
    path = workdir / "bytes.toml"
    path.write_bytes(data)
    fuzz_check(["validate", str(path)])


# -- the file system -------------------------------------------------------------------------


def file_cases(root: Path) -> dict[str, Path]:
    (root / "folder.toml").mkdir(exist_ok=True)
    (root / "a-file").write_text("x")
    for name, target in (("dangling.toml", root / "nowhere"), ("loop.toml", root / "loop.toml")):
        link = root / name
        if not link.is_symlink():
            link.symlink_to(target)
    (root / "latin1.toml").write_bytes("name = 'caf\xe9'".encode("latin-1"))
    (root / "bom.toml").write_bytes(b"\xef\xbb\xbf" + LOCAL_TEXT.encode())
    (root / "huge.toml").write_text("# " + "x" * (8 << 20) + "\n" + LOCAL_TEXT)
    return {
        "missing": root / "missing.toml",
        "folder": root / "folder.toml",
        "dangling symlink": root / "dangling.toml",
        "symlink loop": root / "loop.toml",
        "through a file": root / "a-file" / "dapctl.toml",
        "not UTF-8": root / "latin1.toml",
        "UTF-8 BOM": root / "bom.toml",
        "8 MB comment": root / "huge.toml",
        "/proc/self/mem (EIO)": Path("/proc/self/mem"),
        "empty name": Path(""),
    }


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "token"])
def test_config_files_that_cannot_be_read(tmp_path: Path, command: str):
    for case, path in file_cases(tmp_path).items():
        extra = {"token": ["--profile", "univ_a"], "validate": ["--require-credentials"]}
        extra["plan"] = extra["validate"]
        argv = [command, str(path), *extra.get(command, [])]
        code, stdout, stderr = run(argv)
        check(code, stdout, stderr)
        # A UTF-8 BOM (as Windows editors write) is read past; the BOM'd and the 8 MB
        # comment configs are valid, and apply and token then fail on the refused port.
        valid = case in ("8 MB comment", "UTF-8 BOM")
        assert code == 1 or (valid and command in ("validate", "plan")), (case, stderr)


SECRET_FILE_CONFIG = """
[profiles.univ_a]
base_url = "http://127.0.0.1:9"
client_id = "us-east-1#abc"
client_secret_file = "{secret}"

[[targets]]
name = "core"
tables = ["accounts"]
"""


def secret_file_cases(root: Path) -> dict[str, str]:
    (root / "secret-folder").mkdir(exist_ok=True)
    (root / "empty-secret").write_text("  \n")
    (root / "latin1-secret").write_bytes(b"caf\xe9")
    (root / "a-file").write_text("x")
    dangling = root / "dangling-secret"
    if not dangling.is_symlink():
        dangling.symlink_to(root / "nowhere")
    return {
        "folder": "secret-folder",
        "missing": "missing-secret",
        "empty": "empty-secret",
        "not UTF-8": "latin1-secret",
        "through a file": "a-file/secret",
        "dangling symlink": "dangling-secret",
        "the config folder": ".",
        "root": "/",
        "/proc/self/mem (EIO)": "/proc/self/mem",
        "NUL": "a\\u0000b",
    }


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "token"])
def test_secret_files_that_are_not_files(tmp_path: Path, command: str):
    for case, secret in secret_file_cases(tmp_path).items():
        path = tmp_path / "dapctl.toml"
        path.write_text(SECRET_FILE_CONFIG.format(secret=secret))
        extra = {"token": ["--profile", "univ_a"], "validate": ["--require-credentials"]}
        extra["plan"] = extra["validate"]
        argv = [command, str(path), *extra.get(command, [])]
        code, stdout, stderr = run(argv)
        check(code, stdout, stderr)
        assert code == 1, (case, stdout, stderr)


STATE_CONFIG = """
[settings]
state = "{state}"

[profiles.univ_a]
emulator = true

[[targets]]
name = "core"
tables = ["accounts"]
"""


@pytest.mark.parametrize(
    "case",
    [
        "folder",
        "garbage",
        "wrong version",
        "wrong shape",
        pytest.param(
            "through a file",
        ),
        "not UTF-8",
        "null",
        "deeply nested",
    ],
)
def test_state_files_that_are_not_state(tmp_path: Path, case: str):
    state = tmp_path / "state.json"
    if case == "folder":
        state.mkdir()
    elif case == "garbage":
        state.write_text("{not json")
    elif case == "wrong version":
        state.write_text('{"version": 999}')
    elif case == "wrong shape":
        state.write_text('{"version": 1, "steps": {"a": {"watermark": 5, "bytes": "x"}}}')
    elif case == "through a file":
        (tmp_path / "f").write_text("x")
        state = tmp_path / "f" / "state.json"
    elif case == "not UTF-8":
        state.write_bytes(b"\xff\xfe\x00")
    elif case == "null":
        state.write_text("null")
    elif case == "deeply nested":
        state.write_text('{"version": 1, "steps": ' + "[" * 100_000 + "]" * 100_000 + "}")
    path = tmp_path / "dapctl.toml"
    path.write_text(STATE_CONFIG.format(state=state))
    for argv in (["plan", str(path)], ["apply", str(path)]):
        code, stdout, stderr = run(argv)
        check(code, stdout, stderr)
        assert code == 1, (case, argv, stderr)


def as_nobody(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in a forked child running as uid/gid 65534, where 0000 means 0000."""
    # The child cannot read this Python's own files once it is nobody (they may live under
    # root's 0700 home): what it imports on demand must be loaded first. The config reader's
    # codec is (alone, this test failed with "unknown encoding: utf-8-sig").
    codecs.lookup("utf-8-sig")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, report, and leave without cleanup
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = run(argv)
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        data = b""
        while ready:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert data, "the child running as nobody reported nothing"
    code, stdout, stderr = json.loads(data)
    return code, stdout, stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_config_and_secret_file_as_another_user():
    root = Path(tempfile.mkdtemp(prefix="dapctl-nobody-"))
    try:
        root.chmod(0o755)
        config = root / "dapctl.toml"
        config.write_text(SECRET_FILE_CONFIG.format(secret="secret"))
        (root / "secret").write_text("s3cret")
        (root / "secret").chmod(0o000)
        code, stdout, stderr = as_nobody(["validate", str(config)])
        check(code, stdout, stderr)
        assert code == 1 and "cannot read secret file" in stderr, stderr
        config.chmod(0o000)
        code, stdout, stderr = as_nobody(["plan", str(config)])
        check(code, stdout, stderr)
        assert code == 1 and "permission denied" in stderr, stderr
    finally:
        for file in root.iterdir():
            file.chmod(0o600)
            file.unlink()
        root.rmdir()


@pytest.mark.parametrize("line", ['"" = false', "'' = 1", '[profiles.""]\nemulator = true'])
def test_an_empty_quoted_key_is_an_error_not_a_crash(tmp_path: Path, line: str):
    path = tmp_path / "dapctl.toml"
    path.write_text(line + "\n" + LOCAL_TEXT)
    code, stdout, stderr = run(["validate", str(path)])
    check(code, stdout, stderr)
    assert code == 1


@pytest.mark.parametrize("url", ["https://[api-gateway.instructure.com", "http://[::1"])
def test_a_base_url_urlsplit_rejects_is_an_error_not_a_crash(tmp_path: Path, url: str):
    path = tmp_path / "dapctl.toml"
    path.write_text(LOCAL_TEXT.replace("http://127.0.0.1:9", url))
    code, stdout, stderr = run(["validate", str(path)])
    check(code, stdout, stderr)
    assert code == 1


def test_a_dap_api_url_urlsplit_rejects_is_an_error_not_a_crash(tmp_path: Path):
    path = tmp_path / "dapctl.toml"
    path.write_text('[profiles.a]\n[[targets]]\nname = "c"\ntables = ["accounts"]\n')
    environ = {"DAP_API_URL": "https://[x", "DAP_CLIENT_ID": "i", "DAP_CLIENT_SECRET": "s"}
    code, stdout, stderr = run(["validate", str(path)], environ)
    check(code, stdout, stderr)
    assert code == 1


def test_a_deeply_nested_lock_file_is_an_error_not_a_crash(tmp_path: Path):
    path = tmp_path / "dapctl.toml"
    path.write_text(STATE_CONFIG.format(state=tmp_path / "state.json"))
    (tmp_path / "state.json.lock").write_text("[" * 100_000 + "]" * 100_000)
    code, stdout, stderr = run(["force-unlock", str(path)])
    check(code, stdout, stderr)
