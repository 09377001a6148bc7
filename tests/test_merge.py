"""Parts counted and re-deflated while they download (outputs.parts), and merged (outputs.merge)."""

from __future__ import annotations

import csv
import gzip
import io
import random
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dapctl.outputs import parts
from dapctl.outputs.merge import MergeError, Merger
from dapctl.outputs.parts import PartBody, RecordCounter, newlines
from tests.apply_helpers import apply, config_text


def _members(data: bytes) -> int:
    """How many gzip members ``data`` holds, checking each one whole."""
    count = 0
    while data:
        inflater = zlib.decompressobj(wbits=31)
        inflater.decompress(data)
        assert inflater.eof, "a gzip member is cut off"
        count, data = count + 1, inflater.unused_data
    return count


def _pieces(text: bytes, rng: random.Random, largest: int = 9) -> list[bytes]:
    out, at = [], 0
    while at < len(text):
        step = rng.randint(1, largest)
        out.append(text[at : at + step])
        at += step
    return out


# -- counting ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, parts.VECTOR_MIN - 1, parts.VECTOR_MIN, 100_003])
def test_newlines_are_counted_exactly_at_every_size(size):
    text = random.Random(size).randbytes(size)
    vectors = parts._Vectors()
    vectors.load()
    assert vectors.module is not None  # numpy is a dependency: the vector count is tested
    assert newlines(text, vectors) == newlines(text, parts._Vectors()) == text.count(b"\n")


def test_numpy_loads_in_the_background_once_a_large_table_is_counted():
    vectors = parts._Vectors(after=5_500_000)
    text = b'{"id": 1}\n' * 100_000  # a MB a count: no import for the first five
    for _ in range(5):
        assert newlines(text, vectors) == 100_000
    assert vectors.module is None and vectors._left > 0  # no import started yet
    deadline = time.monotonic() + 60
    while vectors.get(len(text)) is None:  # the import runs; no count waits for it
        assert newlines(text, vectors) == 100_000
        assert time.monotonic() < deadline, "numpy never loaded"
        time.sleep(0.01)
    assert newlines(text, vectors) == 100_000


def test_without_numpy_newlines_are_counted_the_same(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)  # an import of numpy now fails
    vectors = parts._Vectors()
    vectors.load()
    assert vectors.module is None
    assert newlines(b'{"id": 1}\n' * 50_000 + b"no end", vectors) == 50_000


CELLS = st.sampled_from(["a", "", "1.5", 'say "hi"', "two\nlines", '"', "\r\n", "x,y", "NULL"])


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_csv_records_are_counted_whatever_the_quoting_and_the_chunks(rows, seed):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    text = out.getvalue().encode()
    counter = RecordCounter("csv")
    for piece in _pieces(text, random.Random(seed)):
        counter.feed(piece)
    assert counter.finish() == len(list(csv.reader(io.StringIO(out.getvalue(), newline=""))))


def test_a_csv_count_carries_an_open_quote_into_the_next_chunk():
    counter = RecordCounter("csv")
    for piece in (b'a,"x\n', b"\n", b'y"\n', b'b,""""\n', b"c"):
        counter.feed(piece)
    assert (counter.finish(), counter.pending) == (3, True)


# -- a CSV/TSV part's body, deflated again while it downloads -----------------------------------


def _body(tmp_path: Path, pieces: list[bytes], fmt: str = "csv") -> tuple[PartBody, bytes]:
    path = tmp_path / "part"
    with path.open("wb+") as handle:
        body = PartBody(fmt, handle)
        for piece in pieces:
            body.feed(piece)
        body.finish()
    return body, path.read_bytes()


def test_a_part_body_sets_the_header_aside_and_deflates_the_rest(tmp_path):
    text = b"id,name\r\n" + b"".join(b'%d,"n\r\n%d"\r\n' % (i, i) for i in range(5000))
    body, packed = _body(tmp_path, _pieces(text, random.Random(1), largest=4000))
    assert body.header == b"id,name\r\n"
    assert gzip.decompress(packed) == text[len(body.header) :]
    assert _members(packed) == 1
    assert (body.records, body.ends_open) == (5000, False)


@pytest.mark.parametrize(
    ("text", "header", "rest", "records"),
    [
        (b"id\tname\n", b"id\tname\n", b"", 0),
        (b"id\tname", b"id\tname\n", b"", 0),
        (b"", None, b"", 0),
        (b"id\n1\n2", b"id\n", b"1\n2", 2),
    ],
    ids=["header only", "header without newline", "empty", "last line open"],
)
def test_a_part_body_edge(tmp_path, text, header, rest, records):
    body, packed = _body(tmp_path, [text[:3], text[3:]], fmt="tsv")
    assert (body.header, gzip.decompress(packed), body.records) == (header, rest, records)


def test_a_part_body_starts_over_on_a_new_attempt(tmp_path):
    path = tmp_path / "part"
    with path.open("wb+") as handle:
        body = PartBody("csv", handle)
        body.feed(b"old,header\n1,2\n3,4\n")  # an attempt cut off
        body.restart()
        body.feed(b"id,v\n5,6\n")
        body.finish()
    assert (body.header, body.records) == (b"id,v\n", 1)
    assert gzip.decompress(path.read_bytes()) == b"5,6\n"


# -- merging the bodies --------------------------------------------------------------------------


class _Out:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def _merge_bodies(tmp_path: Path, texts: list[bytes]) -> tuple[bytes, int]:
    out = _Out()
    merger = Merger(fmt="csv", out=out, compress=True, passthrough=True)
    for i, text in enumerate(texts):
        body, _ = _body(tmp_path, [text])
        (tmp_path / "part").rename(tmp_path / f"part{i}")
        merger.add(tmp_path / f"part{i}", body)
        assert not (tmp_path / f"part{i}").exists()
    return out.data, merger.finish().records


def test_bodies_merge_into_one_header_and_every_record(tmp_path):
    data, records = _merge_bodies(
        tmp_path, [b"a,b\r\n1,2\r\n", b"a,b\r\n3,4\r\n5,6", b"a,b\r\n", b"a,b\r\n7,8\r\n"]
    )
    assert gzip.decompress(data) == b"a,b\r\n1,2\r\n3,4\r\n5,6\n7,8\r\n"
    assert records == 4
    assert _members(data) == 1 + 4 + 1  # the header, each part, the open line's end


def test_bodies_with_another_header_or_none_do_not_merge(tmp_path):
    with pytest.raises(MergeError, match="part1 has a different header"):
        _merge_bodies(tmp_path, [b"a,b\n1,2\n", b"a,c\n3,4\n"])
    with pytest.raises(MergeError, match="part1 is empty"):
        _merge_bodies(tmp_path, [b"a,b\n1,2\n", b""])


# -- through apply -------------------------------------------------------------------------------


NAME = "{table}-{timestamp}.{format}"


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_text_formats_into_gz_hold_what_the_plain_file_holds(make_emulator, write_config, fmt):
    emu = make_emulator(part_size=7)  # 40 rows: six parts, each with its own header row
    packed_target = config_text(emu, tables='["accounts"]', fmt=fmt, output=f"gz/{NAME}.gz")
    plain = packed_target.replace(f"gz/{NAME}.gz", f"plain/{NAME}")
    packed = apply(write_config(packed_target, "packed.toml"), emu)[0]
    text = apply(write_config(plain.replace("dapctl.state", "plain.state"), "plain.toml"), emu)[0]
    assert packed.status == text.status == "ok"
    data = Path(packed.files[0]).read_bytes()
    assert gzip.decompress(data) == Path(text.files[0]).read_bytes()
    assert packed.records == text.records == 40
    # Each part's body is its own member, deflated while it downloaded; the header is one more.
    assert _members(data) == 1 + 6


def test_cut_off_csv_parts_into_gz_are_deflated_again_from_their_start(make_emulator, write_config):
    emu = make_emulator(part_size=7)
    packed_target = config_text(emu, tables='["accounts"]', fmt="csv", output=f"gz/{NAME}.gz")
    plain = packed_target.replace(f"gz/{NAME}.gz", f"plain/{NAME}")
    text = apply(write_config(plain.replace("dapctl.state", "plain.state"), "plain.toml"), emu)[0]
    emu.faults.cut_downloads(2)  # every other try stops half way: its body starts over
    packed = apply(write_config(packed_target, "packed.toml"), emu)[0]
    assert packed.status == text.status == "ok"
    assert emu.stats.downloads_cut > 0
    assert gzip.decompress(Path(packed.files[0]).read_bytes()) == Path(text.files[0]).read_bytes()
    assert packed.records == text.records == 40
