"""Job threads record steps and re-read them at once over a database's one shared
connection: they take turns (a PostgreSQL connection runs one transaction at a time; two at
once failed with "transaction commit at the wrong nesting level")."""

from __future__ import annotations

import threading

from dapctl.loading import load_config
from dapctl.outputs.records import DatabaseRecords, reread_step
from dapctl.outputs.tables import Databases
from dapctl.state import StepState

TABLES = [f"t{i}" for i in range(8)]


def test_threads_share_the_connection_in_turns(backend, write_config):
    tables = ", ".join(f'"{t}"' for t in TABLES)
    path = write_config(
        f'[databases.wh]\nurl = "{backend.url}"\n[profiles.p]\nemulator = true\n'
        f'[[targets]]\nname = "t"\nnamespace = "canvas"\ntables = [{tables}]\n'
        'database = "wh"\n'
    )
    config = load_config(path).config
    errors: list[BaseException] = []
    start = threading.Barrier(len(TABLES))

    def work(table: str) -> None:
        address = f"p/t/canvas.{table}"
        try:
            start.wait()
            for n in range(25):
                records.mirror(address, StepState(records=n))
                reread_step(config, databases.shared, address)
        except BaseException as exc:
            errors.append(exc)

    with Databases(config, base_dir=path.parent, environ={}) as databases:
        records = DatabaseRecords(config, databases)
        threads = [threading.Thread(target=work, args=(t,)) for t in TABLES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    rows = backend.query("SELECT table_name, record FROM dapctl.table_steps")
    assert sorted(name for name, _ in rows) == TABLES
    assert all(StepState.model_validate_json(record).records == 24 for _, record in rows)
