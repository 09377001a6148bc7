-- Load dapctl's JSON Lines output into DuckDB as each table's current rows.
-- Prefer a database target (examples/warehouse.toml) to keep a DuckDB file in sync; this
-- query is for reading files an apply writes anyway.
--
-- Run from the config's folder after an apply:   duckdb canvas.duckdb < examples/load/duckdb.sql
-- (paths follow the default output template data/{profile}/{namespace}/{table}/...).
--
-- A table's folder holds a snapshot and the incrementals chained after it (and, after a
-- `dapctl state rm` or an expired window, a newer snapshot). The current rows are: from
-- the newest snapshot on, the latest version of each key, without the deleted ones
-- (meta.action = 'D'). File names carry the kind and the watermark, which orders them.

CREATE OR REPLACE MACRO dap_current(files) AS TABLE
WITH changes AS (
    SELECT
        *,
        regexp_extract(filename, '(snapshot|incremental)-(\d{8}T\d{6}Z)', 1) AS dap_kind,
        regexp_extract(filename, '(snapshot|incremental)-(\d{8}T\d{6}Z)', 2) AS dap_stamp
    FROM read_json(files, format = 'newline_delimited', filename = true, union_by_name = true)
),
since_snapshot AS (
    SELECT changes.*
    FROM changes
    WHERE dap_stamp >= (SELECT max(dap_stamp) FROM changes WHERE dap_kind = 'snapshot')
),
ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY to_json(key) ORDER BY dap_stamp DESC) AS newest
    FROM since_snapshot
)
SELECT key, value, meta
FROM ranked
WHERE newest = 1 AND meta.action IS DISTINCT FROM 'D';

-- One statement per table you export; key.* and value.* become columns.
CREATE OR REPLACE TABLE accounts AS
SELECT key.*, value.*, meta.ts AS dap_ts
FROM dap_current('data/univ_a/canvas/accounts/*.jsonl.gz');

CREATE OR REPLACE TABLE users AS
SELECT key.*, value.*, meta.ts AS dap_ts
FROM dap_current('data/univ_a/canvas/users/*.jsonl.gz');

SELECT 'accounts' AS "table", count(*) AS "rows" FROM accounts
UNION ALL
SELECT 'users', count(*) FROM users;
