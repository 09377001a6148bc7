"""The command line: ``dapctl`` and its subcommands.

Module map:

- ``main``: ``main(argv)``, dispatch, exit statuses.
- ``context``: a command's streams, environment and progress display.
- ``commands``: one handler per command.
- ``arguments``: the argparse grammar's top-level parser, ``build_parser``.
- ``shared_arguments``: the flags every command takes, the arguments several share.
- ``run_arguments``: the grammar of ``validate``, ``plan`` and ``apply``.
- ``state_arguments``: the grammar of ``state`` and its subcommands, ``force-unlock``.
- ``inspect_arguments``: the grammar of ``init``, ``tables``, ``describe``, ``token``...
- ``render``: plans, results and state as text.
- ``progress``: the live display.
- ``logs``: text and JSON logging.
- ``style``: terminal colour.
- ``starter``: the config ``dapctl init`` writes.
"""

from __future__ import annotations

from dapctl.cli.arguments import build_parser
from dapctl.cli.main import main

__all__ = ["build_parser", "main"]
