"""Pre-signed URLs asked for many objects of one job at a time.

DAP's ``POST /dap/object/url`` takes a list of objects, and its budget (200 requests a
minute) counts requests, not objects: a job of 150 parts fetched one URL a request spends
most of a minute's budget, and a worker that takes over a frozen one's download may have
to wait a whole window for it. While a job is collected (``expecting``), the first part to
need a URL asks for it and for up to ``BATCH - 1`` more of the job's parts that still need
one, in the job's order (so a part whose thread came a moment late is not left to a request
of its own); those parts then take theirs from the book. A URL is used once, and only while
it is fresh (DAP's last about 15 minutes; a book entry is trusted for ``FRESH`` seconds):
a retry of a part, which may follow a refused (expired) URL, always asks anew. One request
stays within one job, whose objects live and expire together.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

BATCH = 50
FRESH = 600.0

Fetch = Callable[[Sequence[str]], dict[str, str]]


class UrlBook:
    """URLs fetched ahead for the parts of the jobs being collected; thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[str, ...]] = {}  # object id -> its job's object ids
        self._waiting: set[str] = set()  # parts that have not taken a URL yet
        self._urls: dict[str, tuple[str, float]] = {}  # fetched ahead, with when

    @contextlib.contextmanager
    def expecting(self, object_ids: Sequence[str]) -> Iterator[None]:
        """The parts of one job, about to be downloaded (in this order, give or take)."""
        job = tuple(object_ids)
        with self._lock:
            self._jobs.update(dict.fromkeys(job, job))
            self._waiting.update(job)
        try:
            yield
        finally:
            with self._lock:
                for object_id in job:
                    self._jobs.pop(object_id, None)
                    self._urls.pop(object_id, None)
                self._waiting.difference_update(job)

    def take(self, object_id: str, *, fresh: bool, fetch: Fetch) -> str:
        """``object_id``'s URL: from the book unless ``fresh`` (a retry) or stale, else
        fetched together with the URLs of the job's next parts still waiting for one."""
        with self._lock:  # held while fetching: the other parts' threads then find theirs
            self._waiting.discard(object_id)
            booked = self._urls.pop(object_id, None)
            now = self._clock()
            if booked is not None and not fresh and now - booked[1] < FRESH:
                return booked[0]
            batch = [object_id, *self._others(object_id, now)]
            urls = fetch(batch)
            fetched = self._clock()
            for other in batch[1:]:
                if other in urls:
                    self._urls[other] = (urls[other], fetched)
            return urls[object_id]

    def _others(self, object_id: str, now: float) -> list[str]:
        """The job's other parts still waiting with no fresh URL in the book, in job order:
        earlier ones too, whose threads started before this one but have not asked yet."""
        job = self._jobs.get(object_id, ())
        wanted = (o for o in job if o != object_id and o in self._waiting)
        return [o for o in wanted if not self._fresh(o, now)][: BATCH - 1]

    def _fresh(self, object_id: str, now: float) -> bool:
        booked = self._urls.get(object_id)
        return booked is not None and now - booked[1] < FRESH
