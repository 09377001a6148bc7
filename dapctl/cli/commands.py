"""The command table: which handler runs each command the grammar names.

A handler is ``cmd_NAME(args, ctx) -> exit status``: it calls the library with explicit
arguments, renders what it returns (text through ``render``, or one JSON document with
``--json``) and returns an ``ExitStatus``. Errors are raised, never printed: ``main`` turns
them into a message and a status. The handlers live with their kind: ``run_commands``
(validate, plan, apply), ``import_commands`` (import), ``operate_commands`` (status, runs),
``state_commands`` (state, force-unlock) and ``inspect_commands`` (init, tables, describe,
token, config-schema, emulator).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from dapctl.cli.context import Context
from dapctl.cli.import_commands import cmd_import
from dapctl.cli.inspect_commands import (
    cmd_config_schema,
    cmd_describe,
    cmd_emulator,
    cmd_init,
    cmd_tables,
    cmd_token,
)
from dapctl.cli.operate_commands import cmd_runs_list, cmd_runs_show, cmd_show, cmd_status
from dapctl.cli.run_commands import cmd_apply, cmd_plan, cmd_validate
from dapctl.cli.state_commands import (
    cmd_force_unlock,
    cmd_state_list,
    cmd_state_migrate,
    cmd_state_mv,
    cmd_state_rm,
    cmd_state_show,
)

Handler = Callable[[argparse.Namespace, Context], int]


HANDLERS: dict[str, Handler] = {
    "init": cmd_init,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "import": cmd_import,
    "status": cmd_status,
    "runs list": cmd_runs_list,
    "runs show": cmd_runs_show,
    "show": cmd_show,
    "tables": cmd_tables,
    "describe": cmd_describe,
    "state list": cmd_state_list,
    "state show": cmd_state_show,
    "state rm": cmd_state_rm,
    "state mv": cmd_state_mv,
    "state migrate": cmd_state_migrate,
    "force-unlock": cmd_force_unlock,
    "token": cmd_token,
    "config-schema": cmd_config_schema,
    "emulator": cmd_emulator,
}
