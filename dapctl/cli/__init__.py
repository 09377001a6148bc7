"""The command line: ``dapctl`` and its subcommands.

Module map: ``main`` (``main(argv)``, dispatch, exit statuses), ``commands`` (one handler per
command), ``arguments`` (the argparse grammar and its help), ``render`` (plans, results and
state as text), ``progress`` (the live display), ``logs`` (text and JSON logging),
``style`` (terminal colour), ``starter`` (the config ``dapctl init`` writes), ``context``
(a command's streams, environment and progress display).
"""

from __future__ import annotations

from dapctl.cli.arguments import build_parser
from dapctl.cli.main import main

__all__ = ["build_parser", "main"]
