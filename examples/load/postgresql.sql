-- Merge one dapctl output file into PostgreSQL and record it in the ledger, in the
-- transaction load-postgresql.sh opened: it has already streamed the file's JSON Lines into
-- the temporary table dap_changes (one jsonb per record) and runs this with psql variables:
--   table     the target table, e.g. dap_univ_a_canvas_accounts (created when missing)
--   kind      snapshot (it replaces the table) or incremental
--   stamp     the file's timestamp, e.g. 20261201T120000Z
--   path      the file's path under the output root: the ledger's key
--   sha256    the file's checksum
-- The ledger row commits with the data or not at all, so a file is loaded exactly once.
--
-- Rows keep the record's key, value and meta.ts as jsonb and timestamptz; make views
-- with typed columns over them (value->>'name', (value->>'created_at')::timestamptz, ...).

SET client_min_messages = warning;  -- no NOTICE when a table exists

-- One loader per table at a time; the ledger must not hold this file or a newer one (two
-- loaders started at once, or files restored from a backup).
SELECT pg_advisory_xact_lock(hashtext('dapctl-load:' || :'table')) AS dap_locked \gset
SELECT NOT EXISTS (
    SELECT FROM dap_loaded_files
    WHERE table_name = :'table'
      AND (stamp, kind = 'incremental') >= (:'stamp', :'kind' = 'incremental')
) AS dap_in_order,
:'kind' = 'snapshot' AS dap_snapshot \gset
\if :dap_in_order
\else
DO $$ BEGIN RAISE EXCEPTION 'this file or a newer one is already loaded: nothing done'; END $$;
\endif

CREATE TABLE IF NOT EXISTS :"table" (
    key jsonb PRIMARY KEY,
    value jsonb,
    ts timestamptz NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

\if :dap_snapshot
TRUNCATE :"table";
\endif

-- An incremental holds the latest version of each changed record; deletions have
-- meta.action = 'D' and no value. A NULL doc is the blank line the loader ends data with.
CREATE TEMP VIEW dap_latest AS
SELECT DISTINCT ON (doc -> 'key') doc
FROM dap_changes
WHERE doc IS NOT NULL
ORDER BY doc -> 'key', doc -> 'meta' ->> 'ts' DESC;

DELETE FROM :"table" AS t
USING dap_latest AS c
WHERE t.key = c.doc -> 'key' AND c.doc -> 'meta' ->> 'action' = 'D';

INSERT INTO :"table" (key, value, ts)
SELECT doc -> 'key', doc -> 'value', (doc -> 'meta' ->> 'ts')::timestamptz
FROM dap_latest
WHERE coalesce(doc -> 'meta' ->> 'action', 'U') <> 'D'
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, ts = excluded.ts, loaded_at = now();

INSERT INTO dap_loaded_files (path, table_name, kind, stamp, sha256, records)
SELECT :'path', :'table', :'kind', :'stamp', :'sha256', count(doc) FROM dap_changes;
