"""DAP's rate-limit budgets, in one table, and the ``rate_limits`` settings made from it.

DAP allows each client five independent budgets a minute ("reaching the limit for one
request type or endpoint does not impact the limits for other types or endpoints"): job
creation, job status, table listing, table schema and object URL requests. ``BUDGETS``
lists them once: the name (the client's limiter, the emulator's endpoint class, the key in
a budget cache or a shared ledger), the key in a profile's ``rate_limits``, DAP's published
limit (the default) and the endpoint class it covers. Everything else is made from it: the
config model and so the JSON Schema (`RateLimitSettings`), the starter config's
``rate_limits`` line (``cli.starter``), the client's limiters (``api.ratelimit``) and the
emulator's limits and flags. A new rate-limited endpoint is one row here plus its use in the
client. This module imports nothing else of dapctl, so the config, the client and the
emulator may all import it. ``OLD_KEYS`` are renamed keys, still accepted (``loading``
warns about them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator


@dataclass(frozen=True)
class Budget:
    """One of DAP's independent per-client limits."""

    name: str  # the limiter's, the emulator's endpoint class, the ledger's key
    key: str  # in a profile's ``rate_limits``
    per_minute: int  # DAP's published limit, the default
    endpoint: str  # the endpoint class it covers, as the schema describes it
    slot: str  # what one send waits for, as a wait's announcement says it

    @property
    def label(self) -> str:
        """The name in words, for logs (``job status``)."""
        return self.name.replace("_", " ")


BUDGETS: tuple[Budget, ...] = (
    Budget("jobs", "jobs_per_minute", 5, "Job creation.", "a job slot"),
    Budget("job_status", "job_status_per_minute", 500, "Job status.", "a job status slot"),
    Budget("tables", "tables_per_minute", 5, "Table listing.", "a table listing slot"),
    Budget("schema", "schema_per_minute", 500, "Table schema.", "a schema slot"),
    Budget("urls", "urls_per_minute", 200, "Object URL requests.", "an object URL slot"),
)
BY_NAME = {budget.name: budget for budget in BUDGETS}
#: the old name of a key, accepted with a warning (``loading``)
OLD_KEYS = {"status_per_minute": "job_status_per_minute"}


class _Settings(BaseModel):
    """What `RateLimitSettings` has besides its generated fields."""

    # As config's models: strict and frozen, an unknown key an error.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def per_minute(self, budget: Budget) -> float:
        """The requests a minute this profile allows itself for ``budget``."""
        return float(getattr(self, budget.key))

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        for old, new in OLD_KEYS.items():
            if old in data:
                if new in data:
                    raise ValueError(f"set {new} only ({old} is its old name)")
                data = {**data, new: data[old]}
        return data


def _fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        b.key: (float, Field(b.per_minute, gt=0, description=b.endpoint)) for b in BUDGETS
    }
    for old, new in OLD_KEYS.items():
        fields[old] = (
            float | None,
            Field(None, gt=0, description=f"Deprecated: the old name of {new}."),
        )
    return fields


_DOC = "Client-side request budgets, in requests per minute: DAP's five independent limits."

if TYPE_CHECKING:

    class RateLimitSettings(_Settings):
        status_per_minute: float | None

        def __init__(self, **per_minute: float) -> None: ...

else:
    RateLimitSettings = create_model(
        "RateLimitSettings", __base__=_Settings, __doc__=_DOC, __module__=__name__, **_fields()
    )
