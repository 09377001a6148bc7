"""Deflate and inflate: ISA-L (``isal``) where its wheel is installed, zlib where it is not.

Every byte of a downloaded part is inflated once to check its gzip stream and count its
records, and CSV/TSV into ``.gz`` is deflated again; with zlib that held a large table to a
fraction of a loopback download (issue 13). Measured here on 38 MB of DAP-like JSON Lines:
inflate 330 MB/s (zlib) vs 700 (isal) vs 610 (zlib-ng); deflate at level 1 210 MB/s and
4.7 MB (zlib) vs 990 MB/s and 3.9 MB (isal) vs 480 MB/s and 5.8 MB (zlib-ng). ISA-L releases
the GIL, so parts inflate on both cores. Its objects follow zlib's API (``eof``,
``unused_data``, ``unconsumed_tail``, ``max_length``), which is all this module promises.
``IMPLEMENTATION`` names the one in use.
"""

from __future__ import annotations

import zlib
from typing import Any

_fast: Any
try:
    from isal import isal_zlib as _fast
except ImportError:  # no wheel for this platform: zlib does the same work, slower
    _fast = None

IMPLEMENTATION = "isal" if _fast is not None else "zlib"
ERRORS: tuple[type[Exception], ...] = (zlib.error, *((_fast.error,) if _fast else ()))
DEFLATED = zlib.DEFLATED
GZIP_WBITS = 31  # a gzip wrapper around the deflate stream


def decompressobj(wbits: int = GZIP_WBITS) -> Any:
    """A streaming inflater (zlib's ``Decompress`` interface)."""
    return (_fast or zlib).decompressobj(wbits=wbits)


def compressobj(level: int, wbits: int = GZIP_WBITS) -> Any:
    """A streaming deflater (zlib's ``Compress`` interface)."""
    if _fast is not None:
        return _fast.compressobj(min(level, _fast.ISAL_BEST_COMPRESSION), DEFLATED, wbits)
    return zlib.compressobj(level, DEFLATED, wbits)
