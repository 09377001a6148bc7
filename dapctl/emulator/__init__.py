"""The built-in DAP emulator: a local, credential-free stand-in for the DAP Query API.

It serves the Identity Service login, the Query API (tables, schemas, snapshot and incremental
jobs, object URLs) and pre-signed gzip downloads on 127.0.0.1, over deterministic synthetic
Canvas-like data with a controllable data clock, server-side rate limits and fault knobs.

Public API::

    from dapctl.emulator import Emulator, EmulatorSettings, Faults, RateLimits
    from dapctl.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    with Emulator(EmulatorSettings.for_tests(), faults=Faults(error_every=3)) as emu:
        emu.base_url                     # "http://127.0.0.1:<port>"
        emu.faults.fail_logins(2, status=403)
        emu.change("canvas", "accounts", inserts=3, updates=2, deletes=1)
        emu.advance(3600)
        emu.expected_snapshot("canvas", "accounts")
        emu.expected_changes("canvas", "accounts", since, until)
        emu.stats.jobs_created

Module map: `settings` (fixed configuration), `faults` (live knobs), `catalog` (tables,
schemas, value synthesis), `data` (data clock and versioned records), `live` (data that moves
with the wall clock, for the demo), `formats` (encoders and parts), `jobs` (jobs, objects,
URL signing), `jwt`, `ratelimit`, `stats`, `responses` (error shape), `api` (DAP endpoints),
`control` (``/_emulator/`` test endpoints), `server` (HTTP), `emulator` (lifecycle and
helpers), `cli` (the ``dapctl emulator`` subcommand).
"""

from __future__ import annotations

from dapctl.emulator.data import ChangeResult
from dapctl.emulator.emulator import Emulator
from dapctl.emulator.faults import Faults
from dapctl.emulator.settings import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorSettings,
    RateLimits,
)
from dapctl.emulator.stats import Stats

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "ChangeResult",
    "Emulator",
    "EmulatorSettings",
    "Faults",
    "RateLimits",
    "Stats",
]
