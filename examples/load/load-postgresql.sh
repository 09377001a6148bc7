#!/bin/sh
# Prefer a database target (examples/postgresql.toml): dapctl then loads each table and its
# watermark in one transaction, with no script. This one is for loading into PostgreSQL the
# files an apply writes anyway (JSON Lines output).
#
#   examples/load/load-postgresql.sh dapctl.toml [OUTPUT_ROOT]
#
# Runs `dapctl apply`, then, whatever the apply's exit status, loads every file under
# OUTPUT_ROOT (default: the data folder beside the config, as the default output template
# writes) that the ledger table dap_loaded_files does not hold yet. Each file is merged in
# one transaction together with its ledger row (see postgresql.sql), per table folder in
# file-name order, newer than the newest file loaded (a snapshot truncates the table
# first); a table that has not had one yet starts at its newest snapshot, or at its first
# file when it has none (a target with `since`). A table stops at its first failure, so no
# later file is loaded over a gap; the next run starts again from there. Whenever the
# apply or a load failed, the script exits non-zero. Keep OUTPUT_ROOT the same from run to
# run: the ledger records paths under it.
#
# psql finds the database through the usual PGHOST, PGPORT, PGDATABASE, PGUSER variables
# and ~/.pgpass (or PGPASSWORD). Each table folder lands in dap_<its path under the root>,
# e.g. data/univ_a/canvas/accounts -> dap_univ_a_canvas_accounts. Needs sh, python3, psql.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 dapctl.toml [OUTPUT_ROOT]" >&2
    exit 2
fi
config=$1
root=${2:-$(dirname "$config")/data}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tab=$(printf '\t')
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

status=0
dapctl apply "$config" --no-progress || status=$?

# The ledger, and the newest file loaded into each table.
if ! psql_ -A -t -F "$tab" > "$work/ledger.tsv" <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS dap_loaded_files (
    path text PRIMARY KEY,
    table_name text NOT NULL,
    kind text NOT NULL,
    stamp text NOT NULL,
    sha256 text NOT NULL,
    records bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
SELECT DISTINCT ON (table_name) table_name, stamp, kind
FROM dap_loaded_files
ORDER BY table_name, stamp DESC, kind = 'incremental' DESC;
SQL
then
    echo "load-postgresql.sh: cannot read the ledger; nothing loaded" >&2
    exit 1
fi
if [ ! -d "$root" ]; then
    echo "load-postgresql.sh: no output folder $root yet; nothing to load" >&2
    exit "$status"
fi
python3 "$here/dapfiles.py" pending "$root" "$work/ledger.tsv" dap_ > "$work/pending.tsv"

# Stream one JSON Lines file into dap_changes, merge it and commit it with its ledger row.
# COMMIT is written only when the whole file was read; otherwise psql fails and rolls back.
load_file() { # table kind stamp format sha256 rel file
    case $7 in *.gz) decompress="gzip -dc" ;; *) decompress="cat" ;; esac
    {
        printf '%s\n' "BEGIN;" "CREATE TEMP TABLE dap_changes (doc jsonb);"
        # One JSON document per line: CSV with quote and delimiter bytes JSON never holds.
        printf '%s\n' "COPY dap_changes (doc) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02');"
        if $decompress "$7"; then read_ok=true; else read_ok=false; fi
        printf '\n%s\n' '\.'  # the blank line ends a last line that had no newline
        if $read_ok; then
            cat "$here/postgresql.sql"
            printf '%s\n' "COMMIT;"
        else
            printf '%s\n' "DO \$\$ BEGIN RAISE EXCEPTION 'the file could not be read'; END \$\$;"
        fi
    } < /dev/null | psql_ -v table="$1" -v kind="$2" -v stamp="$3" -v path="$6" -v sha256="$5"
}

failed=" "
while IFS=$tab read -r table kind stamp format sha rel file; do
    case $failed in *" $table "*) continue ;; esac  # never load over a gap
    if [ "$format" != jsonl ]; then
        echo "cannot load $file: only JSON Lines is loaded here (a database target loads any)" >&2
    elif load_file "$table" "$kind" "$stamp" "$format" "$sha" "$rel" "$file"; then
        echo "loaded $file into $table"
        continue
    else
        echo "failed to load $file into $table; the next run retries it" >&2
    fi
    failed="$failed$table "
done < "$work/pending.tsv"

if [ "$failed" != " " ] && [ "$status" -eq 0 ]; then
    status=1
fi
exit "$status"
