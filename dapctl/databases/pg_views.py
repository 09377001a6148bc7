"""Views that depend on a table, saved, dropped and re-created around a column type change.

PostgreSQL refuses ``ALTER COLUMN ... TYPE`` on a column a view uses. `dependent_views` finds
every view and materialized view that depends on the table, directly or through other views,
with what it takes to re-create it (definition from ``pg_get_viewdef``, options, owner,
grants, comment). `drop_views` and `create_views` run inside the caller's transaction, so
readers see either the old views or the new ones, never none. A view that no longer compiles
against the new types stops the load with a `DatabaseError` naming it (the table and views
stay as they were). Indexes on materialized views are not re-created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Cursor, sql

from dapctl.databases.engine import DatabaseError

_DEPENDENTS = """
WITH RECURSIVE deps(oid, depth) AS (
    SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %(table)s::regclass
      AND r.ev_class <> %(table)s::regclass
    UNION
    SELECT r.ev_class, deps.depth + 1 FROM deps
    JOIN pg_depend d ON d.refobjid = deps.oid AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> deps.oid
    WHERE deps.depth < 50
)
SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid), c.reloptions,
       pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'),
       ARRAY(SELECT format('%%s|%%s|%%s', a.privilege_type, a.is_grantable,
                           CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
             FROM aclexplode(c.relacl) a),
       max(deps.depth)
FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname
ORDER BY max(deps.depth)
"""


@dataclass(frozen=True)
class View:
    """Everything needed to re-create one view as it was."""

    schema: str
    name: str
    materialized: bool
    definition: str
    options: list[str] | None
    owner: str
    comment: str | None
    grants: list[str]

    @property
    def ident(self) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(self.name)])


def dependent_views(cur: Cursor[Any], table: str) -> list[View]:
    """Views over ``table`` (a quoted qualified name), those nearest the table first."""
    rows = cur.execute(_DEPENDENTS, {"table": table}).fetchall()
    return [View(*row[:8]) for row in rows]


def drop_views(cur: Cursor[Any], views: Sequence[View]) -> None:
    for view in reversed(views):
        kind = "MATERIALIZED VIEW" if view.materialized else "VIEW"
        cur.execute(sql.SQL("DROP {} IF EXISTS {}").format(sql.SQL(kind), view.ident))


def create_views(cur: Cursor[Any], views: Sequence[View]) -> None:
    for view in views:
        kind = "MATERIALIZED VIEW" if view.materialized else "VIEW"
        options: sql.Composable = sql.SQL("")
        if view.options:
            options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(map(sql.SQL, view.options)))
        body = sql.SQL(view.definition.rstrip().rstrip(";"))
        create = sql.SQL("CREATE {} {}{} AS {}").format(sql.SQL(kind), view.ident, options, body)
        try:
            with cur.connection.transaction():
                cur.execute(create)
        except psycopg.Error as exc:
            # A view whose SQL no longer fits the new column types (a text operator on a column
            # that became an integer, say): nothing is changed, and the user must decide.
            raise DatabaseError(
                f"cannot re-create view {view.schema}.{view.name} after a column type change: "
                f"{exc.diag.message_primary or exc}; drop or change that view, then retry"
            ) from None
        _restore(cur, view, sql.SQL(kind))


def _restore(cur: Cursor[Any], view: View, kind: sql.SQL) -> None:
    cur.execute(
        sql.SQL("ALTER {} {} OWNER TO {}").format(kind, view.ident, sql.Identifier(view.owner))
    )
    if view.comment is not None:
        cur.execute(
            sql.SQL("COMMENT ON {} {} IS {}").format(kind, view.ident, sql.Literal(view.comment))
        )
    for grant in view.grants:
        privilege, grantable, grantee = grant.split("|", 2)
        option = " WITH GRANT OPTION" if grantable == "true" else ""
        # Both parts come from the catalog: privilege keywords and quote_ident()ed names.
        cur.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege), view.ident, sql.SQL(grantee), sql.SQL(option)
            )
        )
