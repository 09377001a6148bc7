"""moto's S3 server (the one-``Server``-header kind of ``tests/s3_fixtures.py``) in a process
of its own: ``python -m tests.s3_process`` prints its port, then serves until its stdin
closes. For code that must not share a process with the server: delta-rs (the Delta engine)
holds the GIL through some requests, which a server thread in the same process then never
answers."""

from __future__ import annotations

import logging
import sys

from tests.s3_fixtures import _require_moto


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = _require_moto()(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test process closes the pipe (or dies)
    server.stop()


if __name__ == "__main__":
    main()
