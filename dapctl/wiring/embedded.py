"""The embedded emulator, started for a command whose profiles say ``emulator = true``.

The API client never imports the emulator: the wiring hands this factory to
``api.session.Connection.demo``, and ``connect`` starts it for the length of the command
when a profile needs it. The demo's data moves with the command's clock, so a later run sees
what changed since (``emulator.live``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from pydantic import SecretStr

from dapctl.credentials import Credentials


@contextlib.contextmanager
def embedded(clock: Callable[[], float]) -> Iterator[Callable[[str], Credentials]]:
    """An emulator on a free loopback port, and each profile's demo credentials for it."""
    from dapctl.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorSettings

    with Emulator(EmulatorSettings.embedded(), clock=clock) as emulator:

        def demo(profile: str) -> Credentials:
            return Credentials(
                profile, emulator.base_url, DEMO_CLIENT_ID, SecretStr(DEMO_CLIENT_SECRET)
            )

        yield demo
