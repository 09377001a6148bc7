"""The ``dapctl emulator`` subcommand: run an emulator in the foreground until Ctrl-C.

`configure_parser` adds every setting and fault knob as a flag; `settings_from_args` turns the
parsed flags into `EmulatorSettings` and `Faults` (pure, for tests); `run` starts the
emulator, prints its base URL and credentials and blocks. Printing the demo secret is fine:
it is public and fake; a secret given with ``--client-secret`` is never echoed.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import datetime
from typing import Any, TextIO

from dapctl.budgets import BUDGETS
from dapctl.emulator.emulator import Emulator
from dapctl.emulator.faults import (
    ACCOUNT_STATES,
    ERROR_STATUSES,
    EXPIRED_TOKEN_STATUSES,
    LOGIN_FAILURE_STATUSES,
    Faults,
)
from dapctl.emulator.settings import DAY, DEMO_CLIENT_SECRET, EmulatorSettings, RateLimits
from dapctl.errors import DapctlError

MAX_PORT = 65535
#: a budget's flag by its name before it matched the client's, still accepted
OLD_FLAGS = {"job_status": ("--rate-limit-status",)}

EPILOG = """\
examples:
  dapctl emulator --port 8080
  dapctl emulator --seed 7 --rows 5000 --table-rows canvas.big=1000000 --part-size 100000
  dapctl emulator --error-every 5 --error-status 503 --error-html --cut-every 3
  dapctl emulator --token-lifetime 60 --fail-logins 2 --fail-table canvas.users

then, in another shell (with the credentials it prints):
  DAP_TRACKING=false DAP_CLIENT_ID=... DAP_CLIENT_SECRET=... \\
    dap --base-url http://127.0.0.1:8080 snapshot --namespace canvas --table accounts

Tests and scripts can change knobs, move the data clock and commit changes while it runs:
POST /_emulator/faults {"error_every": 3}, POST /_emulator/advance {"seconds": 3600},
POST /_emulator/change {"namespace": "canvas", "table": "accounts", "inserts": 5},
GET /_emulator/stats, GET /_emulator/expected?namespace=canvas&table=accounts.
"""


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("timestamps need a zone, e.g. 2026-11-02T00:00:00Z")
    return parsed


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: use 1-{MAX_PORT}, or 0 for a free one"
        )
    return port


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add every emulator flag to ``parser`` (help text and examples included)."""
    parser.description = "Run a local DAP API emulator (Identity Service + Query API)."
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _identity_flags(parser.add_argument_group("server and identity"))
    _data_flags(parser.add_argument_group("data"))
    _timing_flags(parser.add_argument_group("timing and rate limits"))
    faults = parser.add_argument_group("fault knobs")
    _fault_flags(faults)
    _error_flags(faults)


def _identity_flags(group: Any) -> None:
    add = group.add_argument
    add("--port", type=_port, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    add("--client-id", default=None, help="accepted client id (default: the demo id)")
    add("--client-secret", default=None, help="its secret (default: the public demo secret)")
    add(
        "--client",
        action="append",
        type=_pair,
        default=[],
        metavar="ID=SECRET",
        help="an extra accepted client (repeatable); rate limits count per client",
    )


def _data_flags(group: Any) -> None:
    add = group.add_argument
    add("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    add("--rows", type=int, default=1000, help="rows per table (default 1000)")
    add(
        "--table-rows",
        action="append",
        type=_pair,
        default=[],
        metavar="NS.TABLE=N",
        help="rows of one table; an unknown name adds a generic table (repeatable)",
    )
    add("--part-size", type=int, default=50_000, help="records per part object (default 50000)")
    add(
        "--start",
        type=_timestamp,
        default=None,
        help="data clock start, RFC 3339 (default: now, truncated to the second)",
    )
    add(
        "--live",
        action="store_true",
        help="the data changes by itself as the wall clock moves (inserts, updates, deletes),"
        " as the embedded demo's does; --start is then when the changes begin",
    )
    add(
        "--retention-days",
        type=float,
        default=30.0,
        help="incrementals with an older since get SnapshotRequired (default 30)",
    )


def _timing_flags(group: Any) -> None:
    add = group.add_argument
    add("--token-lifetime", type=float, default=3600.0, help="access token lifetime, s (3600)")
    add(
        "--job-delay",
        type=float,
        default=2.0,
        help="seconds a job waits+runs before completing (default 2; slow jobs)",
    )
    add("--job-lifetime", type=float, default=DAY, help="job and object lifetime, s (86400)")
    add(
        "--url-lifetime",
        type=float,
        default=900.0,
        help="pre-signed URL lifetime, s (900; small = URLs expire fast)",
    )
    add("--no-job-cache", action="store_true", help="never answer with an existing job")
    add("--no-rate-limits", action="store_true", help="turn server-side rate limits off")
    for budget in BUDGETS:
        add(
            f"--rate-limit-{budget.name.replace('_', '-')}",
            *OLD_FLAGS.get(budget.name, ()),
            type=int,
            default=budget.per_minute,
            dest=f"rate_limit_{budget.name}",
            metavar="N",
            help=f"calls per window: {_lower_first(budget.endpoint)} ({budget.per_minute})",
        )
    add("--rate-limit-window", type=float, default=60.0, help="window length, s (default 60)")


def _lower_first(text: str) -> str:
    """``Object URL requests.`` as a flag's help says it: ``object URL requests``."""
    return text[:1].lower() + text[1:].rstrip(".")


def _fault_flags(group: Any) -> None:
    add = group.add_argument
    add("--fail-logins", type=int, default=0, metavar="N", help="fail the next N logins")
    add(
        "--login-failure-status",
        type=int,
        choices=LOGIN_FAILURE_STATUSES,
        default=403,
        help="status of those failed logins (default 403)",
    )
    add(
        "--expired-token-status",
        type=int,
        choices=EXPIRED_TOKEN_STATUSES,
        default=401,
        help="status for an expired token (default 401; gateways may say 403)",
    )


def _error_flags(group: Any) -> None:
    add = group.add_argument
    add(
        "--error-every",
        type=int,
        default=0,
        metavar="N",
        help="answer every Nth /dap/ call with --error-status (default 0: never)",
    )
    add("--error-status", type=int, choices=ERROR_STATUSES, default=429, help="default 429")
    add(
        "--error-retry-after",
        type=_optional_int,
        default=1,
        metavar="S|none",
        help="Retry-After on injected 429s (default 1; 'none' omits the header)",
    )
    add("--error-html", action="store_true", help="injected 5xx carry an HTML body")
    add(
        "--cut-every",
        type=int,
        default=0,
        metavar="N",
        help="cut every Nth download off halfway (full Content-Length, half the body)",
    )
    add(
        "--fail-table",
        action="append",
        default=[],
        metavar="NS.TABLE",
        help="jobs on this table end 'failed' (repeatable)",
    )
    add(
        "--failed-job-type",
        default="ProcessingError",
        metavar="TYPE",
        help="the error type a failing table's jobs report (e.g. SnapshotRequired: the "
        "window went away while the job ran)",
    )
    add(
        "--account-state",
        action="append",
        type=_pair,
        default=[],
        metavar="CLIENT_ID=STATE",
        help=f"answer a client with 403 STATE, one of {', '.join(ACCOUNT_STATES)}",
    )


def settings_from_args(args: argparse.Namespace) -> tuple[EmulatorSettings, Faults]:
    """The settings and knobs the flags describe."""
    return _settings(args), _faults(args)


def _settings(args: argparse.Namespace) -> EmulatorSettings:
    per_window = {budget.name: getattr(args, f"rate_limit_{budget.name}") for budget in BUDGETS}
    limits = RateLimits(window=args.rate_limit_window, **per_window)
    settings = EmulatorSettings(
        seed=args.seed,
        port=args.port,
        clients=dict(args.client),
        token_lifetime=args.token_lifetime,
        rate_limits=None if args.no_rate_limits else limits,
        job_delay=args.job_delay,
        job_lifetime=args.job_lifetime,
        url_lifetime=args.url_lifetime,
        start=args.start,
        retention=args.retention_days * DAY,
        rows_per_table=args.rows,
        rows={name: int(n) for name, n in args.table_rows},
        part_size=args.part_size,
        live=args.live,
    )
    if args.client_id or args.client_secret:
        settings = settings.with_(
            client_id=args.client_id or settings.client_id,
            client_secret=args.client_secret or settings.client_secret,
        )
    return settings


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        login_failures=args.fail_logins,
        login_failure_status=args.login_failure_status,
        expired_token_status=args.expired_token_status,
        error_every=args.error_every,
        error_status=args.error_status,
        error_retry_after=args.error_retry_after,
        error_html=args.error_html,
        cut_every=args.cut_every,
        failing_tables=args.fail_table,
        failed_job_type=args.failed_job_type,
        account_states=dict(args.account_state),
        cache_jobs=not args.no_job_cache,
    )


def run(
    args: argparse.Namespace, out: TextIO | None = None, stop: threading.Event | None = None
) -> int:
    """Serve in the foreground until Ctrl-C (or ``stop`` is set); returns 0.

    A port that cannot be had (in use, privileged) raises ``DapctlError``: a message, exit 1.
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    settings, faults = settings_from_args(args)
    with _started(Emulator(settings, faults=faults)) as emu:
        shown = (
            settings.client_secret if settings.client_secret == DEMO_CLIENT_SECRET else "(as given)"
        )
        print(f"DAP emulator listening on {emu.base_url}", file=out)
        print(f"  DAP_CLIENT_ID={settings.client_id}", file=out)
        print(f"  DAP_CLIENT_SECRET={shown}", file=out)
        print(f"  data clock: {emu.now.isoformat().replace('+00:00', 'Z')}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("stopping", file=out)
    return 0


def _started(emu: Emulator) -> Emulator:
    try:
        return emu.start()
    except OSError as exc:
        emu.stop()
        where = f"{emu.settings.host}:{emu.settings.port}"
        raise DapctlError(
            f"the emulator cannot listen on {where}: {exc.strerror or exc}",
            hint="pick another port with --port, or --port 0 for a free one",
        ) from None
