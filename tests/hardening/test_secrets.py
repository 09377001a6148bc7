"""Secrets and file modes (issue 5).

One test runs every command that reads a config (validate, plan, apply in text and JSON, with
``--debug``, log files in text and JSON, tables, describe, state list/show, token; and their
failure paths: a wrong secret, a refused login, a closed port, config errors) with a known,
distinctive secret, and checks that neither the secret nor any access token appears in
stdout, stderr, captured log records, or any file under the test's folder (state, backup,
lock, log files, outputs) — ``token``'s stdout excepted, which exists to print one. Tokens
are recognised by shape (every JWT the emulator issues), so ones from apply's own logins are
caught too, not only the one ``dapctl token`` printed.

Database and state URLs (issue 20): a password in every form (userinfo, percent-encoded or
not; a query parameter, any case, its name percent-encoded; a libpq keyword string, quoted
or not) is refused in a config's ``url`` / ``state`` and in ``state migrate --to``, and one
from ``url_env``, ``url_file`` or ``state_env`` never shows in any command's output, JSON
document, log record or file, nor in the rows written, whether the server answers or not.

Another test checks modes under ``umask 0``: state, backup, lock, log and output files
0600; the folders dapctl creates 0700; and a secret file readable by others gets a warning.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

import psycopg
import pytest

from dapctl.apply import ApplyOptions
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import FAST, SECRET_VAR, config_text
from tests.apply_helpers import environ as dap_environ
from tests.hardening.helpers import read_state

SECRET = "Zq7-distinctive-SECRET-4242"
WRONG = "Wx9-wrong-SECRET-7777"
# The PostgreSQL fixtures of tests/databases: a server, and a database made per test.

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leaks(text: str, token: str | None) -> list[str]:
    found = [name for name, value in (("secret", SECRET), ("wrong secret", WRONG)) if value in text]
    if token and token in text:
        found.append("the printed token")
    found += [f"a JWT ({m[:12]}...)" for m in JWT.findall(text)]
    return found


def test_no_command_shows_a_secret_or_a_token(make_emulator, write_config, run_cli, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    emu = make_emulator(client_secret=SECRET, part_size=7)
    root = write_config("").parent
    good = write_config(config_text(emu), "good.toml")
    refused = make_emulator(client_secret=SECRET, login_failures=1000)
    port = closed_port()
    configs = {
        "refused": write_config(config_text(refused), "refused.toml"),
        "closed": write_config(
            config_text(emu).replace(emu.base_url, f"http://127.0.0.1:{port}"), "closed.toml"
        ),
        # The secret in the file (with a warning) plus a mistake elsewhere.
        "inline": write_config(
            config_text(emu).replace(
                f'client_secret_env = "{SECRET_VAR}"', f'client_secret = "{SECRET}"\nbogus = 1'
            ),
            "inline.toml",
        ),
        # A mistyped secret is still a secret: not echoed in the pattern error.
        "pasted": write_config(
            config_text(emu).replace(
                f'client_secret_env = "{SECRET_VAR}"', f'client_secret_env = "{SECRET}"'
            ),
            "pasted.toml",
        ),
        "typed": write_config(
            config_text(emu).replace(
                f'client_secret_env = "{SECRET_VAR}"', f'client_secret = ["{SECRET}"]'
            ),
            "typed.toml",
        ),
    }
    env = {SECRET_VAR: SECRET}
    wrong = {SECRET_VAR: WRONG}
    logs = root / "logs"
    logs.mkdir(mode=0o700)
    g = str(good)

    token = run_cli("token", g, "--profile", "univ_a", environ=env)
    assert token.code == 0 and JWT.fullmatch(token.stdout.strip()), token
    printed = token.stdout.strip()
    assert not leaks(token.stderr, printed)

    runs = [
        (["validate", g], env),
        (["validate", g, "--debug"], env),
        (["plan", g], env),
        (["plan", g, "--json", "--debug"], env),
        (["apply", g], env),
        (["apply", g, "--json"], env),
        (["apply", g, "--debug"], env),
        (["apply", g, "--log-file", str(logs / "text.log"), "--log-level", "debug"], env),
        (["apply", g, "--log-format", "json", "--log-file", str(logs / "j.log"), "--debug"], env),
        (["apply", g, "--log-format", "json", "--debug", "--json"], env),
        (["tables", g, "--debug"], env),
        (["tables", g, "--json"], env),
        (["describe", g, "canvas.accounts", "--debug"], env),
        (["state", "list", g], env),
        (["state", "show", g, "univ_a/core/canvas.accounts"], env),
        (["plan", g, "--json"], env),
        (["token", g, "--profile", "univ_a", "--debug"], wrong),
        (["apply", g, "--debug"], wrong),
        (["tables", g, "--debug"], wrong),
        (["apply", str(configs["refused"]), "--debug", "--json"], env),
        (["token", str(configs["refused"]), "--profile", "univ_a", "--debug"], env),
        (["apply", str(configs["closed"]), "--debug"], env),
        (["token", str(configs["closed"]), "--profile", "univ_a", "--debug"], env),
        (["describe", str(configs["closed"]), "canvas.accounts", "--debug"], env),
        (["validate", str(configs["inline"]), "--debug"], env),
        (["apply", str(configs["inline"]), "--debug"], env),
        (["validate", str(configs["pasted"]), "--debug"], env),
        (["plan", str(configs["typed"]), "--debug", "--json"], env),
        (["validate", g, "--debug"], {}),
        (["apply", g, "--debug"], {SECRET_VAR: ""}),
    ]
    emu.change("canvas", "accounts", inserts=2, updates=1)
    for argv, environ in runs:
        emu.advance(60)
        result = run_cli(*argv, environ=environ)
        assert result.code in (0, 1, 2), (argv, result)
        assert "Traceback" not in result.stderr, (argv, result.stderr)
        found = leaks(result.stdout, None) + leaks(result.stderr, printed)
        assert not found, (argv, found, result)
        if argv[0] == "token" and environ is wrong:
            assert result.code == 1 and "univ_a" in result.stderr, result

    records = "\n".join(
        f"{r.name}: {r.getMessage()} {r.exc_text or ''} {vars(r)}" for r in caplog.records
    )
    assert not leaks(records, printed), leaks(records, printed)
    for file in root.rglob("*"):
        if file.is_file() and file.suffix != ".toml":  # the configs are input, some hold it
            found = leaks(file.read_bytes().decode("utf-8", "replace"), printed)
            assert not found, (file, found)
    assert (logs / "text.log").stat().st_size and (logs / "j.log").stat().st_size
    assert read_state(good) is not None


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_0600_in_folders_0700_even_under_umask_0(make_emulator, write_config, run_cli):
    emu = make_emulator(part_size=7)
    path = write_config(
        config_text(emu, output="deep/er/{profile}/{table}/{kind}-{timestamp}.{format}.gz")
    )
    root = path.parent
    seen_lock: list[int] = []
    old = os.umask(0)
    try:
        loaded = load_config(path)

        def on_plan(plan) -> None:  # the lock is held while the plan is shown
            seen_lock.append(mode(loaded.state_path.with_name("dapctl.state.json.lock")))

        for _ in range(2):  # the second write makes the backup
            emu.advance(60)
            results = run_apply(
                loaded,
                environ={SECRET_VAR: emu.credentials[1]},
                options=ApplyOptions(),
                connection=FAST,
                on_plan=on_plan,
            )
            assert all(r.status == "ok" for r in results), results
        log_file = root / "apply.log"  # --log-file does not create folders
        result = run_cli(
            "apply",
            str(path),
            "--log-file",
            str(log_file),
            environ={SECRET_VAR: emu.credentials[1]},
        )
    finally:
        os.umask(old)
    assert result.code == 0, result
    state = loaded.state_path
    assert mode(state) == 0o600
    assert mode(state.with_name("dapctl.state.json.backup")) == 0o600
    assert seen_lock == [0o600, 0o600]
    assert log_file.exists() and mode(log_file) == 0o600
    created = [state.parent, *(p for p in (root / "deep").rglob("*") if p.is_dir()), root / "deep"]
    for folder in created:
        assert mode(folder) == 0o700, (folder, oct(mode(folder)))
    outputs = [p for p in (root / "deep").rglob("*") if p.is_file()]
    assert outputs
    for file in outputs:
        assert mode(file) == 0o600, (file, oct(mode(file)))


@pytest.mark.parametrize(("bits", "warned"), [(0o600, False), (0o640, True), (0o604, True)])
def test_a_secret_file_readable_by_others_gets_a_warning(write_config, run_cli, bits, warned):
    secret = write_config(SECRET, "secret.txt")
    secret.chmod(bits)
    path = write_config(
        '[profiles.univ_a]\nbase_url = "http://127.0.0.1:9"\nclient_id = "id"\n'
        'client_secret_file = "secret.txt"\n\n[[targets]]\nname = "core"\n'
        'tables = ["accounts"]\n'
    )
    result = run_cli("validate", str(path))
    assert result.code == 0, result
    assert ("readable by others" in result.stderr) == warned, result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_lock_file_mode_while_another_apply_waits(make_emulator, write_config):
    """The lock file a waiting apply reads is still 0600 (its holder record is no secret,
    but the folder may be shared)."""
    emu = make_emulator(job_delay=0.5)
    path = write_config(config_text(emu, tables='["accounts"]'))
    loaded = load_config(path)
    lock = loaded.state_path.with_name("dapctl.state.json.lock")
    modes: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if lock.exists():
                modes.append(mode(lock))
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_apply(loaded, environ={SECRET_VAR: emu.credentials[1]}, connection=FAST)
    finally:
        done.set()
        watcher.join()
    assert modes and set(modes) == {0o600}


# Database and state URLs (issue 20, item 4): a password in every form a URL or a libpq
# keyword string holds one. "Quokka" is in each, written as it is and percent-encoded.
DB_PASSWORD = "Zebra@Quokka-71"
DB_ENCODED = "Zebra%40Quokka-71"
DB_MARK = "Quokka"


def url_forms(host: str, port: int | str, db: str = "db") -> dict[str, str]:
    """The same password in each form, each a URL libpq accepts."""
    base = f"postgresql://postgres@{host}:{port}/{db}"
    return {
        "userinfo": f"postgresql://postgres:{DB_ENCODED}@{host}:{port}/{db}",
        "userinfo, unencoded": f"postgresql://postgres:Zebra-Quokka-71@{host}:{port}/{db}",
        "query": f"{base}?password={DB_ENCODED}",
        "query, encoded name": f"{base}?sslmode=disable&pass%77ord={DB_ENCODED}",
        "sslpassword": f"{base}?sslpassword={DB_ENCODED}",
    }


def every_form(port: int) -> dict[str, str]:
    """Also forms libpq refuses, whose errors quote the URL or the password."""
    host = "127.0.0.1"
    return {
        **url_forms(host, port),
        "query, any case": f"postgresql://u@{host}:{port}/db?PassWord={DB_ENCODED}",
        "query, bad encoding": f"postgresql://u@{host}:{port}/db?password=Quokka%4G",
        "keyword string": f"host={host} port={port} dbname=db password={DB_PASSWORD}",
        "keyword string, quoted": f"host={host} port={port} password='{DB_PASSWORD} \\' x'",
    }


def _database_config(emu, *, database: str, state: str = "") -> str:
    text = config_text(emu, extra_target='database = "wh"').replace('output = "out/', '# "out/')
    if state:
        text = text.replace('state = "state/dapctl.state.json"', state)
    return f"[databases.wh]\n{database}\n\n{text}"


def _no_password_anywhere(argv, result) -> None:
    assert "Traceback" not in result.stderr, (argv, result.stderr)
    shown = result.stdout + result.stderr
    assert DB_MARK not in shown, (argv, result)


def test_a_password_in_a_config_url_is_refused_in_every_form(write_config, run_cli):
    for name, url in every_form(5432).items():
        written = url.replace("\\", "\\\\").replace('"', '\\"')
        for key, section in (("url", "[databases.wh]"), ("state", "[settings]")):
            path = write_config(
                f'{section}\n{key} = "{written}"\n\n[profiles.p]\nemulator = true\n\n'
                '[[targets]]\nname = "t"\ntables = ["a"]\n'
            )
            for argv in (["validate", str(path)], ["plan", str(path), "--json"]):
                result = run_cli(*argv)
                assert result.code == 1, (name, key, result)
                assert f"{key}: the URL holds a password" in result.stderr, (name, result)
                _no_password_anywhere((name, argv), result)
        # Pasted where the variable's name belongs: refused, and not echoed either.
        for key, section in (("url_env", "[databases.wh]"), ("state_env", "[settings]")):
            path = write_config(
                f'{section}\n{key} = "{written}"\n\n[profiles.p]\nemulator = true\n\n'
                '[[targets]]\nname = "t"\ntables = ["a"]\n'
            )
            result = run_cli("validate", str(path))
            assert result.code == 1 and f"{key}: use only" in result.stderr, (name, result)
            _no_password_anywhere((name, key), result)


def test_a_password_in_state_migrate_to_is_refused_in_every_form(
    write_config, run_cli, monkeypatch
):
    path = write_config(
        '[profiles.p]\nemulator = true\n\n[[targets]]\nname = "t"\ntables = ["a"]\n'
    )
    monkeypatch.chdir(path.parent)  # a --to path is relative to the working directory
    for name, url in every_form(5432).items():
        for argv in (
            ["state", "migrate", str(path), "--to", url],
            ["state", "migrate", str(path), "--to", url, "--json"],
        ):
            result = run_cli(*argv)
            assert result.code == 1 and "--to: the URL holds a password" in result.stderr, (
                name,
                result,
            )
            _no_password_anywhere((name, argv), result)
    assert not list(path.parent.glob("*=*")), "a keyword string became a state file"


def test_an_unreachable_url_from_a_variable_or_file_never_shows_its_password(
    make_emulator, write_config, run_cli, caplog
):
    caplog.set_level(logging.DEBUG)
    emu = make_emulator()
    port = closed_port()
    logs = write_config("", "x").parent / "logs"
    logs.mkdir()
    configs = {
        "url_env": _database_config(emu, database='url_env = "WH_URL"'),
        "url_file": _database_config(emu, database='url_file = "wh.url"'),
        "state_env": config_text(emu).replace(
            'state = "state/dapctl.state.json"', 'state_env = "STATE_URL"'
        ),
    }
    commands = [
        ["validate", "--require-credentials"],
        ["validate", "--json"],
        ["plan"],
        ["plan", "--json", "--debug"],
        ["apply", "--debug"],
        ["apply", "--json", "--log-format", "json", "--log-file", str(logs / "j.log")],
        ["apply", "--log-file", str(logs / "t.log"), "--log-level", "debug"],
        ["state", "list"],
        ["state", "list", "--json"],
        ["state", "migrate", "--to", str(logs / "elsewhere.json"), "--debug"],
    ]
    for name, url in every_form(port).items():
        write_config(url, "wh.url")
        env = {**dap_environ(emu), "WH_URL": url, "STATE_URL": url}
        for key, text in configs.items():
            path = str(write_config(text, f"{key}.toml"))
            for command in commands:
                argv = (
                    [*command[:2], path, *command[2:]]
                    if command[0] == "state"
                    else [
                        command[0],
                        path,
                        *command[1:],
                    ]
                )
                result = run_cli(*argv, environ=env)
                assert result.code in (0, 1), (name, argv, result)
                _no_password_anywhere((name, argv), result)
    records = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {vars(r)}" for r in caplog.records)
    assert DB_MARK not in records
    for file in logs.parent.rglob("*"):
        if file.is_file() and file.name != "wh.url":  # the input that holds it
            assert DB_MARK not in file.read_text(encoding="utf-8", errors="replace"), file
    assert (logs / "j.log").stat().st_size and (logs / "t.log").stat().st_size


def test_a_reachable_url_with_a_password_never_shows_it(
    pg_url, make_emulator, write_config, run_cli, caplog
):
    """The commands succeed here, so the headers and documents that name the state's and
    the database's URL (state list, migrate, apply) are shown, and the rows written."""
    caplog.set_level(logging.DEBUG)
    emu = make_emulator()
    where, db = pg_url.split("@", 1)[1].split("/", 1)
    host, port = where.rsplit(":", 1)
    root = write_config("", "x").parent
    for index, (name, url) in enumerate(url_forms(host, port, db).items()):
        state = 'state_env = "URL"'
        text = _database_config(emu, database='url_env = "WH_URL"', state=state)
        path = str(write_config(text, f"form{index}.toml"))
        env = {**dap_environ(emu), "WH_URL": url, "URL": url}
        emu.advance(60)
        runs = [
            ["validate", path, "--require-credentials"],
            ["plan", path, "--json"],
            ["apply", path, "--log-format", "json", "--log-file", str(root / f"{index}.log")],
            ["apply", path, "--json", "--debug"],
            ["plan", path, "--debug"],
            ["state", "list", path],
            ["state", "list", path, "--json"],
            ["state", "show", path, "univ_a/core/canvas.accounts"],
            ["state", "migrate", path, "--to", str(root / f"copy{index}.json")],
            ["state", "migrate", path, "--to", str(root / f"copy{index}.json"), "--json"],
        ]
        for argv in runs:
            result = run_cli(*argv, environ=env)
            assert result.code == 0, (name, argv, result)
            _no_password_anywhere((name, argv), result)
            if argv[:2] == ["state", "list"]:  # the header names the state's URL, masked
                assert "***" in result.stdout, (name, result.stdout)
    records = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {vars(r)}" for r in caplog.records)
    assert DB_MARK not in records
    for file in root.rglob("*"):
        if file.is_file():
            assert DB_MARK not in file.read_text(encoding="utf-8", errors="replace"), file
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = [
            str(conn.execute(sql).fetchall())
            for sql in (
                "SELECT * FROM dapctl.table_steps",
                "SELECT * FROM dapctl.state_namespaces",
                "SELECT * FROM dapctl.state_steps",
            )
        ]
    assert rows[0] != "[]" and DB_MARK not in "".join(rows)
