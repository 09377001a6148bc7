"""The HTTP layer: a threaded loopback server that turns requests into handler calls.

HTTP/1.1 with keep-alive, every response with a Content-Length. Routes: ``/ids/`` and
``/dap/`` go to `api.handle_api`, ``/_emulator/`` to `control.handle_control`, and
``/_objects/<object id>?X-Expires=&X-Signature=`` are the pre-signed downloads, which need
no token and answer like an object store (403 for a bad or expired signature, 404 for a
missing or expired object, XML bodies). Part bytes come from the job's cache and go out in a
single write, which is what keeps downloads far above 50 MB/s. A download chosen by the
``cut_every`` knob sends the full Content-Length, half the body, then closes the connection.
An unexpected exception in a handler is a 500 in the documented shape, logged with its
traceback; it never kills the server. A client that hangs up mid-request (a cut download, a
timeout, Ctrl-C) is routine: one debug line, never socketserver's traceback on stderr.
"""

from __future__ import annotations

import logging
import sys
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from dapctl.emulator.api import handle_api
from dapctl.emulator.control import handle_control
from dapctl.emulator.responses import ApiError, Response

if TYPE_CHECKING:
    from dapctl.emulator.emulator import Emulator

logger = logging.getLogger("dapctl.emulator")
S3_ERROR = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{}</Code><Message>{}</Message></Error>"
)


class EmulatorServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` that knows its emulator."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], emu: Emulator) -> None:
        self.emu = emu
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Called by socketserver inside an ``except``: log, instead of printing a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # reset, broken pipe, aborted
            logger.debug("a client hung up mid-request (%s)", type(exc).__name__)
            return
        logger.error("emulator connection failed", exc_info=exc)


class Handler(BaseHTTPRequestHandler):
    """One connection; see the module docstring."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK of the headers, ~40 ms per answer on a kept-alive connection.
    # Real servers (DAP's gateway, S3) send at once; so does this one (TCP_NODELAY).
    disable_nagle_algorithm = True
    server: EmulatorServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the data clock's now, as a real server's Date is its own."""
        return formatdate(self.server.emu.data.now, usegmt=True)

    def log_message(self, format: str, *args: object) -> None:
        # The request line of a download holds its pre-signed URL's signature: log the path.
        shown = tuple(_without_query(arg) if isinstance(arg, str) else arg for arg in args)
        logger.debug("%s " + format, self.address_string(), *shown)

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        emu = self.server.emu
        try:
            if path.startswith("/_objects/") and method == "GET":
                self._download(unquote(path.removeprefix("/_objects/")), query)
                return
            if path.startswith("/_emulator/"):
                response = handle_control(emu, method, path, query, body)
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = handle_api(emu, method, path.rstrip("/") or "/", headers, body)
        except ApiError as exc:
            response = exc.response()
        except Exception:
            logger.exception("emulator handler failed on %s %s", method, self.path)
            response = ApiError(500, "ServerError", "internal emulator error").response()
        self._send(response)

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def _send(self, response: Response) -> None:
        self.server.emu.stats.response(response.status)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _object_error(self, status: int, code: str, message: str) -> None:
        body = S3_ERROR.format(code, message).encode()
        self._send(Response(status, body, "application/xml"))

    def _download(self, object_id: str, query: str) -> None:
        emu = self.server.emu
        params = parse_qs(query)
        expires = params.get("X-Expires", [""])[0]
        signature = params.get("X-Signature", [""])[0]
        now = emu.clock()
        problem = emu.jobs.verify(object_id, expires, signature, now)
        if problem is not None:
            self._object_error(403, "AccessDenied", problem)
            return
        found = emu.jobs.live_object(object_id, now)
        if found is None:
            self._object_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        data = emu.jobs.part_bytes(*found)
        self._send_object(data, cut=emu.faults.next_download_cut())

    def _send_object(self, data: bytes, cut: bool) -> None:
        emu = self.server.emu
        emu.stats.response(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        sent = memoryview(data)[: len(data) // 2] if cut else memoryview(data)
        self.wfile.write(sent)
        emu.stats.incr("downloads")
        emu.stats.incr("bytes_served", len(sent))
        if cut:
            # Full Content-Length promised, half delivered: the client sees a truncated body.
            emu.stats.incr("downloads_cut")
            self.close_connection = True


def _without_query(text: str) -> str:
    """A request line with any query string replaced by ``?…``."""
    head, mark, rest = text.partition("?")
    if not mark:
        return text
    _, space, tail = rest.partition(" ")
    return f"{head}?…{space}{tail}"
