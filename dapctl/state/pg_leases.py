"""Per-step leases in PostgreSQL: the ``Leases`` of ``PostgresStateStore.leases()``.

A lease is a row of ``dapctl.state_leases`` (namespace, address, who holds it, until when,
its fencing token, when it was finished), every time the database's ``now()``. ``claim`` is
one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` the old lease expired (or is the claimer's
own, whose answer it lost) and the step was not finished since the claimer's round began
(unless by the claimer itself): of any number of concurrent claimers exactly one gets a
row back, and its token comes from the sequence ``dapctl.state_fencing``, so it only
grows. ``write_step`` is one statement too: it locks
the lease row only if it still carries the writer's token and has not expired, bumps the
namespace's serial (so a whole-state writer that read an older serial is refused) and
upserts the step's row; no lease, no write, and ``FencedError``. ``release`` ends the lease
at once (and marks the step finished, if it is); a lease that expired is left as it is.
A worker's ``begin`` also records it in ``dapctl.state_workers`` and returns the start of
its round: the earliest start of the workers still running (a heartbeat seen within a
lease's time), else now; so workers started a little apart count a step any of them
finished as done. A named round (``dapctl.state_rounds``) began when its first worker
signed on, however late the others come. Every statement goes through the store's one
connection, so the password handling and the messages are the store's; a statement whose
session the server lost is tried once more on a new one (each may be repeated).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import ValidationError

from dapctl import __version__
from dapctl.errors import StateError
from dapctl.state.leases import FencedError, Holder, Lease
from dapctl.state.model import STATE_VERSION, StepState
from dapctl.state.pg_lock import Session

log = logging.getLogger("dapctl.state")

BEGIN = """
INSERT INTO dapctl.state_namespaces (namespace, lineage, serial, version, written_by)
VALUES (%s, %s, 0, %s, %s)
ON CONFLICT (namespace) DO NOTHING
"""

# A worker joins the round of the workers still running (heartbeat seen within a lease's
# time), or starts one; workers dead longer than that are forgotten.
JOIN = """
WITH gone AS (
    DELETE FROM dapctl.state_workers
    WHERE namespace = %(ns)s AND seen < now() - make_interval(secs => %(ttl)s)
),
running AS (
    SELECT min(round_started) AS started FROM dapctl.state_workers
    WHERE namespace = %(ns)s AND seen >= now() - make_interval(secs => %(ttl)s)
)
INSERT INTO dapctl.state_workers (namespace, worker, round_started, seen)
SELECT %(ns)s, %(worker)s, least(now(), running.started), now() FROM running
ON CONFLICT (namespace, worker) DO UPDATE SET seen = now()
RETURNING round_started
"""

# A named round (DAPCTL_ROUND) began when its first worker signed on, whenever the others
# do; rounds a month old are forgotten.
NAMED_ROUND = """
WITH old AS (
    DELETE FROM dapctl.state_rounds
    WHERE namespace = %(ns)s AND started < now() - interval '30 days' AND round <> %(round)s
)
INSERT INTO dapctl.state_rounds (namespace, round, started) VALUES (%(ns)s, %(round)s, now())
ON CONFLICT (namespace, round) DO UPDATE SET round = EXCLUDED.round
RETURNING started
"""

LEAVE = "DELETE FROM dapctl.state_workers WHERE namespace = %s AND worker = %s"

CLAIM = """
INSERT INTO dapctl.state_leases AS l
    (namespace, address, claimed_by, lease_expires, fencing_token, finished_at)
VALUES (%(ns)s, %(address)s, %(worker)s, now() + make_interval(secs => %(ttl)s),
        nextval('dapctl.state_fencing'), NULL)
ON CONFLICT (namespace, address) DO UPDATE
SET claimed_by = EXCLUDED.claimed_by, lease_expires = EXCLUDED.lease_expires,
    fencing_token = EXCLUDED.fencing_token, finished_at = NULL
WHERE (l.lease_expires IS NULL OR l.lease_expires <= now() OR l.claimed_by = %(worker)s)
  AND (l.finished_at IS NULL OR %(since)s::timestamptz IS NULL
       OR l.finished_at < %(since)s::timestamptz OR l.claimed_by = %(worker)s)
RETURNING fencing_token, lease_expires
"""

HOLDER = """
SELECT claimed_by, lease_expires, finished_at, coalesce(lease_expires > now(), false)
FROM dapctl.state_leases WHERE namespace = %s AND address = %s
"""

LIVE_ANY = """
SELECT address FROM dapctl.state_leases
WHERE namespace = %s AND address = ANY(%s) AND lease_expires > now()
"""

READ_STEP = "SELECT record FROM dapctl.state_steps WHERE namespace = %s AND address = %s"

LIVE = """
SELECT 1 FROM dapctl.state_leases
WHERE namespace = %(ns)s AND address = %(address)s AND fencing_token = %(token)s
  AND lease_expires > now()
"""

WRITE_STEP = """
WITH lease AS (
    SELECT 1 FROM dapctl.state_leases
    WHERE namespace = %(ns)s AND address = %(address)s AND fencing_token = %(token)s
      AND lease_expires > now()
    FOR UPDATE
),
bumped AS (
    UPDATE dapctl.state_namespaces
    SET serial = serial + 1, written_at = now(), written_by = %(by)s
    WHERE namespace = %(ns)s AND EXISTS (SELECT 1 FROM lease)
    RETURNING serial
)
INSERT INTO dapctl.state_steps (namespace, address, record, serial)
SELECT %(ns)s, %(address)s, %(record)s, serial FROM bumped
ON CONFLICT (namespace, address)
DO UPDATE SET record = EXCLUDED.record, serial = EXCLUDED.serial, updated_at = now()
RETURNING serial
"""

HEARTBEAT = """
WITH seen AS (
    UPDATE dapctl.state_workers SET seen = now()
    WHERE namespace = %(ns)s AND worker = %(worker)s
)
UPDATE dapctl.state_leases SET lease_expires = now() + make_interval(secs => %(ttl)s)
WHERE namespace = %(ns)s AND claimed_by = %(worker)s AND lease_expires > now()
RETURNING fencing_token
"""

RELEASE = """
UPDATE dapctl.state_leases
SET lease_expires = now(), finished_at = CASE WHEN %(finished)s THEN now() END
WHERE namespace = %(ns)s AND address = %(address)s AND fencing_token = %(token)s
  AND lease_expires > now()
"""


class PgLeases:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _ns(self) -> str:
        return self.session.namespace

    def begin(self, worker: str, ttl: float, *, round: str | None = None) -> datetime:
        writer = f"dapctl {__version__} pid {os.getpid()} on {socket.gethostname()}"
        values = {"ns": self._ns, "worker": worker, "ttl": ttl, "round": round}
        with self.session.transaction("cannot prepare the state for workers", setup=True) as cur:
            cur.execute(BEGIN.encode(), (self._ns, str(uuid.uuid4()), STATE_VERSION, writer))
            row = cur.execute(JOIN.encode(), values).fetchone()
            if round is not None:
                row = cur.execute(NAMED_ROUND.encode(), values).fetchone()
        assert row is not None
        started: datetime = row[0]
        return started

    def claim(
        self, address: str, worker: str, ttl: float, *, since: datetime | None = None
    ) -> Lease | None:
        values = {"ns": self._ns, "address": address, "worker": worker, "ttl": ttl}
        row = self._one(f"cannot claim {address}", CLAIM, {**values, "since": since})
        return None if row is None else Lease(address, worker, row[0], row[1])

    def holder(self, address: str) -> Holder | None:
        row = self._one(f"cannot read the lease of {address}", HOLDER, (self._ns, address))
        return None if row is None else Holder(*row)

    def live(self, addresses: Sequence[str]) -> set[str]:
        rows = self._run("cannot read the leases", LIVE_ANY, (self._ns, list(addresses)))
        return {address for (address,) in rows}

    def read_step(self, address: str) -> StepState:
        row = self._one(f"cannot read {address}", READ_STEP, (self._ns, address))
        if row is None:
            return StepState()
        try:
            return StepState.model_validate(row[0])
        except ValidationError as exc:
            where = self.session.location
            raise StateError(f"{where}: invalid record of {address}: {exc}") from None

    def write_step(self, lease: Lease, step: StepState) -> None:
        values = {
            **self._lease(lease),
            "record": Jsonb(step.model_dump(mode="json")),
            "by": f"{lease.worker} (dapctl {__version__})",
        }
        if self._one(f"cannot write {lease.address}", WRITE_STEP, values) is None:
            raise FencedError(lease.address)

    def check(self, lease: Lease) -> None:
        if (
            self._one(f"cannot check the lease of {lease.address}", LIVE, self._lease(lease))
            is None
        ):
            raise FencedError(lease.address)

    def heartbeat(self, worker: str, ttl: float) -> set[int]:
        values = {"ns": self._ns, "worker": worker, "ttl": ttl}
        return {
            token for (token,) in self._run("cannot extend this worker's leases", HEARTBEAT, values)
        }

    def release(self, lease: Lease, *, finished: bool) -> None:
        values = {**self._lease(lease), "finished": finished}
        self._run(f"cannot release {lease.address}", RELEASE, values)

    def end(self, worker: str) -> None:
        self._run("cannot sign this worker off", LEAVE, (self._ns, worker))

    def _one(self, doing: str, statement: str, params: Any) -> tuple[Any, ...] | None:
        rows = self._run(doing, statement, params)
        return rows[0] if rows else None

    def _run(self, doing: str, statement: str, params: Any) -> list[tuple[Any, ...]]:
        """One statement, and once more on a new session if the server lost this one (it
        ends a session a frozen worker left in a transaction; a network fails): each
        statement here may be repeated, a claim included (its worker may take its own
        lease again)."""
        for attempt in (1, 2):
            try:
                with self.session.transaction(doing) as cur:
                    cur.execute(statement.encode(), params)
                    return cur.fetchall() if cur.description else []
            except StateError as exc:
                if attempt == 2 or self.session.connected:
                    raise
                log.info("%s; trying once more on a new session", exc.message)
        raise AssertionError("unreachable")

    def _lease(self, lease: Lease) -> dict[str, Any]:
        return {"ns": self._ns, "address": lease.address, "token": lease.token}
