#!/bin/sh
# Prefer a database target (examples/postgresql.toml): it loads each table and its
# watermark in one transaction. This script is for loading files an apply writes anyway.
# Run an apply, then merge every file it wrote into PostgreSQL, one transaction per file.
#
#   examples/load/load-postgresql.sh dapctl.toml
#
# psql finds the database through the usual PGHOST, PGDATABASE, PGUSER (and ~/.pgpass)
# variables. `dapctl apply --json` lists exactly the files this run wrote, so nothing is
# loaded twice; a table that failed keeps its watermark and is retried by the next run.
# Each table lands in dap_<profile>_<namespace>_<table> (see postgresql.sql).
set -eu

config=$1
here=$(cd "$(dirname "$0")" && pwd)
status=0
dapctl apply "$config" --json --no-progress > dapctl-results.json || status=$?

# One line per file written: snapshot-or-not, target table, path (tab-separated).
python3 - dapctl-results.json > dapctl-files.tsv <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])).get("results", []):
    if r["status"] == "ok":
        table = f"dap_{r['profile']}_{r['namespace']}_{r['table']}".replace("-", "_")
        for path in r["files"]:
            print("true" if r["kind"] == "snapshot" else "false", table, path, sep="\t")
PY

tab=$(printf '\t')
while IFS=$tab read -r snapshot table file; do
    case $file in *.jsonl.gz) decompress="gzip -dc" ;; *.jsonl) decompress="cat" ;;
        *) echo "skipping $file: only JSON Lines output is loaded here" >&2; continue ;; esac
    {
        printf '%s\n' "BEGIN;" "CREATE TEMP TABLE dap_changes (doc jsonb) ON COMMIT DROP;"
        # One JSON document per line: CSV with quote and delimiter bytes JSON never holds.
        printf '%s\n' "COPY dap_changes (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02');"
        $decompress "$file"
        printf '%s\n' '\.'
        cat "$here/postgresql.sql"
        printf '%s\n' "COMMIT;"
    } | psql --quiet -v ON_ERROR_STOP=1 -v table="$table" -v snapshot="$snapshot"
    echo "loaded $file into $table"
done < dapctl-files.tsv

exit "$status"
