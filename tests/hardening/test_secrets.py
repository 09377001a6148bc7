"""Secrets and file modes (issue 5).

One test runs every command that reads a config (validate, plan, apply in text and JSON, with
``--debug``, log files in text and JSON, tables, describe, state list/show, token; and their
failure paths: a wrong secret, a refused login, a closed port, config errors) with a known,
distinctive secret, and checks that neither the secret nor any access token appears in
stdout, stderr, captured log records, or any file under the test's folder (state, backup,
lock, log files, outputs) — ``token``'s stdout excepted, which exists to print one. Tokens
are recognised by shape (every JWT the emulator issues), so ones from apply's own logins are
caught too, not only the one ``dapctl token`` printed.

A second test checks modes under ``umask 0``: state, backup, lock, log and output files
0600; the folders dapctl creates 0700; and a secret file readable by others gets a warning.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from dapctl.apply import ApplyOptions, run_apply
from dapctl.loading import load_config
from tests.apply_helpers import FAST, SECRET_VAR, config_text
from tests.hardening.helpers import read_state

SECRET = "Zq7-distinctive-SECRET-4242"
WRONG = "Wx9-wrong-SECRET-7777"
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
