"""The command line: ``dapctl`` and its subcommands.

Module map:

- ``main``: ``main(argv)``, dispatch, exit statuses.
- ``context``: a command's streams, environment and progress display.
- ``commands``: the command table, which handler runs each command.
- ``run_commands``: ``validate``, ``plan`` and ``apply``.
- ``import_commands``: ``import`` (tables ``dap syncdb`` keeps, taken over).
- ``operate_commands``: ``status``, ``runs list``/``show``, the metrics file.
- ``state_commands``: ``state list``/``show``/``rm``/``mv``/``migrate``, ``force-unlock``.
- ``inspect_commands``: ``init``, ``tables``, ``describe``, ``token``, ``config-schema``...
- ``stores``: the state store and databases a command opens; the state as apply sees it.
- ``arguments``: the argparse grammar's top-level parser, ``build_parser``.
- ``shared_arguments``: the flags every command takes, the arguments several share.
- ``run_arguments``: the grammar of ``validate``, ``plan`` and ``apply``.
- ``import_arguments``: the grammar of ``import``.
- ``operate_arguments``: the grammar of ``status`` and ``runs``.
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
