"""Azurite with the one List Blobs parameter it lacks: ``python -m tests.azurite_listing PORT``
listens on a free port of 127.0.0.1 (printed), passes every request through to Azurite's blob
service on PORT as it came (its signature intact), and serves until its stdin closes.

Azure's List Blobs takes ``startFrom`` (service version 2023-08-03): only blobs named at or
after it. Azurite 3 ignores it and lists from the start. delta-rs reads a table's log newer
than the version it holds by listing from that version's name, so against Azurite it sees
its own older entries, takes them for newer ones, and fails every commit after the second
("Invalid table version: 1"). Here a listing that names ``startFrom`` has the blobs before
it taken out of Azurite's answer, as Azure itself would; nothing else is touched. A process
of its own, as ``tests/s3_process.py``: delta-rs holds the GIL through its requests.
"""

from __future__ import annotations

import http.client
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_BLOB = re.compile(rb"<Blob>.*?</Blob>", re.DOTALL)
_NAME = re.compile(rb"<Name>(.*?)</Name>", re.DOTALL)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _from(body: bytes, start: str) -> bytes:
    """The listing ``body`` without the blobs named before ``start``."""

    def keep(match: re.Match[bytes]) -> bytes:
        name = _NAME.search(match[0])
        return match[0] if name is None or name[1].decode() >= start else b""

    return _BLOB.sub(keep, body)


def serve(azurite: int) -> ThreadingHTTPServer:
    class Passing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes | None:
            """The request's body, sent whole or in chunks (aiohttp streams an upload)."""
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers, up to the blank line
            return b"".join(chunks)

        def _pass(self) -> None:
            body = self._body()
            upstream = http.client.HTTPConnection("127.0.0.1", azurite, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            query = parse_qs(urlsplit(self.path).query)
            if "startFrom" in query and query.get("comp") == ["list"] and answer.status == 200:
                data = _from(data, query["startFrom"][0])
            self.send_response_only(answer.status, answer.reason)  # its headers are Azurite's
            for name, value in answer.getheaders():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            # A HEAD's length is the blob's, as Azurite said; a body's is what is sent.
            length = (
                answer.getheader("Content-Length", "0") if self.command == "HEAD" else len(data)
            )
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Passing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    server = serve(int(sys.argv[1]))
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test process closes the pipe (or dies)
    server.shutdown()


if __name__ == "__main__":
    main()
