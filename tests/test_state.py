"""The state file: its format, ``with_step``, and ``LocalStateStore``'s atomic, private writes."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime

import pytest

from dapctl.errors import LockError, StateError
from dapctl.files import TEMP_SUFFIX
from dapctl.state import STATE_VERSION, LocalStateStore, PendingJob, State, StepState, parse_state
from dapctl.state.filelock import FileLock

T1 = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
ADDRESS = "univ_a/core/canvas.accounts"


def full_step() -> StepState:
    return StepState(
        watermark=T1,
        kind="incremental",
        schema_version=3,
        job_id="job-1",
        files=("data/a.jsonl.gz", "data/b.jsonl.gz"),
        bytes=1234,
        records=56,
        sha256="ab" * 32,
        completed_at=T1,
        pending=PendingJob(job_id="job-2", kind="snapshot", started_at=T1, fallback=True),
    )


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX)]


# --------------------------------------------------------------------------- the model


def test_new_state_has_version_serial_and_a_uuid_lineage():
    first, second = State(), State()

    assert (first.version, first.serial, first.steps) == (STATE_VERSION, 0, {})
    assert uuid.UUID(first.lineage)
    assert first.lineage != second.lineage


def test_unknown_address_reads_as_an_empty_step():
    assert State().step(ADDRESS) == StepState()


def test_with_step_bumps_serial_and_keeps_lineage():
    state = State(serial=7)

    updated = state.with_step(ADDRESS, full_step())

    assert (updated.serial, updated.lineage) == (8, state.lineage)
    assert updated.step(ADDRESS) == full_step()
    assert state.steps == {}  # the original is untouched


def test_with_step_none_forgets_the_step():
    state = State().with_step(ADDRESS, full_step()).with_step("other", StepState(watermark=T1))

    forgotten = state.with_step(ADDRESS, None)

    assert list(forgotten.steps) == ["other"]
    assert forgotten.serial == 3
    assert State().with_step("absent", None).serial == 1


def test_round_trip_through_json():
    state = State(serial=4).with_step(ADDRESS, full_step())

    again = parse_state(state.model_dump_json().encode(), source="x")

    assert again == state


# --------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"\xff\xfe{}"],
    ids=["empty", "truncated", "text", "not-utf8"],
)
def test_corrupt_state_names_the_file_and_suggests_the_backup(data):
    with pytest.raises(StateError) as caught:
        parse_state(data, source="/srv/dapctl.state.json")

    error = caught.value
    assert error.message.startswith("/srv/dapctl.state.json: not valid JSON")
    assert (
        error.hint
        == "restore /srv/dapctl.state.json.backup, the previous state dapctl keeps beside it"
    )


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"version": "1", "serial": 1, "lineage": "l", "steps": {}}, "'1'"),
        ({"serial": 1, "lineage": "l", "steps": {}}, "None"),
        ({"version": 0, "serial": 1, "lineage": "l", "steps": {}}, "0"),
    ],
    ids=["string", "missing", "older-than-any"],
)
def test_unknown_version_is_refused(data, shown):
    with pytest.raises(StateError) as caught:
        parse_state(json.dumps(data).encode(), source="s.json")

    assert caught.value.message == (
        f"s.json: state format version {shown} is not one this dapctl reads "
        "(it reads versions 1 to 2)"
    )


def test_a_state_written_by_a_newer_dapctl_is_refused_naming_the_upgrade():
    data = json.dumps({"version": 3, "serial": 1, "lineage": "l", "steps": {}}).encode()

    with pytest.raises(StateError) as caught:
        parse_state(data, source="s.json")

    assert caught.value.message == (
        "s.json: written by a newer dapctl (state format version 3; this dapctl reads up to 2)"
    )
    assert caught.value.hint == "upgrade dapctl; an older one must not rewrite a newer state"


@pytest.mark.parametrize("data", [[1, 2, 3], "state", 7], ids=["list", "string", "number"])
def test_a_json_document_that_is_no_object_is_named_for_what_it_is(data):
    with pytest.raises(StateError) as caught:
        parse_state(json.dumps(data).encode(), source="s.json")

    kind = type(data).__name__
    expected = "a JSON object with a version is expected"
    assert caught.value.message == f"s.json: not a dapctl state ({expected}, found a JSON {kind})"


def test_version_1_absolute_paths_are_migrated_relative_to_the_config_folder(tmp_path):
    inside, outside = str(tmp_path / "data" / "a.jsonl.gz"), "/elsewhere/b.jsonl.gz"
    step = {
        "files": [inside, outside],
        "pending": {
            "job_id": "j",
            "kind": "snapshot",
            "started_at": "2026-11-02T00:00:00Z",
            "output": inside,
        },
    }
    data = json.dumps({"version": 1, "serial": 4, "lineage": "l", "steps": {ADDRESS: step}})

    state = parse_state(data.encode(), source="s.json", base_dir=tmp_path)

    assert state.version == 2 and state.serial == 4
    assert state.steps[ADDRESS].files == ("data/a.jsonl.gz", outside)
    assert state.steps[ADDRESS].pending.output == "data/a.jsonl.gz"


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ({ADDRESS: {"watermark": "2026-11-02T03:04:05"}}, f"steps.{ADDRESS}.watermark"),
        ({ADDRESS: {"kind": "full"}}, f"steps.{ADDRESS}.kind"),
        ({ADDRESS: {"surprise": 1}}, f"steps.{ADDRESS}.surprise"),
        ([], "steps"),
    ],
    ids=["naive-watermark", "bad-kind", "unknown-key", "steps-not-a-map"],
)
def test_invalid_state_content_names_where(steps, where):
    data = json.dumps({"version": 1, "serial": 1, "lineage": "l", "steps": steps}).encode()

    with pytest.raises(StateError, match=rf"^s\.json: invalid state at {where}: "):
        parse_state(data, source="s.json")


# --------------------------------------------------------------------------- LocalStateStore


def test_missing_state_file_reads_as_none(tmp_path):
    assert LocalStateStore(tmp_path / "nope" / "state.json").read() is None
    assert not (tmp_path / "nope").exists()


def test_state_path_that_is_a_folder(tmp_path):
    with pytest.raises(StateError, match=r"cannot read the state file"):
        LocalStateStore(tmp_path).read()


def test_store_round_trip(tmp_path):
    store = LocalStateStore(tmp_path / "state.json")
    state = State(serial=2).with_step(ADDRESS, full_step())

    store.write(state)

    assert store.read() == state
    on_disk = json.loads((tmp_path / "state.json").read_text())
    assert list(on_disk) == ["version", "serial", "lineage", "steps"]
    assert on_disk["steps"][ADDRESS]["watermark"] == "2026-11-02T03:04:05Z"


def test_write_creates_a_private_file_in_a_private_folder(tmp_path):
    path = tmp_path / "new" / "state.json"

    LocalStateStore(path).write(State())

    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert leftovers(path.parent) == []
    assert not path.with_name("state.json.backup").exists()


def test_write_keeps_the_previous_version_as_backup(tmp_path):
    store = LocalStateStore(tmp_path / "state.json")
    first = State()
    second = first.with_step(ADDRESS, StepState(watermark=T1))
    store.write(first)
    first_bytes = store.path.read_bytes()

    store.write(second)

    assert store.backup_path == tmp_path / "state.json.backup"
    assert store.backup_path.read_bytes() == first_bytes
    assert mode_of(store.backup_path) == 0o600

    store.write(second.with_step(ADDRESS, None))

    assert parse_state(store.backup_path.read_bytes(), source="b") == second
    assert store.read().serial == 2
    assert leftovers(tmp_path) == []


def test_write_replaces_the_file_rather_than_rewriting_it(tmp_path):
    # A reader holding the old file keeps a whole old version: the write is a rename.
    store = LocalStateStore(tmp_path / "state.json")
    first = State()
    store.write(first)
    with open(store.path, "rb") as old:
        inode = os.fstat(old.fileno()).st_ino

        store.write(first.model_copy(update={"serial": 9}))

        assert json.loads(old.read())["serial"] == 0
    assert store.path.stat().st_ino != inode
    assert store.read().serial == 9


def test_write_makes_an_existing_world_readable_state_private(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(State().model_dump_json())
    path.chmod(0o644)
    store = LocalStateStore(path)

    store.write(store.read().model_copy(update={"serial": 1}))

    assert mode_of(path) == 0o600


def test_existing_folder_mode_is_left_alone(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)

    LocalStateStore(folder / "state.json").write(State())

    assert mode_of(folder) == 0o755


def test_unwritable_state_folder_is_a_state_error(tmp_path):
    (tmp_path / "afile").write_text("")

    with pytest.raises(StateError, match="cannot write the state file"):
        LocalStateStore(tmp_path / "afile" / "state.json").write(State())


def test_lock_is_a_file_lock_beside_the_state_naming_its_holder(tmp_path):
    store = LocalStateStore(tmp_path / "state.json")

    with store.lock(timeout=1.5, command="dapctl apply"):
        holder = store.lock_info()
        assert (tmp_path / "state.json.lock").exists()
        with pytest.raises(LockError, match="dapctl apply"):
            FileLock(tmp_path / "state.json.lock", timeout=0).__enter__()

    assert holder["command"] == "dapctl apply" and holder["pid"] == os.getpid()
    assert store.lock_info() is None


# --------------------------------------------------------------------------- through the CLI

CONFIG = """
[settings]
state = "state/dapctl.state.json"

[profiles.univ_a]
emulator = true

[[targets]]
name = "core"
tables = ["accounts"]
"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"version": 99}', "written by a newer dapctl (state format version 99"),
    ],
    ids=["corrupt", "unknown-version"],
)
def test_plan_with_a_bad_state_exits_1_naming_the_file(
    content, message, tmp_path, write_config, run_cli
):
    path = write_config(CONFIG)
    state_path = tmp_path / "state" / "dapctl.state.json"
    state_path.parent.mkdir()
    state_path.write_bytes(content)

    result = run_cli("plan", str(path))

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {state_path}: {message}")
    assert state_path.read_bytes() == content
    assert sorted(p.name for p in state_path.parent.iterdir()) == ["dapctl.state.json"]


def test_plan_with_a_corrupt_state_suggests_the_backup(tmp_path, write_config, run_cli):
    path = write_config(CONFIG)
    state_path = tmp_path / "state" / "dapctl.state.json"
    state_path.parent.mkdir()
    state_path.write_text("")

    result = run_cli("plan", str(path))

    assert f"hint: restore {state_path}.backup" in result.stderr


def test_plan_uses_a_stored_state(tmp_path, write_config, run_cli):
    path = write_config(CONFIG)
    store = LocalStateStore(tmp_path / "state" / "dapctl.state.json")
    store.write(State().with_step(ADDRESS, StepState(watermark=T1)))

    result = run_cli("plan", str(path), "--json")

    assert result.code == 0, result.stderr
    [step] = json.loads(result.stdout)["steps"]
    assert (step["action"], step["since"]) == ("incremental", "2026-11-02T03:04:05Z")
