"""Rate-limit budgets that outlive the process: what this machine sent, per credential.

DAP counts a client's requests over the last minute whoever sent them; a process that
started with a full budget would earn 429s right after another dapctl (``dapctl tables``
then ``apply``, or two applies back to back). So each profile's recent sends are kept in a
small file per base URL and client ID in the user's cache folder
(``$XDG_CACHE_HOME/dapctl/budgets``, else ``~/.cache/dapctl/budgets``): read when the
profile's client is made, merged back when it is closed, under an ``flock``. The file holds
only send times per endpoint class, no secret; it is created 0600 in a 0700 folder. A
process killed mid-run leaves its sends unrecorded (the server's 429 and ``Retry-After``
still cover that); processes running at the same moment each see the sends of those that
finished before them. A shared state backend keeps budgets across machines instead
(``ratelimit.SendLedger``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from dapctl.api.ratelimit import RateLimits
from dapctl.files import atomic_write_bytes, ensure_private_dir

log = logging.getLogger("dapctl.ratelimit")


def credential_key(base_url: str, client_id: str) -> str:
    """Names a credential's budgets without holding anything secret."""
    return hashlib.sha256(f"{base_url}\n{client_id}".encode()).hexdigest()[:24]


def budget_path(base_url: str, client_id: str, environ: Mapping[str, str]) -> Path:
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    key = credential_key(base_url, client_id)
    return Path(cache).expanduser() / "dapctl" / "budgets" / f"{key}.json"


@contextlib.contextmanager
def kept(
    limits: RateLimits,
    path: Path,
    *,
    wall: Callable[[], float],
    monotonic: Callable[[], float],
) -> Iterator[None]:
    """Seed ``limits`` with the sends recorded at ``path``; record them back afterwards."""
    offset = wall() - monotonic()
    try:
        with _locked(path):
            recorded = _read(path)
        for name, limiter in limits.by_name().items():
            limiter.seed(recorded.get(name, []), offset=offset)
    except OSError as exc:  # a cache that cannot be used must not stop an export
        log.debug("rate-limit budget %s not read: %s", path, exc)
    try:
        yield
    finally:
        offset = wall() - monotonic()
        mine = {name: lim.recent(offset=offset) for name, lim in limits.by_name().items()}
        try:
            with _locked(path):
                merged = _read(path)
                for name, sends in mine.items():
                    merged[name] = sorted({*merged.get(name, []), *sends})[-1000:]
                atomic_write_bytes(path, json.dumps(merged).encode())
        except OSError as exc:
            log.debug("rate-limit budget %s not written: %s", path, exc)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    ensure_private_dir(path.parent)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, list[float]]:
    try:
        raw = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError, RecursionError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): [float(t) for t in sends if isinstance(t, int | float)]
        for name, sends in raw.items()
        if isinstance(sends, list)
    }
