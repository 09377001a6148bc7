"""The ``Objects`` protocol: one bucket, with the conditional requests state and outputs need.

State in a bucket uses ``get`` (bytes and version token), ``head`` (version token and age by
the server's own clock, so no two machines' clocks are compared), ``put`` (only if the object
still has the given version token, or only if absent) and ``delete`` (only if unchanged); a
refused condition raises ``Conflict``. The version token is whatever the store compares: an
ETag on S3 and Azure, a generation number on GCS. Outputs use ``check`` (the bucket is there
and reachable), ``exists``, ``put_once`` (a local file as a new object, whole or not at all,
never over an existing one), ``metadata``, ``remove`` and ``abort_uploads`` (unfinished
uploads a killed process left, where the store keeps any). Every other failure is raised as
the caller's ``DapctlError`` naming the bucket (``missing`` for a bucket that is not there).

``FsspecObjects`` is what the stores share: the scheme's fsspec filesystem, made on first use
(a missing package is an error naming the extra), and failures turned into errors.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dapctl.errors import DapctlError, OutputError
from dapctl.objects.diagnose import conflict, diagnose

T = TypeVar("T")


class Conflict(Exception):
    """A conditional request was refused: the object is not what the condition said."""


@dataclass(frozen=True)
class Head:
    token: str  # the version the store compares: an ETag, or a GCS generation
    age: float  # seconds since it was last written, by the server's clock


class Objects(Protocol):
    """One bucket (an Azure container) of an object store."""

    scheme: str
    name: str
    root: str

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version token, or ``None`` if there is none."""
        ...

    def head(self, key: str) -> Head | None: ...

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write ``data`` only if the object has version ``if_match`` or is absent
        (``if_absent``); return the new version token, or raise ``Conflict``."""
        ...

    def delete(self, key: str, *, if_match: str) -> None:
        """Remove the object only if it still has version ``if_match``, else ``Conflict``."""
        ...

    def check(self) -> None:
        """Fail now, naming the bucket, if it is missing or out of reach."""
        ...

    def exists(self, key: str) -> bool: ...

    def put_once(self, local: Path, key: str, *, metadata: Mapping[str, str]) -> bool:
        """Upload ``local`` as a new object; ``False`` (nothing written) when one exists."""
        ...

    def metadata(self, key: str) -> dict[str, str]:
        """The user metadata an object carries."""
        ...

    def remove(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]:
        """The keys of every object under ``prefix``."""
        ...

    def abort_uploads(self, key: str) -> int:
        """Abort unfinished uploads of exactly ``key``; how many there were."""
        ...

    def missing(self, holding: str = "") -> DapctlError:
        """The error for a bucket that does not exist (``holding``: what it was to hold)."""
        ...


class FsspecObjects:
    """What the stores share: the fsspec filesystem, paths, and failures as errors."""

    protocol = ""  # fsspec's name for the store
    package = ""  # the module that implements it (s3fs, gcsfs, adlfs)
    extra = ""  # the dapctl extra that installs it

    def __init__(
        self, scheme: str, bucket: str, *, error: type[DapctlError] = OutputError, fs: Any = None
    ) -> None:
        self.scheme, self.name = scheme, bucket
        self.root = f"{scheme}://{bucket}"
        self._error = error
        self._fs = fs

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                self._fs = self.make_fs()
            except ImportError:
                raise self._error(
                    f"{self.root}: {self.scheme}:// needs {self.package}, which cannot be imported",
                    hint=f"pip install 'dapctl[{self.extra}]'",
                ) from None
        return self._fs

    def make_fs(self) -> Any:
        fsspec = importlib.import_module("fsspec")
        importlib.import_module(self.package)
        # A fresh instance: fsspec's cache would keep one made under other variables.
        return fsspec.filesystem(self.protocol, skip_instance_cache=True)

    def run(self, coroutine: Callable[[], Awaitable[T]]) -> T:
        """Run an async call of the store's client on the filesystem's event loop."""
        fs = self.fs
        result: T = importlib.import_module("fsspec.asyn").sync(fs.loop, coroutine)
        return result

    def path(self, key: str) -> str:
        return f"{self.name}/{key}"

    def missing(self, holding: str = "") -> DapctlError:
        return self._error(
            f"{self.root}: no such bucket{holding}",
            hint="create it, or correct its name in the config",
        )

    def remove(self, key: str) -> None:
        with self.failures(f"cannot remove {key}"):
            self.fs.rm_file(self.path(key))

    def keys(self, prefix: str) -> list[str]:
        path = self.path(prefix)
        with self.failures(f"cannot list {prefix}"):
            self.fs.invalidate_cache(path)
            try:
                found = self.fs.find(path)
            except FileNotFoundError:
                return []
        return sorted(str(p).removeprefix(f"{self.name}/") for p in found)

    def abort_uploads(self, key: str) -> int:
        return 0  # GCS and Azure drop uncommitted uploads themselves

    @contextlib.contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """A context that turns what the store raised into ``error`` naming the bucket."""
        try:
            yield
        except DapctlError:
            raise
        except Exception as exc:
            raise self.describe(exc, doing) from None

    @contextlib.contextmanager
    def conditional(self, doing: str) -> Iterator[None]:
        """As ``failures``, but a refused condition raised as ``Conflict``."""
        try:
            yield
        except (Conflict, DapctlError):
            raise
        except Exception as exc:
            if conflict(exc):
                raise Conflict from None
            raise self.describe(exc, doing) from None

    def describe(self, exc: BaseException, doing: str) -> DapctlError:
        message, hint = diagnose(exc, self.scheme)
        return self._error(f"{self.root}: {doing}: {message}", hint=hint)
