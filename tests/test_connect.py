"""How dapctl reaches servers: standard proxy variables are honoured."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.apply_helpers import config_text, environ


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: requests arrive with absolute URLs and are passed on."""

    seen: list[str] = []

    def _forward(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        assert self.path.startswith("http://127.0.0.1:")  # loopback only, never further
        request = urllib.request.Request(  # noqa: S310 (scheme checked just above)
            self.path, data=body, headers=headers, method=self.command
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            response = opener.open(request, timeout=10)
        except urllib.error.HTTPError as error:
            response = error
        data = response.read()
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy_url() -> Iterator[str]:
    _ForwardProxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_proxy_variable_is_honoured(
    make_emulator, write_config, run_cli, proxy_url, monkeypatch
):
    # requests reads proxy settings from the process environment, as every HTTP tool does.
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    emu = make_emulator()
    path = write_config(config_text(emu, tables='["accounts"]'))
    result = run_cli("apply", str(path), "--json", environ=environ(emu))
    assert result.code == 0, result.stderr
    assert any("/ids/auth/login" in line for line in _ForwardProxy.seen)
    assert any("/dap/query/canvas/table/accounts/data" in line for line in _ForwardProxy.seen)
