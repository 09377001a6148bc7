"""Indexes set aside while a snapshot refills its emptied table, and rebuilt after it.

Refilling an emptied table row by row costs most in its indexes: each row goes into each
B-tree, at a random place unless the rows come in key order (twice the time of the inserts
themselves for a 1M-row table). Inside the load's transaction, after the TRUNCATE, `set_aside`
drops the indexes that can be made again exactly from the catalog, as pg_dump does: primary
key and unique constraints (`pg_get_constraintdef`, same name, options and deferrability),
other indexes (`pg_get_indexdef`), their comments and CLUSTER mark. `rebuild` then makes each
with one sort, after the rows are in. An index that anything else depends on (another
table's foreign key, the replica identity, a partition's index), one in its own tablespace,
an exclusion constraint's, one not valid or with per-column statistics settings, stays and
is kept up to date row by row, as before. Without the right to drop them (dapctl does not own
the table), every index stays. Readers see none of this: it happens in one transaction, and
TRUNCATE holds the table's ACCESS EXCLUSIVE lock until it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import Cursor, sql
from psycopg import errors as pg_errors

_REBUILDABLE = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), con.conname, pg_get_constraintdef(con.oid),
       obj_description(i.indexrelid, 'pg_class'), obj_description(con.oid, 'pg_constraint'),
       i.indisclustered
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
WHERE i.indrelid = %(table)s::regclass
  AND i.indisvalid AND i.indisready AND i.indislive AND NOT i.indisreplident
  AND c.reltablespace = 0
  AND NOT EXISTS (SELECT 1 FROM pg_constraint x
                  WHERE x.conindid = i.indexrelid AND x.oid IS DISTINCT FROM con.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0)
ORDER BY con.contype NULLS LAST, c.relname
"""


@dataclass(frozen=True)
class Index:
    """What it takes to make one index (and its constraint, if it backs one) again."""

    name: str
    definition: str  # pg_get_indexdef: the whole CREATE INDEX statement
    constraint: str | None
    constraint_definition: str | None  # pg_get_constraintdef: PRIMARY KEY (id) ...
    comment: str | None
    constraint_comment: str | None
    clustered: bool


def set_aside(cur: Cursor[Any], target: tuple[str, str]) -> list[Index]:
    """Drop ``target``'s rebuildable indexes (see the module doc); return them."""
    table = sql.SQL(".").join(map(sql.Identifier, target))
    try:
        with cur.connection.transaction():
            rows = cur.execute(_REBUILDABLE, {"table": table.as_string(cur)}).fetchall()
            indexes = [Index(*row) for row in rows]
            for index in indexes:
                cur.execute(_drop(table, target[0], index))
    except pg_errors.InsufficientPrivilege:
        return []  # not the table's owner: keep every index, maintained row by row
    return indexes


def rebuild(cur: Cursor[Any], target: tuple[str, str], indexes: Sequence[Index]) -> None:
    """Make the indexes `set_aside` dropped again, comments and CLUSTER mark included."""
    table = sql.SQL(".").join(map(sql.Identifier, target))
    for index in indexes:
        # Both texts come from the catalog (pg_get_*def): statements the server wrote.
        if index.constraint is not None:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    table,
                    sql.Identifier(index.constraint),
                    sql.SQL(index.constraint_definition or ""),
                )
            )
        else:
            cur.execute(sql.SQL(index.definition))
        _restore(cur, table, target[0], index)


def _drop(table: sql.Composable, schema: str, index: Index) -> sql.Composed:
    if index.constraint is not None:
        return sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            table, sql.Identifier(index.constraint)
        )
    return sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(index.name))


def _restore(cur: Cursor[Any], table: sql.Composable, schema: str, index: Index) -> None:
    made = index.constraint or index.name  # a constraint's index takes the constraint's name
    name = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(made))
    if index.comment is not None:
        cur.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(name, sql.Literal(index.comment)))
    if index.constraint is not None and index.constraint_comment is not None:
        cur.execute(
            sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(
                sql.Identifier(index.constraint), table, sql.Literal(index.constraint_comment)
            )
        )
    if index.clustered:
        cur.execute(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(table, sql.Identifier(made)))
