"""Two thread pools and the count of work still in flight: the machinery under apply.

``Pipeline`` runs tasks on named pools (apply's job pool and collect pool), counts what is
queued or running, and lets the caller wait until nothing is left, since a task may queue
more (a job that completes queues its collection; a listed namespace queues its tables).
``stop`` makes it refuse new work; ``interrupt`` also cancels what has not started and waits
for what has, so Ctrl-C leaves the state consistent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager


class Pipeline:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._idle = threading.Condition()
        self._outstanding = 0
        self._futures: list[Future[None]] = []

    @contextmanager
    def running(self, **workers: int) -> Iterator[None]:
        """Open one pool per keyword (name=threads) for the block; shut them down after."""
        with ExitStack() as stack:
            for name, count in workers.items():
                pool = ThreadPoolExecutor(max(1, count), thread_name_prefix=f"dapctl-{name}")
                self._pools[name] = stack.enter_context(pool)
            try:
                yield
            finally:
                self._pools.clear()

    def spawn(self, pool: str, task: Callable[..., None], *args: object) -> None:
        """Run ``task(*args)`` on ``pool`` unless the pipeline is stopping."""
        with self._idle:
            if self.stop.is_set():
                return
            self._outstanding += 1
            self._futures.append(self._pools[pool].submit(self._guarded, task, *args))

    def _guarded(self, task: Callable[..., None], *args: object) -> None:
        try:
            task(*args)
        finally:
            with self._idle:
                self._outstanding -= 1
                self._idle.notify_all()

    def wait(self) -> None:
        """Until no task is queued or running (tasks may spawn more meanwhile)."""
        with self._idle:
            self._idle.wait_for(lambda: self._outstanding == 0)

    def interrupt(self) -> None:
        """Stop taking work, cancel what has not started, wait for what has."""
        self.stop.set()
        with self._idle:
            for future in self._futures:
                if future.cancel():
                    self._outstanding -= 1
            self._idle.wait_for(lambda: self._outstanding == 0)
