"""The wiring: where the commands' concrete backends are chosen and handed to the core.

The core (``apply``, ``plan``, ``jobs``, ``landing``, ``workers``...) knows the seams only:
a ``StateStore``, ``StepRecords``, ``Destination`` factory and ``DapClient`` per profile.
This package builds them from a loaded config and the environment.

Module map:

- `apply`: ``run_apply``: open the state store, the config's databases and their
  ``StepRecords``, join or lock the state, plan, connect, and run the ``Applier``.
- `importing`: ``dapctl import``: each table ``dap syncdb`` keeps taken over, its step row
  written with the client's last sync time as watermark.
- `refresh`: ``plan --refresh``: each database table's pending schema changes.
- `embedded`: the embedded emulator for ``emulator = true`` profiles (``Connection.demo``).
"""

from __future__ import annotations

from dapctl.wiring.apply import run_apply

__all__ = ["run_apply"]
