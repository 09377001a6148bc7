"""The messages a first-time user met that were wrong or unhelpful (issue "Tried as a new
user would", item 11): each now says what was wrong and what to write instead."""

from __future__ import annotations

import socket

import pytest
import requests
import urllib3

from dapctl.api.retry import no_answer_reason
from dapctl.errors import ConfigError
from dapctl.loading import load_config

PROFILE = "[profiles.univ_a]\nemulator = true\n"
TARGET = '[[targets]]\nname = "core"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[profiles.UnivA]\nemulator = true\n" + TARGET + 'tables = ["accounts"]\n',
            "c.toml:1: profiles.UnivA: the name 'UnivA': use only lowercase letters, digits, _ "
            "and -",
        ),
        (
            PROFILE + TARGET + 'tables = "accounts"\n',
            'c.toml:5: targets[0].tables: expected a list of table names or "all"; for one '
            'table, write ["accounts"]',
        ),
        (
            PROFILE + '[targets]\nname = "core"\ntables = ["accounts"]\n',
            "c.toml:3: targets: expected [[targets]] (double brackets, one block per entry); "
            "[targets] makes a single table",
        ),
        (
            PROFILE + TARGET + 'tables = ["canvas.accounts"]\n',
            "targets[0].tables[0]: use only letters, digits and _ (got 'canvas.accounts'); "
            'write the table as "accounts" and set namespace = "canvas"',
        ),
        (
            PROFILE + TARGET + 'tables = ["../../etc"]\n',
            "targets[0].tables[0]: use only letters, digits and _ (got '../../etc'); a table "
            'is a DAP table\'s name, such as "accounts", not a path (`dapctl tables CONFIG` '
            "lists them; output says where files go)",
        ),
        (
            PROFILE + TARGET + 'tables = ["Canvas.accounts"]\n',
            'write the table as "accounts" and set namespace = "canvas"',
        ),
    ],
    ids=[
        "profile-name",
        "tables-string",
        "single-brackets",
        "namespace-in-table",
        "path-as-table",
        "namespace-in-table-capitalised",
    ],
)
def test_config_mistakes_say_what_to_write(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert message in str(caught.value)
    assert "Input should be" not in str(caught.value)
    assert 'set namespace = ""' not in str(caught.value)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (PROFILE + TARGET + 'tables = ["accounts"]\n').encode())

    assert load_config(path).config.targets[0].tables == ["accounts"]


def test_a_state_holding_a_list_is_named_for_what_it_is(write_config, run_cli):
    path = write_config(PROFILE + TARGET + 'tables = ["accounts"]\n')
    (path.parent / "dapctl.state.json").write_text("[]")

    result = run_cli("plan", str(path))

    assert result.code == 1 and "found a JSON list" in result.stderr
    assert "version None" not in result.stderr


def test_refused_and_unresolvable_hosts_are_told_apart(write_config, run_cli):
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = (
        f'[retry]\nattempts = 1\n[profiles.univ_a]\nbase_url = "http://127.0.0.1:{port}"\n'
        'client_id = "x"\nclient_secret_env = "S"\n' + TARGET + 'tables = ["accounts"]\n'
    )
    result = run_cli("apply", str(write_config(text)), environ={"S": "s"})
    assert "connection refused: nothing listens at that address and port" in result.stdout

    # As requests raises a failed lookup (built here: no test may need a resolver).
    lookup = socket.gaierror(-2, "Name or service not known")
    failed = urllib3.exceptions.NameResolutionError("dap.invalid", None, lookup)
    wrapped = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", failed))
    assert no_answer_reason(wrapped) == "the host name does not resolve (DNS)"
    assert no_answer_reason(requests.ReadTimeout()) == "timed out"


def test_a_target_of_a_profile_left_out_says_so(write_config, run_cli):
    text = PROFILE + "[profiles.univ_b]\nemulator = true\n" + TARGET + 'tables = ["accounts"]\n'
    path = write_config(text)

    result = run_cli("plan", str(path), "--profile", "univ_b", "--target", "univ_a/*")

    assert result.code == 1
    assert "matches steps of univ_a, which --profile leaves out" in result.stderr
    assert "hint: add --profile univ_a" in result.stderr
