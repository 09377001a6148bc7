"""Pytest fixtures that start DAP emulators on free loopback ports.

- ``make_emulator(**overrides)``: a factory; keyword arguments are `EmulatorSettings` fields
  (applied over `EmulatorSettings.for_tests()`) or `Faults` knob names, plus ``clock=`` and
  ``faults=``. Every emulator it started is stopped at teardown.
- ``emulator``: one started emulator with the test defaults (no rate limits, instant jobs,
  40-row tables, a fixed data clock start), function scoped.
- ``module_emulator``: the same, shared by a module (do not change its knobs or data).
- ``emulator_factory(started)``: the factory itself, for custom-scoped fixtures with knobs.

Register with ``pytest_plugins = ["tests.emulator_fixtures"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dapctl.emulator import Emulator, EmulatorSettings, Faults
from dapctl.emulator.faults import KNOBS

EmulatorFactory = Callable[..., Emulator]


def emulator_factory(started: list[Emulator]) -> EmulatorFactory:
    """A make_emulator-style factory that records what it started in ``started``."""

    def make(
        *,
        clock: Callable[[], float] = time.time,
        faults: Faults | None = None,
        **overrides: Any,
    ) -> Emulator:
        knobs = {name: overrides.pop(name) for name in list(overrides) if name in KNOBS}
        if faults is None:
            faults = Faults(**knobs)
        elif knobs:
            faults.update(**knobs)
        settings = EmulatorSettings.for_tests(**overrides)
        emu = Emulator(settings, clock=clock, faults=faults).start()
        started.append(emu)
        return emu

    return make


@pytest.fixture
def make_emulator() -> Iterator[EmulatorFactory]:
    started: list[Emulator] = []
    yield emulator_factory(started)
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> Emulator:
    return make_emulator()


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    started: list[Emulator] = []
    yield emulator_factory(started)()
    for emu in started:
        emu.stop()
