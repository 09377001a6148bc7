"""The PostgreSQL state backend's tables, and the statements that read and write them.

Everything lives in schema ``dapctl``, beside the ``dapctl.table_steps`` table that database
targets keep in their own database (``dapctl.databases.postgres``): these tables are all named
``state_*``, so one database may hold both, and the staging sweep (``staging_*``) never
touches them. One row per namespace (``state_namespaces``: lineage, serial, format version,
who wrote it when, by the database's clock), one row per (namespace, address) for the steps
(``state_steps``, the record as ``jsonb`` and the serial that last wrote it), one row per
held lock (``state_locks``: pid, host, command, since, and the server session holding the
advisory lock), one row per step a worker has leased (``state_leases``: who holds it until
``lease_expires``, its fencing token from the ``state_fencing`` sequence, which only
grows, and ``finished_at``), one row per running worker (``state_workers``: when its
round began, when its heartbeat was last seen) and one per named round (``state_rounds``:
when it began); the statements are in ``pg_leases``.
Creating them is idempotent and serialised with the target databases' own setup by the
same advisory lock.
"""

from __future__ import annotations

SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('dapctl:setup', 0))"

TABLES = (
    "state_namespaces",
    "state_steps",
    "state_locks",
    "state_leases",
    "state_workers",
    "state_rounds",
)

EXISTING = "SELECT " + ", ".join(f"to_regclass('dapctl.{t}') IS NOT NULL" for t in TABLES)

CREATE = """
CREATE SCHEMA IF NOT EXISTS dapctl;
CREATE TABLE IF NOT EXISTS dapctl.state_namespaces (
    namespace text PRIMARY KEY,
    lineage text NOT NULL,
    serial bigint NOT NULL,
    version integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    written_by text NOT NULL
);
CREATE TABLE IF NOT EXISTS dapctl.state_steps (
    namespace text NOT NULL
        REFERENCES dapctl.state_namespaces ON DELETE CASCADE ON UPDATE CASCADE,
    address text NOT NULL,
    record jsonb NOT NULL,
    serial bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, address)
);
CREATE TABLE IF NOT EXISTS dapctl.state_locks (
    namespace text PRIMARY KEY,
    pid integer NOT NULL,
    host text NOT NULL,
    command text NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    session integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE SEQUENCE IF NOT EXISTS dapctl.state_fencing;
CREATE TABLE IF NOT EXISTS dapctl.state_leases (
    namespace text NOT NULL,
    address text NOT NULL,
    claimed_by text,
    lease_expires timestamptz,
    fencing_token bigint,
    finished_at timestamptz,
    PRIMARY KEY (namespace, address)
);
ALTER TABLE dapctl.state_leases ADD COLUMN IF NOT EXISTS finished_at timestamptz;
CREATE TABLE IF NOT EXISTS dapctl.state_workers (
    namespace text NOT NULL,
    worker text NOT NULL,
    round_started timestamptz NOT NULL,
    seen timestamptz NOT NULL,
    PRIMARY KEY (namespace, worker)
);
CREATE TABLE IF NOT EXISTS dapctl.state_rounds (
    namespace text NOT NULL,
    round text NOT NULL,
    started timestamptz NOT NULL,
    PRIMARY KEY (namespace, round)
);
"""

READ = """
SELECT n.version, n.serial, n.lineage, s.address, s.record
FROM dapctl.state_namespaces n
LEFT JOIN dapctl.state_steps s ON s.namespace = n.namespace
WHERE n.namespace = %s
"""

CURRENT = """
SELECT lineage, serial, version FROM dapctl.state_namespaces WHERE namespace = %s FOR UPDATE
"""

INSERT_NAMESPACE = """
INSERT INTO dapctl.state_namespaces (namespace, lineage, serial, version, written_by)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (namespace) DO NOTHING
RETURNING 1
"""

UPDATE_NAMESPACE = """
UPDATE dapctl.state_namespaces
SET serial = %s, version = %s, written_at = now(), written_by = %s
WHERE namespace = %s
"""

UPSERT_STEP = """
INSERT INTO dapctl.state_steps (namespace, address, record, serial) VALUES (%s, %s, %s, %s)
ON CONFLICT (namespace, address)
DO UPDATE SET record = EXCLUDED.record, serial = EXCLUDED.serial, updated_at = now()
"""

DELETE_STEPS = "DELETE FROM dapctl.state_steps WHERE namespace = %s AND address = ANY(%s)"

DELETE_NAMESPACE = "DELETE FROM dapctl.state_namespaces WHERE namespace = %s"

# The namespace's advisory lock: a 64-bit key from its name, as pg_locks shows it.
KEY = "hashtextextended('dapctl:state:' || %s, 0)"

TRY_LOCK = f"SELECT pg_try_advisory_lock({KEY})"

UNLOCK = f"SELECT pg_advisory_unlock({KEY})"

# Server sessions (other than this one) holding the namespace's advisory lock.
HOLDING = """
SELECT k.pid FROM pg_locks k
WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
  AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((k.classid::bigint << 32) | k.objid::bigint) = hashtextextended('dapctl:state:' || %s, 0)
  AND k.pid <> pg_backend_pid()
"""

HOLDER = "SELECT pid, host, command, since, session FROM dapctl.state_locks WHERE namespace = %s"

CLAIM = """
INSERT INTO dapctl.state_locks (namespace, pid, host, command) VALUES (%s, %s, %s, %s)
ON CONFLICT (namespace) DO UPDATE
SET pid = EXCLUDED.pid, host = EXCLUDED.host, command = EXCLUDED.command,
    since = now(), session = pg_backend_pid()
"""

RELEASE = "DELETE FROM dapctl.state_locks WHERE namespace = %s AND session = pg_backend_pid()"

FORGET_HOLDER = "DELETE FROM dapctl.state_locks WHERE namespace = %s"

TERMINATE = "SELECT pg_terminate_backend(%s)"

# The server notices a vanished client (a machine that died, a cut network) within about a
# minute instead of the kernel's default two hours, and so frees the lock that client held.
# Every transaction here lasts milliseconds; one left open by a dapctl that froze inside it
# (stopped, swapped out) would hold its row locks, and so every worker's writes, until it
# woke: the server ends such a session after 10 s instead.
KEEPALIVES = (
    "SET tcp_keepalives_idle = 30",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
    "SET idle_in_transaction_session_timeout = '10s'",
)
