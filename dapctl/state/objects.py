"""State in S3: the backend ``[settings] state = "s3://bucket/prefix/"`` chooses.

The state is one object, ``<prefix><namespace>/dapctl.state.json`` (the namespace is
``state_namespace``, by default the config file's name, so several configs share a prefix as
Terraform's workspaces do), beside its lock ``dapctl.state.lock`` (``object_lock``). Every
write compares and swaps with a conditional request: ``If-Match`` the ETag this store last
read or wrote, or ``If-None-Match: *`` for the first state, so of two writers that read the
same state exactly one succeeds and the other gets ``StateConflictError``; ``SerialGuard``
adds the lineage and serial rules and their messages. A write first checks that this
holder's lock was not taken over (``fence``). Keep earlier versions with the bucket's own
versioning; credentials and endpoint come from the standard chain and variables (s3fs, the
``s3`` extra). Only ``s3://`` is served: GCS and Azure states are refused by name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from dapctl.buckets import parse_url
from dapctl.errors import ConfigError, StateConflictError
from dapctl.state.model import State, parse_state
from dapctl.state.object_lock import TTL, ObjectLock
from dapctl.state.s3 import Conflict, S3Objects
from dapctl.state.store import LockHolder, SerialGuard

STATE_NAME, LOCK_NAME = "dapctl.state.json", "dapctl.state.lock"


class ObjectStateStore:
    def __init__(self, url: str, *, namespace: str, where: str = "state", ttl: float = TTL) -> None:
        base = url if url.endswith("/") else url + "/"
        try:
            parsed = parse_url(f"{base}{namespace}/{STATE_NAME}")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if parsed.scheme != "s3":
            raise ConfigError(
                f"{where}: dapctl keeps state in s3:// buckets, not yet in {parsed.scheme}://",
                hint="keep the state in S3, PostgreSQL or a local file; outputs may go anywhere",
            )
        self.key = parsed.key
        self.objects = S3Objects(parsed.bucket)
        self._guard = SerialGuard(str(parsed))
        lock_key = self.key.removesuffix(STATE_NAME) + LOCK_NAME
        self._lock = ObjectLock(self.objects, lock_key, location=self.location, ttl=ttl)

    @property
    def location(self) -> str:
        return self._guard.location

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
                etag = self.objects.put(self.key, data, if_absent=True)
            else:
                etag = self.objects.put(self.key, data, if_match=str(seen))
        except Conflict:
            head = self.objects.head(self.key)  # someone wrote it since: say who, as check does
            self._guard.check(state, head.etag if head else None, self._current)
            raise StateConflictError(
                f"{self.location}: the state changed since it was read"
            ) from None
        self._guard.saw(state, etag)

    def discard(self) -> None:
        """Remove the state, if it is still what was last read."""
        head = self.objects.head(self.key)
        current = head.etag if head else None
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
