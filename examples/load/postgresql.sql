-- Merge one dapctl output file into PostgreSQL: run by load-postgresql.sh, which streams
-- the file's JSON Lines into the temporary table dap_changes (one jsonb per record) in the
-- same transaction, then this script with psql variables:
--   table     the target table, e.g. dap_univ_a_canvas_accounts (created when missing)
--   snapshot  true for a snapshot (it replaces the table), false for an incremental
--
-- Rows keep the record's key, value and meta.ts as jsonb and timestamptz; make views
-- with typed columns over them (value->>'name', (value->>'created_at')::timestamptz, ...).

SET client_min_messages = warning;  -- no NOTICE when the table exists

CREATE TABLE IF NOT EXISTS :"table" (
    key jsonb PRIMARY KEY,
    value jsonb,
    ts timestamptz NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

\if :snapshot
TRUNCATE :"table";
\endif

-- An incremental holds the latest version of each changed record; deletions have
-- meta.action = 'D' and no value.
DELETE FROM :"table" AS t
USING dap_changes AS c
WHERE t.key = c.doc -> 'key' AND c.doc -> 'meta' ->> 'action' = 'D';

INSERT INTO :"table" (key, value, ts)
SELECT doc -> 'key', doc -> 'value', (doc -> 'meta' ->> 'ts')::timestamptz
FROM dap_changes
WHERE coalesce(doc -> 'meta' ->> 'action', 'U') <> 'D'
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, ts = excluded.ts, loaded_at = now();
