"""Resolving profiles into credentials, and keeping secrets out of every output.

``resolve_credentials`` gets its environment as a parameter, so no test reads or sets the real
one. Errors must name the profile, the key and the variable or file, never the value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from dapctl.config import DEFAULT_BASE_URL, Config, Profile
from dapctl.credentials import Credentials, check_base_url, resolve_credentials, resolve_profiles
from dapctl.errors import ConfigError

SECRET = "Zq9-secret-VALUE-4d1c"
TARGET = '\n[[targets]]\nname = "core"\ntables = ["accounts"]\n'


def resolve(profile: Profile, environ=None, base_dir: Path | None = None) -> Credentials:
    return resolve_credentials(
        "univ_a", profile, environ=environ or {}, base_dir=base_dir or Path("/nonexistent")
    )


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- sources


def test_client_id_and_secret_from_named_variables():
    profile = Profile(client_id_env="UNIV_A_ID", client_secret_env="UNIV_A_SECRET")

    creds = resolve(profile, {"UNIV_A_ID": " id-a \n", "UNIV_A_SECRET": SECRET + "\n"})

    assert (creds.profile, creds.client_id, creds.base_url) == ("univ_a", "id-a", DEFAULT_BASE_URL)
    assert creds.client_secret.get_secret_value() == SECRET
    assert creds.warnings == ()


def test_inline_client_id_and_secret():
    creds = resolve(Profile(client_id="id-a", client_secret=SecretStr(SECRET)))

    assert creds.client_id == "id-a"
    assert creds.client_secret.get_secret_value() == SECRET


def test_secret_from_file_is_stripped(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"\n{SECRET}\n")
    secret_file.chmod(0o600)

    creds = resolve(Profile(client_id="i", client_secret_file="secret"), base_dir=tmp_path)

    assert creds.client_secret.get_secret_value() == SECRET
    assert creds.warnings == ()


def test_secret_file_readable_by_others_gets_a_warning(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)

    creds = resolve(Profile(client_id="i", client_secret_file="secret"), base_dir=tmp_path)

    assert creds.warnings == (
        f"profiles.univ_a.client_secret_file: secret file {secret_file} is readable by others; "
        "chmod 600 it",
    )


def test_profile_naming_nothing_uses_the_official_clients_variables():
    environ = {
        "DAP_CLIENT_ID": "dap-id",
        "DAP_CLIENT_SECRET": SECRET,
        "DAP_API_URL": "https://dap.example.edu/",
    }

    creds = resolve(Profile(), environ)

    assert (creds.client_id, creds.base_url) == ("dap-id", "https://dap.example.edu")
    assert creds.client_secret.get_secret_value() == SECRET


def test_profile_naming_only_the_id_falls_back_to_dap_client_secret():
    creds = resolve(
        Profile(client_id="own-id"), {"DAP_CLIENT_SECRET": SECRET, "DAP_CLIENT_ID": "x"}
    )

    assert creds.client_id == "own-id"
    assert creds.client_secret.get_secret_value() == SECRET


def test_profile_naming_only_the_secret_falls_back_to_dap_client_id():
    creds = resolve(Profile(client_secret_env="S"), {"S": SECRET, "DAP_CLIENT_ID": "dap-id"})

    assert creds.client_id == "dap-id"


@pytest.mark.parametrize(
    ("profile_url", "environ", "expected"),
    [
        (None, {}, DEFAULT_BASE_URL),
        (None, {"DAP_API_URL": "https://env.example.edu"}, "https://env.example.edu"),
        (
            "https://own.example.edu/",
            {"DAP_API_URL": "https://env.example.edu"},
            "https://own.example.edu",
        ),
    ],
    ids=["default", "dap-api-url", "profile-wins"],
)
def test_base_url_precedence(profile_url, environ, expected):
    profile = Profile(base_url=profile_url, client_id="i", client_secret_env="S")

    creds = resolve(profile, {"S": SECRET, **environ})

    assert creds.base_url == expected


# --------------------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    "url",
    [
        "https://api-gateway.instructure.com",
        "http://localhost:8765",
        "http://127.0.0.1:8765/",
        "http://127.0.0.2",
        "http://[::1]:8765",
    ],
)
def test_base_url_accepted(url):
    check_base_url(url, where="profiles.univ_a.base_url")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com", "http:// is allowed only for loopback hosts"),
        ("http://10.0.0.1:8765", "http:// is allowed only for loopback hosts"),
        ("http://localhost.example.com", "http:// is allowed only for loopback hosts"),
        ("ftp://example.com", "is not an http(s) URL"),
        ("example.com", "is not an http(s) URL"),
        ("https://", "is not an http(s) URL"),
    ],
)
def test_base_url_refused(url, message):
    with pytest.raises(ConfigError) as caught:
        check_base_url(url, where="profiles.univ_a.base_url")

    assert str(caught.value).startswith("profiles.univ_a.base_url: ")
    assert message in str(caught.value)


def test_http_base_url_refused_through_the_cli(write_config, run_cli, tmp_path):
    path = write_config(
        '[profiles.univ_a]\nbase_url = "http://dap.example.edu"\nclient_id = "i"\n'
        'client_secret_env = "S"\n' + TARGET
    )

    result = run_cli("validate", str(path), environ={"S": SECRET})

    assert result.code == 1
    assert "profiles.univ_a.base_url: http:// is allowed only for loopback hosts" in result.stderr
    assert "hint: use https://" in result.stderr
    assert list(tmp_path.iterdir()) == [path]


def test_http_dap_api_url_error_names_the_variable():
    environ = {"DAP_CLIENT_ID": "i", "DAP_CLIENT_SECRET": SECRET, "DAP_API_URL": "http://x.edu"}

    with pytest.raises(ConfigError, match="DAP_API_URL"):
        resolve(Profile(), environ)


# --------------------------------------------------------------------------- missing sources

PROFILE_ENV = (
    '[profiles.univ_a]\nclient_id_env = "UNIV_A_ID"\nclient_secret_env = "UNIV_A_SECRET"\n'
)
PROFILE_FILE = '[profiles.univ_a]\nclient_id = "i"\nclient_secret_file = "secrets/univ_a"\n'
PROFILE_NONE = "[profiles.univ_a]\n"

# (id, profile TOML, environ, secret file content or None, expected message)
MISSING = [
    (
        "id-env-unset",
        PROFILE_ENV,
        {"UNIV_A_SECRET": SECRET},
        None,
        "profiles.univ_a.client_id_env: environment variable UNIV_A_ID is not set",
    ),
    (
        "id-env-empty",
        PROFILE_ENV,
        {"UNIV_A_ID": "  ", "UNIV_A_SECRET": SECRET},
        None,
        "profiles.univ_a.client_id_env: environment variable UNIV_A_ID is empty",
    ),
    (
        "secret-env-unset",
        PROFILE_ENV,
        {"UNIV_A_ID": "i"},
        None,
        "profiles.univ_a.client_secret_env: environment variable UNIV_A_SECRET is not set",
    ),
    (
        "secret-env-empty",
        PROFILE_ENV,
        {"UNIV_A_ID": "i", "UNIV_A_SECRET": ""},
        None,
        "profiles.univ_a.client_secret_env: environment variable UNIV_A_SECRET is empty",
    ),
    (
        "secret-file-missing",
        PROFILE_FILE,
        {},
        None,
        "profiles.univ_a.client_secret_file: secret file {base}/secrets/univ_a does not exist",
    ),
    (
        "secret-file-empty",
        PROFILE_FILE,
        {},
        " \n",
        "profiles.univ_a.client_secret_file: secret file {base}/secrets/univ_a is empty",
    ),
    (
        "fallback-id-unset",
        PROFILE_NONE,
        {"DAP_CLIENT_SECRET": SECRET},
        None,
        "profiles.univ_a: environment variable DAP_CLIENT_ID is not set (the profile names no "
        "credentials, so the official client's variable)",
    ),
    (
        "fallback-secret-empty",
        PROFILE_NONE,
        {"DAP_CLIENT_ID": "i", "DAP_CLIENT_SECRET": ""},
        None,
        "profiles.univ_a: environment variable DAP_CLIENT_SECRET is empty",
    ),
]


def _write_missing_case(tmp_path, write_config, profile, secret_content):
    if secret_content is not None:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "univ_a").write_text(secret_content)
    return write_config(profile + TARGET)


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize(
    ("profile", "environ", "secret_content", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in MISSING],
)
def test_missing_or_empty_credential_source(
    command, profile, environ, secret_content, message, tmp_path, write_config, run_cli
):
    path = _write_missing_case(tmp_path, write_config, profile, secret_content)
    before = tree(tmp_path)

    result = run_cli(command, str(path), "--require-credentials", environ=environ)

    assert result.code == 1
    assert result.stdout == ""
    assert message.format(base=tmp_path) in result.stderr
    assert SECRET not in result.stderr
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize(
    ("profile", "environ", "secret_content", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in MISSING],
)
def test_a_missing_credential_source_is_a_warning_for_commands_that_log_in_nowhere(
    command, profile, environ, secret_content, message, tmp_path, write_config, run_cli
):
    # Issue "Tried as a new user would": a CI lint job without secrets could not run these.
    path = _write_missing_case(tmp_path, write_config, profile, secret_content)

    result = run_cli(command, str(path), environ=environ)

    assert result.code == 0, result.stderr
    assert result.stderr.count(message.format(base=tmp_path)) == 1
    assert result.stderr.startswith("WARNING: ")
    assert SECRET not in result.stderr


def test_missing_credentials_warn_once_per_profile_and_reach_validate_json(write_config, run_cli):
    path = write_config(
        '[profiles.univ_a]\nclient_id = "a"\nclient_secret_env = "A_SECRET"\n'
        '[profiles.univ_b]\nclient_id = "b"\nclient_secret_env = "B_SECRET"\n' + TARGET
    )

    result = run_cli("validate", str(path), "--json")

    assert result.code == 0, result.stderr
    assert result.stderr.count("WARNING") == 2
    assert result.stderr.count("A_SECRET is not set") == 1
    warnings = json.loads(result.stdout)["warnings"]
    assert [("A_SECRET" in w, "B_SECRET" in w) for w in warnings] == [(1, 0), (0, 1)]


@pytest.mark.parametrize("argv", [("apply",), ("token", "--profile", "univ_a")])
def test_apply_and_token_still_need_the_credentials(argv, write_config, run_cli):
    path = write_config(PROFILE_ENV + TARGET)

    result = run_cli(argv[0], str(path), *argv[1:], environ={"UNIV_A_ID": "i"})

    assert result.code == 1
    assert "environment variable UNIV_A_SECRET is not set" in result.stderr


@pytest.mark.parametrize(
    ("profile", "environ", "secret_content"),
    [pytest.param(*case[1:4], id=case[0]) for case in MISSING],
)
def test_credential_errors_name_the_config_file(
    profile, environ, secret_content, tmp_path, write_config, run_cli
):
    path = _write_missing_case(tmp_path, write_config, profile, secret_content)

    result = run_cli("validate", str(path), "--require-credentials", environ=environ)

    assert result.code == 1
    assert str(path) in result.stderr


def test_secret_file_that_is_a_folder(tmp_path):
    (tmp_path / "secret").mkdir()

    with pytest.raises(ConfigError, match=r"client_secret_file: .*/secret is a folder"):
        resolve(Profile(client_id="i", client_secret_file="secret"), base_dir=tmp_path)


def test_secret_file_not_utf8(tmp_path):
    (tmp_path / "secret").write_bytes(b"\xff\xfe" + SECRET.encode())

    with pytest.raises(ConfigError) as caught:
        resolve(Profile(client_id="i", client_secret_file="secret"), base_dir=tmp_path)

    assert "cannot read secret file" in str(caught.value)
    assert "not UTF-8 text" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_empty_inline_secret():
    with pytest.raises(ConfigError, match=r"^profiles.univ_a.client_secret: is empty$"):
        resolve(Profile(client_id="i", client_secret=SecretStr("  ")))


def test_relative_secret_file_resolves_against_the_config_folder_not_the_cwd(
    tmp_path, monkeypatch, run_cli
):
    conf = tmp_path / "conf"
    (conf / "secrets").mkdir(parents=True)
    (conf / "secrets" / "univ_a").write_text(SECRET)
    (conf / "secrets" / "univ_a").chmod(0o600)
    (conf / "dapctl.toml").write_text(PROFILE_FILE + TARGET)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "secrets").mkdir(parents=True)
    (elsewhere / "secrets" / "univ_a").write_text("")
    monkeypatch.chdir(elsewhere)

    result = run_cli("validate", "../conf/dapctl.toml")

    assert result.code == 0, result.stderr
    assert result.stdout.endswith("/conf/dapctl.toml: valid (1 profile, 1 target)\n")


def test_secret_file_under_home(_isolated_home, tmp_path):
    (_isolated_home / "dap-secret").write_text(SECRET)
    (_isolated_home / "dap-secret").chmod(0o600)

    creds = resolve(Profile(client_id="i", client_secret_file="~/dap-secret"), base_dir=tmp_path)

    assert creds.client_secret.get_secret_value() == SECRET


def test_nul_in_secret_file_path_is_a_config_error(write_config, run_cli):
    path = write_config(
        '[profiles.univ_a]\nclient_id = "i"\nclient_secret_file = "a\\u0000b"\n' + TARGET
    )

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "profiles.univ_a.client_secret_file" in result.stderr


def test_resolve_profiles_filters_names_and_skips_emulators():
    config = Config.model_validate(
        {
            "profiles": {
                "demo": {"emulator": True},
                "univ_a": {"client_id": "a", "client_secret_env": "A"},
                "univ_b": {"client_id": "b", "client_secret_env": "B_UNSET"},
            },
            "targets": [{"name": "core", "profiles": ["demo"], "tables": ["x"]}],
        }
    )

    resolved = resolve_profiles(
        config, ["demo", "univ_a"], environ={"A": SECRET}, base_dir=Path("/")
    )

    assert list(resolved) == ["demo", "univ_a"]
    assert resolved["demo"] is None
    assert resolved["univ_a"] is not None
    assert resolved["univ_a"].client_id == "a"
    with pytest.raises(ConfigError, match="B_UNSET"):
        resolve_profiles(config, [], environ={"A": SECRET}, base_dir=Path("/"))


# --------------------------------------------------------------------------- secrets never shown


def test_credentials_repr_hides_the_secret():
    creds = resolve(Profile(client_id="i", client_secret_env="S"), {"S": SECRET})

    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)


SECRET_SOURCES = {
    "env": ('client_id = "i"\nclient_secret_env = "S"\n', {"S": SECRET}),
    "file": ('client_id = "i"\nclient_secret_file = "secret.txt"\n', {}),
    "inline": (f'client_id = "i"\nclient_secret = "{SECRET}"\n', {}),
    "fallback": ("", {"DAP_CLIENT_ID": "i", "DAP_CLIENT_SECRET": SECRET}),
}

# (argv after the config path, expected exit status)
COMMANDS = [
    (("validate",), 0),
    (("validate", "--debug"), 0),
    (("plan",), 0),
    (("plan", "--json"), 0),
    (("plan", "--debug", "--detailed-exitcode"), 2),
    (("plan", "--target", "no-such-target"), 1),
    (("plan", "--profile", "no_such_profile"), 1),
    (("plan", "--json", "--target", "core"), 0),
]


@pytest.mark.parametrize("source", list(SECRET_SOURCES))
@pytest.mark.parametrize(("argv", "code"), COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS])
def test_secret_never_printed(source, argv, code, tmp_path, write_config, run_cli):
    keys, environ = SECRET_SOURCES[source]
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.txt").chmod(0o644)  # a warning mentions the file: not its content
    path = write_config("[profiles.univ_a]\n" + keys + TARGET)

    result = run_cli(argv[0], str(path), *argv[1:], environ=environ)

    assert result.code == code, result.stderr
    assert result.stdout or result.stderr
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        "[settings]\nconcurrency = 0\n",
        "[settings]\nstate = \n",
        '[settings]\nstatte = "x"\n',
        "[[targets]]\nname = 'x'\n",
    ],
    ids=["invalid-value", "malformed-toml", "unknown-key", "incomplete-target"],
)
@pytest.mark.parametrize("debug", [(), ("--debug",)], ids=["", "debug"])
def test_secret_never_printed_in_config_errors(broken, debug, write_config, run_cli):
    path = write_config(
        f'[profiles.univ_a]\nclient_id = "i"\nclient_secret = "{SECRET}"\n' + TARGET + broken
    )

    result = run_cli("plan", str(path), *debug)

    assert result.code == 1
    assert "Error:" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_secret_never_printed_when_the_secret_line_is_malformed(write_config, run_cli):
    path = write_config(f'[profiles.univ_a]\nclient_id = "i"\nclient_secret = "{SECRET}\n' + TARGET)

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "malformed TOML" in result.stderr
    assert SECRET not in result.stderr


def test_wrong_typed_inline_secret_is_not_echoed(write_config, run_cli):
    path = write_config(
        '[profiles.univ_a]\nclient_id = "i"\nclient_secret = 918273645546372\n' + TARGET
    )

    result = run_cli("validate", str(path))

    assert result.code == 1
    assert "profiles.univ_a.client_secret" in result.stderr
    assert "918273645546372" not in result.stderr


def test_inline_secret_warns_on_stderr(write_config, run_cli):
    path = write_config(
        f'[profiles.univ_a]\nclient_id = "i"\nclient_secret = "{SECRET}"\n' + TARGET
    )

    result = run_cli("validate", str(path))

    assert result.code == 0
    assert (
        f"WARNING: {path}: profiles.univ_a.client_secret holds the secret in the config file; "
        "prefer client_secret_env or client_secret_file"
    ) in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize(
    ("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False), (0o400, False)]
)
def test_secret_file_mode_warning_through_the_cli(mode, warned, tmp_path, write_config, run_cli):
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret.txt").chmod(mode)
    path = write_config(
        '[profiles.univ_a]\nclient_id = "i"\nclient_secret_file = "secret.txt"\n' + TARGET
    )

    result = run_cli("validate", str(path))

    assert result.code == 0
    assert ("is readable by others; chmod 600 it" in result.stderr) is warned
    assert SECRET not in result.stderr


def test_a_secret_pasted_into_client_secret_env_is_not_echoed(write_config, run_cli):
    pasted = "kQ93jf_0aZx81MnB2vLq7"  # a valid variable name, but plainly a secret
    path = write_config(
        f'[profiles.univ_a]\nclient_id = "i"\nclient_secret_env = "{pasted}"\n' + TARGET
    )
    result = run_cli("validate", str(path))
    assert result.code == 1
    assert "profiles.univ_a.client_secret_env" in result.stderr
    assert "NAME here, not the secret itself" in result.stderr
    assert pasted not in result.stderr


@pytest.mark.parametrize(
    ("environ", "what"),
    [
        ({"UNIV_A_ID": "id-a", "UNIV_A_SECRET": "s3cr\udc80et"}, "client secret"),
        ({"UNIV_A_ID": "id-\udcff", "UNIV_A_SECRET": SECRET}, "client ID"),
        ({"UNIV_A_ID": "id-a", "UNIV_A_SECRET": "s3cr\u20acet"}, "client secret"),
    ],
    ids=["surrogate-secret", "surrogate-id", "euro-sign"],
)
def test_credentials_a_login_cannot_send_are_a_config_error(environ, what):
    # An environment variable holding bytes that are not UTF-8 reads as lone surrogates;
    # HTTP Basic authentication carries Latin-1 only. The login used to raise
    # UnicodeEncodeError, an internal error.
    profile = Profile(client_id_env="UNIV_A_ID", client_secret_env="UNIV_A_SECRET")

    with pytest.raises(ConfigError) as caught:
        resolve(profile, environ)

    message = str(caught.value)
    assert f"profiles.univ_a: the {what} holds a character a login cannot send" in message
    assert "s3cr" not in message and "id-" not in message


def test_a_surrogate_in_the_secret_fails_token_with_exit_1(write_config, run_cli):
    path = write_config(
        '[profiles.univ_a]\nbase_url = "http://127.0.0.1:9"\nclient_id = "id-a"\n'
        'client_secret_env = "UNIV_A_SECRET"\n' + TARGET
    )

    result = run_cli(
        "token", str(path), "--profile", "univ_a", environ={"UNIV_A_SECRET": "a\udc80"}
    )

    assert result.code == 1, result.stderr
    assert "the client secret holds a character a login cannot send" in result.stderr


# ------------------------------------------------------------- state and database URLs

EMULATED = "[profiles.univ_a]\nemulator = true\n"
DATABASE_TARGET = TARGET + 'database = "wh"\n'
URL_SOURCES = [
    pytest.param(
        '[settings]\nstate_env = "STATE_URL"\n' + EMULATED + TARGET,
        {"STATE_URL": "postgresql://h/db"},
        "settings.state_env: environment variable STATE_URL is not set",
        id="state_env",
    ),
    pytest.param(
        '[databases.wh]\nurl_env = "WH_URL"\n' + EMULATED + DATABASE_TARGET,
        {"WH_URL": "duckdb:///wh.duckdb"},
        "databases.wh.url_env: environment variable WH_URL is not set",
        id="url_env",
    ),
    pytest.param(
        '[databases.wh]\nurl_file = "wh.url"\n' + EMULATED + DATABASE_TARGET,
        {},
        "databases.wh.url_file: secret file {base}/wh.url does not exist",
        id="url_file",
    ),
]


@pytest.mark.parametrize(("text", "environ", "message"), URL_SOURCES)
def test_validate_checks_the_state_and_database_urls_as_it_checks_credentials(
    text, environ, message, tmp_path, write_config, run_cli
):
    path = str(write_config(text))
    message = message.format(base=tmp_path)

    required = run_cli("validate", path, "--require-credentials")
    warned = run_cli("validate", path, "--json")
    (tmp_path / "wh.url").write_text("duckdb:///wh.duckdb\n")
    (tmp_path / "wh.url").chmod(0o600)
    present = run_cli("validate", path, "--require-credentials", environ=environ)

    assert required.code == 1 and message in required.stderr, required
    assert f"{path}:" in required.stderr  # the file and line of the key
    assert warned.code == 0 and warned.stderr.count(message) == 1, warned
    assert [w for w in json.loads(warned.stdout)["warnings"] if message in w]
    assert present.code == 0 and present.stderr == "", present


@pytest.mark.parametrize(("bits", "warned"), [(0o600, False), (0o640, True), (0o604, True)])
def test_a_url_file_readable_by_others_gets_the_secret_files_warning(
    bits, warned, write_config, run_cli
):
    path = write_config('[databases.wh]\nurl_file = "wh.url"\n' + EMULATED + DATABASE_TARGET)
    url_file = path.parent / "wh.url"
    url_file.write_text("postgresql://u:hunter2@h/db\n")
    url_file.chmod(bits)

    result = run_cli("validate", str(path), "--json")

    assert result.code == 0, result
    expected = f"databases.wh.url_file: secret file {url_file} is readable by others; chmod 600"
    assert (expected in result.stderr) == warned, result.stderr
    assert any(expected in w for w in json.loads(result.stdout)["warnings"]) == warned
    assert "hunter2" not in result.stdout + result.stderr
