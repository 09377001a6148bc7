"""What a test needs from the machine, and what happens when the machine lacks it.

``unavailable(what, why)`` ends the test: skipped here, saying what is missing and why, so a
developer without PostgreSQL, moto or psql still runs the rest; failed under CI (``CI=true``,
as GitHub Actions, GitLab CI and most runners set it), where the test extra and the workflow
install everything: nothing skips silently there. Every test that depends on something the
machine may lack goes through it; no other test module reads ``CI``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest


def under_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run is a CI run (``CI=true``, in any case)."""
    return environ.get("CI", "").strip().lower() == "true"


def unavailable(what: str, why: str) -> NoReturn:
    """Skip the running test because ``what`` is missing (fail it under CI)."""
    message = f"needs {what}: {why}"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
