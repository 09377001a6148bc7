"""What only the MySQL engine has: the TSV a part becomes, how information_schema's types
are read, names that MySQL's 64 characters and the ``schema__table`` rule refuse, and a
``MYSQL_PWD`` that never reaches an error."""

from __future__ import annotations

import io

import pytest

from dapctl.databases import DatabaseError, evolve, mysql_sql
from dapctl.databases.columns import Column, ColumnType
from dapctl.databases.mysql import MySQLDatabase, _target
from dapctl.errors import ConfigError

T = ColumnType
KEY = Column("id", T.TEXT, False, True, ("key", "id"))
COLUMNS = [
    KEY,
    Column("doc", T.JSON, True, False, ("value", "doc")),
    Column("ok", T.BOOLEAN, True, False, ("value", "ok")),
    Column("meta_ts", T.TIMESTAMP, True, False, ("meta", "ts")),
]


def test_a_part_becomes_typed_tsv_with_escapes_nulls_and_utc_times():
    lines = [
        '{"key":{"id":"a\\tb\\\\N"},"value":{"doc":{"x":"\\n"},"ok":true},'
        '"meta":{"ts":"2026-01-01T02:00:00.5+02:00"}}\n',
        "\n",
        '{"key":{"id":"c"},"meta":{"ts":"2026-01-01T00:00:00Z","action":"D"}}\n',
    ]
    out = io.StringIO()
    assert mysql_sql.to_tsv(lines, COLUMNS, out) == 2
    assert out.getvalue().splitlines() == [
        'U\ta\\tb\\\\N\t{"x":"\\\\n"}\t1\t2026-01-01 00:00:00.500000',
        "D\tc\t\\N\t\\N\t2026-01-01 00:00:00.000000",
    ]


@pytest.mark.parametrize(
    ("data_type", "wanted", "read"),
    [
        ("varchar", KEY, "LONGTEXT"),  # a text key is VARCHAR(255) on purpose: no change
        ("longtext", COLUMNS[1], "json"),  # MariaDB's JSON
        ("int", None, "integer"),
        ("tinyint", None, "boolean"),
        ("datetime", COLUMNS[3], "datetime"),
    ],
)
def test_information_schema_types_read_as_the_mapper_spells_them(data_type, wanted, read):
    assert mysql_sql.existing_type(data_type, wanted) == read


@pytest.mark.parametrize(
    ("data_type", "column_type", "kind", "read"),
    [
        ("datetime", "datetime(6)", T.TIMESTAMP, "datetime"),
        ("datetime", "datetime", T.TIMESTAMP, "datetime without microseconds"),  # dap's
        ("timestamp", "timestamp(3)", T.TIMESTAMP, "timestamp without microseconds"),
        ("time", "time", T.TIME, "time without microseconds"),
        ("time", "time(6)", T.TIME, "time"),
        ("bigint", "bigint(20)", T.INT64, "bigint"),
    ],
)
def test_a_time_with_fewer_digits_reads_as_a_type_a_load_widens(data_type, column_type, kind, read):
    wanted = Column("at", kind, True, False, ("value", "at"))
    have = mysql_sql.existing_type(data_type, wanted, column_type)

    assert have == read
    changes = evolve.diff({"at": have}, [wanted], mysql_sql.TYPES)
    assert bool(changes) == read.endswith("microseconds")
    assert evolve.unsafe(changes, mysql_sql.TYPES) == []  # in place, even in an incremental


def test_lock_names_fit_mysql_s_64_characters():
    assert mysql_sql.lock_name("db", "canvas.users") == "dapctl:db.canvas.users"
    long = mysql_sql.lock_name("d" * 64, "canvas.users")
    assert len(long) <= 64 and long != mysql_sql.lock_name("e" * 64, "canvas.users")


def test_names_mysql_cannot_hold_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="must not hold '__'"):
        _target("can__vas", "users")
    with pytest.raises(ConfigError, match="longer than MySQL's 64 characters"):
        _target("s" * 40, "t" * 30)
    assert _target("canvas", "users") == ("canvas", "users")


def test_mysql_pwd_never_reaches_an_error(monkeypatch):
    monkeypatch.setenv("MYSQL_PWD", "hunter2-secret")
    with pytest.raises(DatabaseError) as caught:
        MySQLDatabase.connect("mysql://nobody@127.0.0.1:1/db")  # nothing listens on port 1
    assert "hunter2" not in str(caught.value)
    assert "mysql://nobody@127.0.0.1:1/db" in str(caught.value)
