"""Documents kept beside the state: small named JSON files each state backend stores where
it stores the state (run history, for now).

`Documents` is the seam: ``names()``, ``get``, ``put`` (the whole document replaced at once:
a reader sees the old one or the new one, never half) and ``remove``. Each document has ONE
writer, the process that made it (another only marks a dead writer's document), so no
compare-and-swap is needed. Every `StateStore` backend offers ``documents(kind)`` (the
`KeepsDocuments` capability): a local state keeps them in a private folder beside its file
(``<state>.d/<kind>/``), a PostgreSQL state in ``dapctl.state_documents`` (made on first use:
a database whose other tables predate it reads as before), a bucket state under its
namespace's prefix, a memory state in its backend.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dapctl.errors import StateError
from dapctl.files import atomic_write_bytes, ensure_private_dir, sweep_stale_temp_files
from dapctl.objects.base import Objects


class Documents(Protocol):
    """One kind of document beside one state."""

    location: str

    def names(self) -> list[str]: ...

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, data: bytes) -> None: ...

    def remove(self, name: str) -> None: ...


@runtime_checkable
class KeepsDocuments(Protocol):
    """A `StateStore` that keeps documents beside its state."""

    def documents(self, kind: str) -> Documents: ...


class FolderDocuments:
    """Documents as files in a private folder, each written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)

    def names(self) -> list[str]:
        """The documents' names; the temporary files a killed writer left are removed on
        the way (a run's document is rewritten after every step, so a kill often lands in
        a write). A reader lists first, so nothing a dead process left outlives it."""
        try:
            found = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"{self.folder}: cannot list: {exc.strerror}") from None
        sweep_stale_temp_files(self.folder)
        return sorted(n.removesuffix(".json") for n in found if n.endswith(".json"))

    def get(self, name: str) -> bytes | None:
        try:
            return (self.folder / f"{name}.json").read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.folder}/{name}.json: cannot read: {exc.strerror}") from None

    def put(self, name: str, data: bytes) -> None:
        try:
            ensure_private_dir(self.folder)
            atomic_write_bytes(self.folder / f"{name}.json", data)
        except OSError as exc:
            raise StateError(f"{self.folder}/{name}.json: cannot write: {exc.strerror}") from None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{name}.json").unlink()


class MemoryDocuments:
    """Documents in a dict a memory backend shares between its stores."""

    def __init__(self, shelf: dict[str, bytes], location: str) -> None:
        self._shelf, self.location = shelf, location
        self._mutex = threading.Lock()

    def names(self) -> list[str]:
        with self._mutex:
            return sorted(self._shelf)

    def get(self, name: str) -> bytes | None:
        return self._shelf.get(name)

    def put(self, name: str, data: bytes) -> None:
        with self._mutex:
            self._shelf[name] = data

    def remove(self, name: str) -> None:
        with self._mutex:
            self._shelf.pop(name, None)


class ObjectDocuments:
    """Documents as objects under a prefix of the state's bucket."""

    def __init__(self, objects: Objects, prefix: str) -> None:
        self.objects, self.prefix = objects, prefix
        self.location = f"{objects.root}/{prefix}"

    def names(self) -> list[str]:
        keys = self.objects.keys(self.prefix)
        return sorted(k.removeprefix(self.prefix).removesuffix(".json") for k in keys)

    def get(self, name: str) -> bytes | None:
        got = self.objects.get(f"{self.prefix}{name}.json")
        return None if got is None else got[0]

    def put(self, name: str, data: bytes) -> None:
        self.objects.put(f"{self.prefix}{name}.json", data)

    def remove(self, name: str) -> None:
        with contextlib.suppress(Exception):  # gone already: another run trimmed it
            self.objects.remove(f"{self.prefix}{name}.json")


_TABLE = """
SELECT pg_advisory_xact_lock(hashtextextended('dapctl:setup', 0));
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE TABLE IF NOT EXISTS dapctl.state_documents (
    namespace text NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    body text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, kind, name)
)
"""


class PostgresDocuments:
    """Documents as rows of ``dapctl.state_documents``, by namespace and kind."""

    def __init__(
        self,
        transaction: Callable[[str], AbstractContextManager[Any]],
        namespace: str,
        kind: str,
        location: str,
    ) -> None:
        self._transaction, self._key = transaction, (namespace, kind)
        self.location = f"{location} ({kind})"
        self._ready = False

    @contextlib.contextmanager
    def _cursor(self, doing: str) -> Iterator[Any]:
        with self._transaction(doing) as cur:
            if not self._ready:
                cur.execute(_TABLE.encode())
            yield cur
        self._ready = True

    def names(self) -> list[str]:
        query = "SELECT name FROM dapctl.state_documents WHERE namespace = %s AND kind = %s"
        with self._cursor("cannot list documents") as cur:
            return sorted(str(n) for (n,) in cur.execute(query, self._key).fetchall())

    def get(self, name: str) -> bytes | None:
        query = (
            "SELECT body FROM dapctl.state_documents "
            "WHERE namespace = %s AND kind = %s AND name = %s"
        )
        with self._cursor("cannot read a document") as cur:
            row = cur.execute(query, (*self._key, name)).fetchone()
        return None if row is None else str(row[0]).encode()

    def put(self, name: str, data: bytes) -> None:
        query = (
            "INSERT INTO dapctl.state_documents (namespace, kind, name, body) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (namespace, kind, name) "
            "DO UPDATE SET body = EXCLUDED.body, updated_at = now()"
        )
        with self._cursor("cannot write a document") as cur:
            cur.execute(query, (*self._key, name, data.decode()))

    def remove(self, name: str) -> None:
        query = (
            "DELETE FROM dapctl.state_documents WHERE namespace = %s AND kind = %s AND name = %s"
        )
        with self._cursor("cannot remove a document") as cur:
            cur.execute(query, (*self._key, name))
