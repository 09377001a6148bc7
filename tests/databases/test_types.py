"""Column types described once (`ColumnType`) and spelled by each engine's type mapper; the
widening rules, neutral, give the same answers in both engines' spellings."""

from __future__ import annotations

import pytest

from dapctl.databases import duck_sql, evolve, mysql_sql, pg_sql
from dapctl.databases.columns import Column, ColumnType, column_type

T = ColumnType
MAPPERS = {"postgresql": pg_sql.TYPES, "duckdb": duck_sql.TYPES, "mysql": mysql_sql.TYPES}

# Exactly the SQL types each engine was given before types were neutral (issue 21); MySQL's
# as issue 22 chose them (dapctl/databases/mysql_sql.py).
SPELLED = {
    T.INT16: ("smallint", "SMALLINT", "SMALLINT"),
    T.INT32: ("integer", "INTEGER", "INTEGER"),
    T.INT64: ("bigint", "BIGINT", "BIGINT"),
    T.FLOAT32: ("real", "FLOAT", "FLOAT"),
    T.FLOAT64: ("double precision", "DOUBLE", "DOUBLE"),
    T.BOOLEAN: ("boolean", "BOOLEAN", "BOOLEAN"),
    T.TIMESTAMP: ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE", "DATETIME(6)"),
    T.DATE: ("date", "DATE", "DATE"),
    T.TIME: ("time without time zone", "TIME", "TIME(6)"),
    T.UUID: ("uuid", "UUID", "CHAR(36)"),
    T.TEXT: ("text", "VARCHAR", "LONGTEXT"),
    T.JSON: ("jsonb", "JSON", "JSON"),
}


def test_the_table_above_covers_every_type():
    assert set(SPELLED) == set(ColumnType)


@pytest.mark.parametrize("engine", MAPPERS)
def test_each_mapper_spells_every_type_as_before(engine):
    mapper = MAPPERS[engine]
    index = list(MAPPERS).index(engine)
    assert {t: mapper.spell(t) for t in ColumnType} == {t: s[index] for t, s in SPELLED.items()}


@pytest.mark.parametrize("engine", MAPPERS)
def test_each_mapper_reads_back_what_it_spells(engine):
    mapper = MAPPERS[engine]
    for kind in ColumnType:
        assert mapper.read(mapper.spell(kind).lower()) is kind


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ({"type": "integer", "format": "int16"}, T.INT16),
        ({"type": "integer", "format": "int32"}, T.INT32),
        ({"type": "integer", "format": "int64"}, T.INT64),
        ({"type": ["integer", "null"]}, T.INT64),
        ({"type": "number", "format": "float"}, T.FLOAT32),
        ({"type": "number"}, T.FLOAT64),
        ({"type": "boolean"}, T.BOOLEAN),
        ({"type": "string", "format": "date-time"}, T.TIMESTAMP),
        ({"type": "string", "format": "date"}, T.DATE),
        ({"type": "string", "format": "time"}, T.TIME),
        ({"type": "string", "format": "uuid"}, T.UUID),
        ({"type": "string", "enum": ["a", "b"], "maxLength": 3}, T.TEXT),
        ({"type": "array", "items": {"type": "string"}}, T.JSON),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, T.JSON),
    ],
)
def test_dap_types_map_to_neutral_ones(field, kind):
    assert column_type(field) is kind


# (old type as the table has it, new neutral type, in place?) for each engine's spelling.
WIDENINGS = [
    ("postgresql", "smallint", T.INT32, True),
    ("postgresql", "smallint", T.FLOAT64, True),
    ("postgresql", "integer", T.INT64, True),
    ("postgresql", "real", T.FLOAT64, True),
    ("postgresql", "json", T.JSON, True),
    ("postgresql", "timestamp without time zone", T.TIMESTAMP, True),
    ("postgresql", "timestamp(3) without time zone", T.TIMESTAMP, True),
    ("postgresql", "bigint", T.TEXT, True),
    ("postgresql", "character varying(20)", T.TEXT, True),
    ("postgresql", "bigint", T.INT32, False),
    ("postgresql", "bigint", T.FLOAT64, False),
    ("postgresql", "integer", T.FLOAT32, False),
    ("postgresql", "text", T.INT64, False),
    ("postgresql", "jsonb", T.TEXT, True),
    ("postgresql", "numeric", T.FLOAT64, False),
    ("duckdb", "SMALLINT", T.INT64, True),
    ("duckdb", "INTEGER", T.FLOAT64, True),
    ("duckdb", "FLOAT", T.FLOAT64, True),
    ("duckdb", "TIMESTAMP", T.TIMESTAMP, True),
    ("duckdb", "DOUBLE", T.FLOAT32, False),
    ("duckdb", "VARCHAR", T.JSON, False),
    ("duckdb", "JSON", T.TEXT, True),
    ("duckdb", "BIGINT", T.INT16, False),
    # MySQL: what information_schema's DATA_TYPE says, as `mysql_sql.existing_type` reads it.
    ("mysql", "smallint", T.INT64, True),
    ("mysql", "integer", T.INT64, True),
    ("mysql", "float", T.FLOAT64, True),
    ("mysql", "datetime", T.TIMESTAMP, True),
    ("mysql", "varchar", T.TEXT, True),
    ("mysql", "longtext", T.INT64, False),
    ("mysql", "double", T.FLOAT32, False),
    ("mysql", "bigint", T.INT32, False),
]


@pytest.mark.parametrize(("engine", "old", "new", "in_place"), WIDENINGS)
def test_widening_is_neutral_and_read_through_the_engine_s_mapper(engine, old, new, in_place):
    assert evolve.widens(old, new, MAPPERS[engine]) is in_place


@pytest.mark.parametrize("engine", MAPPERS)
def test_a_diff_speaks_the_engine_s_spelling(engine):
    mapper = MAPPERS[engine]
    wanted = [
        Column("id", T.INT64, False, True, ("key", "id")),
        Column("n", T.INT64, True, False, ("value", "n")),
        Column("new", T.UUID, True, False, ("value", "new")),
    ]
    existing = {"id": mapper.spell(T.INT64).upper(), "n": mapper.spell(T.INT16)}
    changes = evolve.diff(existing, wanted, mapper)
    assert [(c.kind, c.column.name, c.new_type, c.old_type) for c in changes] == [
        ("retype", "n", mapper.spell(T.INT64), mapper.spell(T.INT16)),
        ("add", "new", mapper.spell(T.UUID), None),
    ]
    assert evolve.unsafe(changes, mapper) == []
    narrowed = evolve.diff(
        {"id": mapper.spell(T.INT64), "n": mapper.spell(T.FLOAT64)}, wanted, mapper
    )
    assert evolve.unsafe(narrowed, mapper) == [
        f"change type of n: {mapper.spell(T.FLOAT64)} -> {mapper.spell(T.INT64)}"
    ]
