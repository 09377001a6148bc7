"""dapctl: declarative, resumable exports from Instructure's Data Access Platform.

A TOML file declares credential profiles and query targets; ``dapctl plan`` shows what would
run and ``dapctl apply`` runs it, writing output files atomically and recording watermarks in
a state file so the next scheduled run continues exactly where the last one stopped.
"""

from __future__ import annotations

__version__ = "0.1.0"
