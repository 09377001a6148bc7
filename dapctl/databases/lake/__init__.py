"""Lake tables: DAP tables kept in sync as open table formats (Delta Lake, Apache Iceberg) in
a folder or a bucket, read by Databricks, Fabric, Spark, Trino, Snowflake, BigQuery and
DuckDB without a database.

Same contract as the database engines (`dapctl.databases.engine`): a snapshot replaces a
table's contents in one commit, an incremental merges in one commit, and the step record
(the watermark) is committed IN that commit, in the format's own commit metadata, so table
and watermark cannot disagree after a crash at any instant.

Module map:

- `common`: what every format shares: `LakeDatabase` (the protocol over a root of tables),
  `LakeLoad` (staging, the stale-writer check), `marks` (the record a commit carries).
- `stage`: parts staged in a private DuckDB (its JSON reader, the DuckDB engine's typed
  extraction), the latest record per key read out as typed Arrow for the writer.
- `steps`: a table's pending step record beside the lake (a job started, not loaded yet),
  believed only at the table version it names; the per-table apply lock.
- `upkeep`: opt-in compaction (``optimize_every``) and old-file clean-up (``vacuum_after``),
  settings in the lake URL's query, run after a load's commit.
- `delta`: the Delta Lake engine (``delta+file://``, ``delta+s3://``, ``delta+az://``): tables at
  ``{root}/{schema}/{table}``, the step record in each commit's ``commitInfo``, dapctl's
  ``txn`` action making a stale second writer fail instead of overwriting.
- `iceberg`: the Iceberg engine (``iceberg+file://``, ``+s3``, ``+az``): the step record
  in table properties and snapshot summaries, one catalog commit per load, pyiceberg's
  retry switched off.
- `stores`: a lake in a bucket, S3 or Azure: delta-rs's options and pyiceberg's file IO
  from the variables dapctl's other bucket work reads.
- `catalogs`: where an Iceberg lake's catalog lives (SQLite beside it, or PostgreSQL).
- `iceberg_cow`: an incremental's deletes, copy-on-write, file by file.
- `iceberg_upkeep`: Iceberg's compaction and clean-up, on pyiceberg's primitives.
"""
