"""Server answers, fuzzed (issue 5): whatever DAP (or a proxy in front of it) sends, apply ends
with results, and a failed step says why.

A stub server on 127.0.0.1 answers dapctl's calls with working defaults, except for one or two
endpoints where hypothesis picks the answer: malformed or truncated JSON, random JSON, jobs
and URL maps with fields missing or of the wrong type, statuses from 200 to 504 (redirect
loops and odd ``Retry-After`` values included), wrong content types, deep nesting, object ids
and URLs with ``../`` and absolute paths. The property: ``run_apply`` returns (no exception),
every step is ok or failed/skipped with a message, none failed with ``InternalError`` (a bug),
nothing is written outside the output and state folders, and no temporary file remains.
Hand-written cases cover a 50 MB JSON answer, a job that never ends (bounded by
``--job-timeout``), and an answer that trickles forever.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dapctl.api.session import Connection
from dapctl.apply import ApplyOptions
from dapctl.loading import load_config
from dapctl.wiring import run_apply
from tests.apply_helpers import GENEROUS, SECRET_VAR
from tests.hardening.helpers import scaled, temp_files, whole_gzip
from tests.stubs import JSON, Reply, Seen, StubServer, jsonl_gz


def capped_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.02))  # backoffs, Retry-After and expiry waits: all but skipped


CONNECTION = Connection(
    poll_initial=0.01, poll_max=0.02, timeout=(2.0, 3.0), sleep=capped_sleep, pool_size=4
)


def stub_config(stub: StubServer, *, tables: str = '["accounts"]', attempts: int = 2) -> str:
    return f"""
[settings]
state = "state/dapctl.state.json"

[retry]
attempts = {attempts}
initial_backoff = 0.01
max_backoff = 0.02

[profiles.univ_a]
base_url = "{stub.base_url}"
client_id = "stub-client"
client_secret_env = "{SECRET_VAR}"
{GENEROUS}

[[targets]]
name = "core"
tables = {tables}
output = "out/{{table}}/{{kind}}-{{timestamp}}.{{format}}.gz"
"""


def apply_against(stub: StubServer, root: Path, *, tables: str = '["accounts"]', **options: Any):
    path = root / "dapctl.toml"
    path.write_text(stub_config(stub, tables=tables))
    return run_apply(
        load_config(path),
        environ={SECRET_VAR: "stub-secret"},
        options=ApplyOptions(**{"job_timeout": 1.0, **options}),
        connection=CONNECTION,
    )


def check_results(results, root: Path, *, listed: bool = False) -> None:
    # A "tables = all" target whose namespace lists no table has no step to report.
    assert results or listed, "no step ran"
    for result in results:
        assert result.status in ("ok", "failed", "skipped"), result
        if result.status == "ok":
            for file in result.files:
                assert Path(file).is_relative_to(root / "out"), file
                # Parts pass through unparsed: a gzip of garbage is the server's business.
                assert whole_gzip(Path(file), json_lines=False), file
        else:
            assert result.error is not None and result.error.message.strip(), result
            assert result.error.type != "InternalError", (
                f"BUG: {result.address}: {result.error.message}"
            )
    check_confined(root)


def check_confined(root: Path) -> None:
    """Nothing outside ``root``'s out/ and state/ folders; the parent gained nothing."""
    assert [p.name for p in root.parent.iterdir()] == [root.name], list(root.parent.iterdir())
    for file in root.rglob("*"):
        relative = file.relative_to(root)
        assert relative.parts[0] in ("out", "state", "dapctl.toml"), file
    assert not temp_files(root), temp_files(root)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(dap_defaults=True) as server:
        yield server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "box" / "root"
    folder.mkdir(parents=True)
    return folder


# -- strategies ------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
ODD_IDS = st.sampled_from(
    ["../../../../tmp/evil", "/etc/passwd", "..", ".", "", "a/../../b", "x" * 5000, "\x00", "é/ü"]
)
ODD_URLS = st.sampled_from(
    [
        "",
        "/etc/passwd",
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "http://127.0.0.1:1/x",
        "http://[::1",
        "http://127.0.0.1:99999/",
        "STUB/objects/../../../etc/passwd",
        "STUB/objects/0?name=../../evil",
        "STUB/dap/object/url",
        "STUB/ids/auth/login",
    ]
)
TIMESTAMPS = st.sampled_from(
    [
        "2026-11-02T12:00:00Z",
        "garbage",
        "",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-02T12:00:00",
        "2026-11-02T12:00:00+14:00",
        0,
        1e300,
        None,
    ]
)


@st.composite
def mutated_job(draw: st.DrawFn, stub: StubServer) -> dict[str, Any]:
    job: dict[str, Any] = stub.complete_job()
    fields = [
        "id",
        "status",
        "expires_at",
        "at",
        "since",
        "until",
        "schema_version",
        "objects",
        "error",
    ]
    for name in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            job.pop(name, None)
        elif name == "status":
            job[name] = draw(
                st.sampled_from(["waiting", "running", "failed", "COMPLETE", "", None, 5])
            )
        elif name in ("expires_at", "at", "since", "until"):
            job[name] = draw(TIMESTAMPS)
        elif name == "objects":
            job[name] = draw(
                st.one_of(
                    st.lists(st.fixed_dictionaries({"id": ODD_IDS}), max_size=3),
                    JSON_VALUES,
                )
            )
        elif name == "id":
            job[name] = draw(st.one_of(ODD_IDS, JSON_VALUES))
        else:
            job[name] = draw(JSON_VALUES)
    return job


@st.composite
def mutated_urls(draw: st.DrawFn, stub: StubServer, seen: Seen | None = None) -> dict[str, Any]:
    ids = stub.object_ids
    urls: dict[str, Any] = {i: {"url": draw(ODD_URLS).replace("STUB", stub.base_url)} for i in ids}
    if draw(st.booleans()):
        urls[draw(ODD_IDS)] = {"url": draw(ODD_URLS).replace("STUB", stub.base_url)}
    if draw(st.booleans()):
        urls[ids[0]] = draw(JSON_VALUES)
    return {"urls": urls} if draw(st.integers(0, 4)) else draw(JSON_VALUES)


STATUSES = st.sampled_from(
    [200, 200, 200, 201, 302, 400, 401, 403, 404, 410, 418, 429, 500, 502, 503, 504]
)
CONTENT_TYPES = st.sampled_from(
    [
        JSON,
        JSON,
        "text/html",
        "text/plain",
        None,
        "application/json; charset=utf-16",
        "application/octet-stream",
    ]
)


@st.composite
def garbage(draw: st.DrawFn, stub: StubServer, endpoint: str) -> Reply:
    kind = draw(
        st.sampled_from(
            ["json", "shaped", "shaped", "bytes", "truncated", "deep", "digits", "empty", "html"]
        )
    )
    if kind == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    elif kind == "shaped":
        if endpoint in ("job", "poll"):
            shaped: Any = draw(mutated_job(stub))
        elif endpoint == "urls":
            shaped = draw(mutated_urls(stub))
        elif endpoint == "tables":
            shaped = {"tables": draw(st.lists(st.one_of(ODD_IDS, JSON_VALUES), max_size=3))}
        elif endpoint == "login":
            shaped = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "access_token": st.one_of(st.text(max_size=30), JSON_VALUES),
                        "expires_in": JSON_VALUES,
                    },
                )
            )
        else:
            return Reply(body=draw(object_bodies()), content_type="application/octet-stream")
        body = json.dumps(shaped).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "truncated":
        whole = json.dumps(stub.complete_job()).encode()
        body = whole[: draw(st.integers(0, len(whole) - 1))]
    elif kind == "deep":
        depth = draw(st.sampled_from([100, 10_000, 200_000]))
        body = b"[" * depth + b"]" * depth
    elif kind == "digits":
        body = b"1" * draw(st.sampled_from([10, 5000, 100_000]))
    elif kind == "empty":
        body = b""
    else:
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    status = draw(STATUSES)
    headers: dict[str, str] = {}
    if status == 302:
        headers["Location"] = draw(st.sampled_from(["/ids/auth/login", "/dap/job/job-1", "/x"]))
    if status == 429 and draw(st.booleans()):
        headers["Retry-After"] = draw(st.sampled_from(["0", "-1", "abc", "99999999999", "1e400"]))
    return Reply(status, body=body, headers=headers, content_type=draw(CONTENT_TYPES))


@st.composite
def object_bodies(draw: st.DrawFn) -> bytes:
    return draw(
        st.one_of(
            st.binary(max_size=100),
            st.just(jsonl_gz()[:-3]),
            st.just(jsonl_gz() + b"garbage"),
            st.just(b""),
            st.text(max_size=50).map(lambda t: jsonl_gz() + t.encode()),
            st.just(__import__("gzip").compress(b"not json at all\n\x00\xff")),
        )
    )


# -- the property ----------------------------------------------------------------------------


@settings(
    max_examples=scaled(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_answers_end_in_results(stub: StubServer, tmp_path: Path, data: st.DataObject):
    stub.reset()
    endpoints = data.draw(
        st.lists(
            st.sampled_from(["login", "tables", "job", "poll", "urls", "object"]),
            min_size=1,
            max_size=2,
            unique=True,
        )
    )
    tables = '"all"' if "tables" in endpoints else '["accounts"]'
    if "poll" in endpoints:
        stub.replies["job"] = Reply(json=stub.complete_job(status="running"))
    for endpoint in endpoints:
        stub.replies[endpoint] = data.draw(garbage(stub, endpoint), label=endpoint)
    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "root"
    root.mkdir()
    results = apply_against(stub, root, tables=tables)
    check_results(results, root, listed="tables" in endpoints)


@pytest.mark.parametrize("endpoint", ["tables", "job", "poll", "urls"])
def test_deeply_nested_json_fails_the_step_cleanly(stub: StubServer, root: Path, endpoint: str):
    stub.reset()
    if endpoint == "poll":
        stub.replies["job"] = Reply(json=stub.complete_job(status="running"))
    stub.replies[endpoint] = Reply(body=b"[" * 100_000 + b"]" * 100_000, content_type=JSON)
    tables = '"all"' if endpoint == "tables" else '["accounts"]'
    results = apply_against(stub, root, tables=tables)
    check_results(results, root)


def test_a_token_that_cannot_be_a_header_fails_the_profile(stub: StubServer, root: Path):
    stub.reset()
    stub.replies["login"] = Reply(json={"access_token": "t\u0100k\u20ac", "expires_in": 3600})
    results = apply_against(stub, root)
    check_results(results, root)


# -- hand-written cases ----------------------------------------------------------------------


def test_object_ids_and_urls_with_dotdot_write_nothing_outside(stub: StubServer, root: Path):
    stub.reset()
    stub.object_ids = ["../../../../../tmp/evil", "/etc/passwd", "a/../../b", ".."]
    base = stub.base_url
    stub.replies["urls"] = lambda seen: Reply(
        json={
            "urls": {
                item["id"]: {"url": f"{base}/objects/../../{n}/../etc/passwd?x=/../../"}
                for n, item in enumerate(json.loads(seen.body))
            }
        }
    )
    results = apply_against(stub, root)
    assert [r.status for r in results] == ["ok"], results
    assert results[0].records == 2 * len(stub.object_ids)
    check_results(results, root)


FIFTY_MB = 50 << 20


def test_a_50_mb_job_answer_is_read_within_bounds(stub: StubServer, root: Path):
    """A huge but valid answer works; a huge non-JSON one fails with a short message. The
    peak of Python allocations is reported, not bounded: requests reads a JSON answer whole."""
    import tracemalloc

    stub.reset()
    padding = "x" * FIFTY_MB
    stub.replies["poll"] = Reply(json=stub.complete_job(padding=padding))
    stub.replies["job"] = Reply(json=stub.complete_job(status="running"))
    tracemalloc.start()
    started = time.monotonic()
    try:
        results = apply_against(stub, root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert [r.status for r in results] == ["ok"], results
    assert elapsed < 30, elapsed
    print(f"50 MB job answer: {elapsed:.1f} s, peak Python allocations {peak / 2**20:.0f} MiB")

    stub.replies["poll"] = Reply(body=b"<" * FIFTY_MB, content_type="text/html")
    other = root.parent / "second"
    other.mkdir()
    results = apply_against(stub, other)
    (other / "dapctl.toml").unlink()
    assert [r.status for r in results] == ["failed"]
    assert len(results[0].error.message) < 500, len(results[0].error.message)


@pytest.mark.parametrize("flag", ["--job-timeout", "--timeout"])  # the name, too
def test_a_job_that_never_ends_is_bounded_by_job_timeout(
    stub: StubServer, root: Path, run_cli, flag: str
):
    stub.reset()
    stub.replies["job"] = stub.replies["poll"] = Reply(json=stub.complete_job(status="running"))
    path = root / "dapctl.toml"
    path.write_text(stub_config(stub))
    started = time.monotonic()
    result = run_cli("apply", str(path), flag, "1", environ={SECRET_VAR: "stub-secret"})
    elapsed = time.monotonic() - started
    assert result.code == 1, result
    assert "is still running after" in result.stdout, result.stdout
    assert "the next apply resumes it" in result.stdout, result.stdout
    assert "hint: raise --timeout" in result.stdout, result.stdout
    assert elapsed < 10, elapsed
    assert "Traceback" not in result.stderr
    # The job stays recorded, so the next apply resumes it instead of starting another.
    plan = run_cli("plan", str(path), environ={SECRET_VAR: "stub-secret"})
    assert "> univ_a/core/canvas.accounts" in plan.stdout, plan.stdout


def trickle(seconds: float, body: bytes) -> Iterator[bytes]:
    """``body`` one byte at a time over ``seconds``: a connection that never goes idle long
    enough for a read timeout, and never finishes either (until the bound)."""
    pause = seconds / len(body)
    for byte in body:
        time.sleep(pause)
        yield bytes([byte])


def test_a_trickling_job_answer_is_bounded_by_job_timeout(stub: StubServer, root: Path):
    stub.reset()
    stub.replies["job"] = Reply(json=stub.complete_job(status="running"))
    running = json.dumps(stub.complete_job(status="running")).encode()
    stub.replies["poll"] = lambda seen: Reply(body=trickle(8.0, running), content_type=JSON)
    started = time.monotonic()
    done = threading.Event()
    results: list = []

    def run() -> None:
        results.extend(apply_against(stub, root, job_timeout=1.0))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(20)  # the trickle ends after 8 s, so this never waits long
    elapsed = time.monotonic() - started
    assert finished
    assert [r.status for r in results] == ["failed"], results
    assert elapsed < 1.0 + 3.0 + 1.0, f"apply took {elapsed:.1f} s with --job-timeout 1"
