"""``[settings] file_mode``: output files another user's loader may read (issue "Tried as a
new user would", item 16); private by default."""

from __future__ import annotations

import os
import stat

import pytest

from dapctl.errors import ConfigError
from dapctl.loading import load_config
from tests.apply_helpers import apply, config_text


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def outputs(path):
    return [p for p in (path.parent / "out").rglob("*") if p.is_file()]


def test_outputs_are_private_by_default(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))

    apply(path, emu)

    assert [mode_of(p) for p in outputs(path)] == [0o600]
    assert mode_of(path.parent / "out") == 0o700


def test_file_mode_sets_files_and_new_folders_whatever_the_umask(make_emulator, write_config):
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]', settings='file_mode = "0640"'))
    old = os.umask(0o077)  # would take the group's bits off
    try:
        apply(path, emu)
    finally:
        os.umask(old)

    assert [mode_of(p) for p in outputs(path)] == [0o640]
    assert mode_of(path.parent / "out") == mode_of(path.parent / "out" / "univ_a") == 0o750
    state = load_config(path).state_path
    assert mode_of(state) == 0o600  # the state stays private


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0400", "the owner must keep read and write"),
        ("0755", "never executable"),
        ("0666", "anyone may write"),
        ("640x", 'an octal mode such as "0640"'),
        ("rw-r-----", 'an octal mode such as "0640"'),
    ],
)
def test_a_bad_file_mode_is_refused_naming_the_key(tmp_path, value, message):
    path = tmp_path / "c.toml"
    path.write_text(
        f'[settings]\nfile_mode = "{value}"\n[profiles.univ_a]\nemulator = true\n'
        '[[targets]]\nname = "core"\ntables = ["accounts"]\n'
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "c.toml:2: settings.file_mode" in str(caught.value)
    assert message in str(caught.value)
