"""The grammar of the run commands: ``validate``, ``plan`` and ``apply``.

Each ``add_NAME(commands)`` adds one command's parser to the top-level subparsers, with its
summary, examples and arguments; ``arguments.build_parser`` calls them in the order ``dapctl
--help`` lists the commands.
"""

from __future__ import annotations

from typing import Any

from dapctl.cli.operate_arguments import metrics_file
from dapctl.cli.shared_arguments import (
    add_command,
    config_arg,
    json_flag,
    lock_timeout,
    positive_int,
    require_credentials,
    seconds,
    selection_args,
)


def add_validate(commands: Any) -> None:
    sub = add_command(
        commands,
        "validate",
        "Check a config file and its credentials' sources, without touching the network.",
        ["dapctl validate dapctl.toml", "dapctl validate dapctl.toml --json"],
    )
    config_arg(sub)
    json_flag(sub, "the verdict, profiles and targets")
    require_credentials(sub)


def add_plan(commands: Any) -> None:
    sub = add_command(
        commands,
        "plan",
        "Show the job each table needs next (snapshot, incremental or resume), from the "
        "config and the state (database targets' records are read from their databases). "
        "Talks to no DAP server unless --refresh.",
        [
            "dapctl plan dapctl.toml",
            "dapctl plan dapctl.toml --refresh   # also each database table's schema changes",
            "dapctl plan dapctl.toml --profile univ_a --target 'univ_a/core/canvas.*'",
            "dapctl plan dapctl.toml --json",
            "dapctl plan dapctl.toml --detailed-exitcode   # exit 2 when steps are pending",
            "dapctl plan dapctl.toml -out reviewed.plan     # then: dapctl apply reviewed.plan",
        ],
    )
    config_arg(sub)
    selection_args(sub)
    json_flag(sub, "the plan")
    sub.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would run, 2 when steps are pending, 1 on error",
    )
    sub.add_argument(
        "-out",
        "--out",
        dest="out",
        metavar="FILE",
        help="also save the plan to FILE, for `dapctl apply FILE` to carry out exactly "
        "(refused there if the config or the state changed since, or the plan is older "
        "than [settings] plan_max_age)",
    )
    sub.add_argument(
        "--refresh",
        action="store_true",
        help="fetch each database table's DAP schema and show the column changes the next "
        "apply makes (needs the profiles' credentials)",
    )
    require_credentials(sub)


def add_apply(commands: Any) -> None:
    sub = add_command(
        commands,
        "apply",
        "Run the plan: start or resume each table's query job, download its parts, write the "
        "declared output whole or not at all (a file, a bucket object or a database table), "
        "and record the watermark in the state.",
        [
            "dapctl apply dapctl.toml",
            "dapctl apply dapctl.toml --profile univ_a --target 'univ_a/core/*' --json",
            "dapctl apply dapctl.toml --replace univ_a/core/canvas.users  # re-snapshot one",
            "dapctl apply dapctl.toml --log-format json --log-file /var/log/dapctl.jsonl",
            "dapctl apply dapctl.toml --no-wait    # start jobs, record them, exit",
            "dapctl apply dapctl.toml              # ... later: collect them",
            "dapctl apply reviewed.plan            # exactly the steps `plan -out` saved",
        ],
    )
    config_arg(sub)
    selection_args(sub)
    json_flag(sub, "the results")
    sub.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress on stderr (it shows only when stderr is a terminal)",
    )
    sub.add_argument(
        "--no-wait",
        action="store_true",
        help="start the jobs, record them in the state and exit; a later apply collects them",
    )
    lock_timeout(sub)
    metrics_file(sub)
    sub.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="tables collected at once (default: settings.concurrency)",
    )
    sub.add_argument(
        "--timeout",
        "--job-timeout",
        dest="job_timeout",
        type=seconds,
        metavar="S",
        help="give up waiting for a job after S seconds; the step fails and the next apply "
        "resumes the job (default: wait as long as it runs)",
    )
