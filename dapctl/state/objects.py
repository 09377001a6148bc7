"""State in a bucket: the backend ``[settings] state = "s3://bucket/prefix/"`` chooses (or
``gs://``, ``az://``: any store of ``objects.registry``).

The state is one object, ``<prefix><namespace>/dapctl.state.json`` (the namespace is
``state_namespace``, by default the config file's name, so several configs share a prefix as
Terraform's workspaces do), beside its lock ``dapctl.state.lock`` (``object_lock``). Every
write compares and swaps with a conditional request (``Objects.put``): only if the object
still has the version this store last read or wrote (S3 and Azure: ``If-Match`` its ETag; GCS:
``ifGenerationMatch``), or only if absent for the first state, so of two writers that read the
same state exactly one succeeds and the other gets ``StateConflictError``; ``SerialGuard``
adds the lineage and serial rules and their messages. A write first checks that this
holder's lock was not taken over (``fence``). Keep earlier versions with the bucket's own
versioning; credentials and endpoint come from each cloud's standard chain and variables.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from dapctl.buckets import parse_url
from dapctl.errors import ConfigError, StateConflictError, StateError
from dapctl.objects import Conflict, open_objects
from dapctl.state.backends import state_namespace
from dapctl.state.documents import ObjectDocuments
from dapctl.state.model import State, parse_state
from dapctl.state.object_lock import TTL, ObjectLock
from dapctl.state.store import LockHolder, SerialGuard

if TYPE_CHECKING:
    from dapctl.loading import LoadedConfig

STATE_NAME, LOCK_NAME = "dapctl.state.json", "dapctl.state.lock"


class ObjectStateStore:
    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        where: str = "state",
        ttl: float = TTL,
        fs: Any = None,
    ) -> None:
        base = url if url.endswith("/") else url + "/"
        try:
            parsed = parse_url(f"{base}{namespace}/{STATE_NAME}")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self.key = parsed.key
        self.objects = open_objects(parsed.scheme, parsed.bucket, error=StateError, fs=fs)
        self._guard = SerialGuard(str(parsed))
        lock_key = self.key.removesuffix(STATE_NAME) + LOCK_NAME
        self._lock = ObjectLock(self.objects, lock_key, location=self.location, ttl=ttl)

    @property
    def location(self) -> str:
        return self._guard.location

    def documents(self, kind: str) -> ObjectDocuments:
        return ObjectDocuments(self.objects, self.key.removesuffix(STATE_NAME) + f"{kind}/")

    def read(self) -> State | None:
        got = self.objects.get(self.key)
        if got is None:
            self._guard.saw(None, None)
            return None
        state = parse_state(got[0], source=self.location)
        self._guard.saw(state, got[1])
        return state

    def _current(self) -> State | None:
        got = self.objects.get(self.key)
        return None if got is None else parse_state(got[0], source=self.location)

    def write(self, state: State) -> None:
        self._lock.fence()
        seen = self._guard.token
        self._guard.check(state, seen, self._current)  # lineage, serial; the condition the rest
        data = state.to_bytes()
        try:
            if seen is None:
                version = self.objects.put(self.key, data, if_absent=True)
            else:
                version = self.objects.put(self.key, data, if_match=str(seen))
        except Conflict:
            head = self.objects.head(self.key)  # someone wrote it since: say who, as check does
            self._guard.check(state, head.token if head else None, self._current)
            raise StateConflictError(
                f"{self.location}: the state changed since it was read"
            ) from None
        self._guard.saw(state, version)

    def discard(self) -> None:
        """Remove the state, if it is still what was last read."""
        head = self.objects.head(self.key)
        current = head.token if head else None
        changed = StateConflictError(
            f"{self.location}: the state changed since it was read; nothing was removed"
        )
        if current != self._guard.token:
            raise changed
        if current is not None:
            try:
                self.objects.delete(self.key, if_match=current)
            except Conflict:
                raise changed from None
        self._guard.saw(None, None)

    def lock(self, *, timeout: float, command: str) -> AbstractContextManager[None]:
        return self._lock.held(timeout=timeout, command=command)

    def lock_info(self) -> LockHolder | None:
        found = self._lock.found()
        return None if found is None else found[0]

    def force_unlock(self, *, force: bool) -> LockHolder | None:
        return self._lock.force_unlock(force=force)


def open_objects_state(value: str, *, loaded: LoadedConfig, where: str) -> ObjectStateStore:
    """The backend registry's opener: ``value`` is a bucket URL of any object store."""
    return ObjectStateStore(value, namespace=state_namespace(loaded), where=where)
