"""The deflate module: ISA-L when installed, zlib otherwise, with zlib's streaming API."""

from __future__ import annotations

import gzip
import importlib
import sys

import pytest

from dapctl import deflate

TEXT = b'{"key": {"id": 1}, "value": {"name": "caf\xc3\xa9"}}\n' * 50_000


def _roundtrip(module) -> None:
    packer = module.compressobj(1)
    packed = packer.compress(TEXT) + packer.flush()
    assert gzip.decompress(packed) == TEXT  # a standard gzip stream
    inflater = module.decompressobj()
    out = inflater.decompress(packed + packed, 1 << 16)  # bounded pieces, two members
    while not inflater.eof:
        out += inflater.decompress(inflater.unconsumed_tail, 1 << 16)
    assert out == TEXT and inflater.unused_data == packed


def test_isal_is_used_where_it_is_installed():
    pytest.importorskip("isal", reason="no isal wheel on this platform: zlib is used")
    assert deflate.IMPLEMENTATION == "isal"
    _roundtrip(deflate)


def test_without_isal_zlib_does_the_same_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)  # an import of isal now fails
    fallback = importlib.reload(deflate)
    try:
        assert fallback.IMPLEMENTATION == "zlib"
        _roundtrip(fallback)
        with pytest.raises(fallback.ERRORS):
            fallback.decompressobj().decompress(b"\x1f\x8b\x08\x00" + b"\xff" * 20)
    finally:
        monkeypatch.undo()
        importlib.reload(deflate)


@pytest.mark.parametrize("use_isal", [True, False], ids=["isal", "zlib"])
def test_a_piece_limit_inside_a_multi_member_part_checks_every_member(monkeypatch, use_isal):
    """A 1 MiB piece ending inside a member, with the next member in the same chunk: zlib
    keeps a stale unconsumed_tail after eof, which once made the check spin forever."""
    if use_isal:
        pytest.importorskip("isal")
    else:
        monkeypatch.setitem(sys.modules, "isal", None)
    module = importlib.reload(deflate)
    try:
        from dapctl.api import wire

        monkeypatch.setattr(wire, "deflate", module)
        member = gzip.compress(TEXT * 3, compresslevel=1)  # 7.5 MB of text: several pieces
        seen: list[int] = []
        verifier = wire.GzipVerifier(on_text=lambda text: seen.append(len(text)))
        verifier.feed(member + member)
        assert verifier.finish() == 2 and sum(seen) == 2 * len(TEXT) * 3
    finally:
        monkeypatch.undo()
        importlib.reload(deflate)
