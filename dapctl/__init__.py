"""dapctl: declarative, resumable exports from Instructure's Data Access Platform.

A TOML file declares credential profiles and query targets; ``dapctl plan`` shows what would
run and ``dapctl apply`` runs it, writing output files atomically and recording watermarks in
a state file so the next scheduled run continues exactly where the last one stopped.

Module map. The core, one module per concept, knows the seams and never a backend:

- `config` (the TOML file's frozen models, a package), `loading` (TOML in, a `Config` or one
  clear error out), `problems` (validation errors told as a user's problems), `keypaths` (key
  paths and the lines they stand on), `template` (an output template becomes one job's
  location), `identifiers` (what a database schema or table name may be), `credentials` (a
  profile's login), `secret_sources` (a setting given as itself, `*_env` or `*_file`),
  `budgets` (DAP's rate-limit budgets in one table).
- `plan` (pure planning, a package), `apply` (the job and collect pipeline), `pipeline` (its
  two thread pools), `jobs` (start, resume or forget a step's job), `landing` (a finished
  job into its destination, then recorded), `collect` (a job's parts, in order, into a
  load), `outcomes` (one result per step, failures kept to their step), `workers` (alone or
  one of many workers sharing the state), `fencing` (writes only while a lease is held).
- `status` (each table's freshness and last run) and `metrics` (the same as Prometheus
  text); `runs` (the run history, a package); `notify` (alerts to webhooks);
  `saved_plans` (`plan -out`, `apply FILE`).
- `results` and `events` (what an apply reports), `inspect` (the `tables` and `describe`
  commands' library side), `errors` (errors and exit statuses), `text` (times, counts,
  sizes, tables as text), `files` (private folders, atomic writes), `deflate` (ISA-L or
  zlib), `buckets` (object storage through fsspec), `redaction` and `pg` (leaves the
  backends share: passwords out of messages; PostgreSQL connections).

The seams and the rest, each a package with its own map: `api` (the DAP client), `state`
(where state lives), `outputs` (where data lands), `objects` (object stores: S3, GCS,
Azure), `databases` (table engines), `wiring`
(the commands' backends chosen and handed to the core), `cli` (the command line),
`emulator` (the built-in DAP emulator).
"""

from __future__ import annotations

__version__ = "0.1.0"
