"""The test-control endpoints under ``/_emulator/``, for a dapctl running in a subprocess.

They need no token: the emulator only listens on loopback and they exist for tests.

- ``GET  /_emulator/health`` -> ``{"ok": true, "base_url": ...}``
- ``GET  /_emulator/stats`` -> the `Stats` counters; ``POST /_emulator/stats/reset`` zeroes them
- ``GET  /_emulator/faults`` -> the knobs; ``POST /_emulator/faults`` with ``{knob: value}``
  sets some (the same names as `Faults` attributes)
- ``GET  /_emulator/clock`` -> ``{"now": <RFC 3339>}`` (the data clock)
- ``POST /_emulator/advance`` with ``{"seconds": 60}`` -> ``{"now": ...}``
- ``POST /_emulator/change`` with ``{"namespace", "table", "inserts", "updates", "deletes"}``
  (counts, or id lists for updates/deletes) -> ``{"ts", "inserted", "updated", "deleted"}``
- ``GET  /_emulator/expected?namespace=&table=[&since=&until=]`` -> ``{"records": [...]}``:
  `Emulator.expected_snapshot`, or `Emulator.expected_changes` when ``since`` is given.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from dapctl.emulator.catalog import format_ts
from dapctl.emulator.responses import ApiError, Response, json_response, not_found

if TYPE_CHECKING:
    from dapctl.emulator.emulator import Emulator


def handle_control(emu: Emulator, method: str, path: str, query: str, body: str) -> Response:
    """Route one ``/_emulator/`` request; bad input is a 400 ``ValidationError``."""
    try:
        return _route(emu, method, path.removeprefix("/_emulator/"), query, body)
    except (ValueError, TypeError, KeyError) as exc:
        location = {"line": 1, "column": 1, "character": 1}
        raise ApiError(400, "ValidationError", f"{exc}", location=location) from exc


def _route(emu: Emulator, method: str, name: str, query: str, body: str) -> Response:
    data: dict[str, Any] = json.loads(body) if method == "POST" and body.strip() else {}
    if (method, name) == ("GET", "health"):
        return json_response({"ok": True, "base_url": emu.base_url})
    if (method, name) == ("GET", "stats"):
        return json_response(emu.stats.as_dict())
    if (method, name) == ("POST", "stats/reset"):
        emu.stats.reset()
        return json_response(emu.stats.as_dict())
    if name == "faults" and method in ("GET", "POST"):
        emu.faults.update(**data)
        return json_response(emu.faults.as_dict())
    if (method, name) == ("GET", "clock"):
        return json_response({"now": format_ts(emu.data.now)})
    if (method, name) == ("POST", "advance"):
        emu.advance(float(data["seconds"]))
        return json_response({"now": format_ts(emu.data.now)})
    if (method, name) == ("POST", "change"):
        return _change(emu, data)
    if (method, name) == ("GET", "expected"):
        return _expected(emu, parse_qs(query))
    raise not_found("endpoint", f"/_emulator/{name}")


def _change(emu: Emulator, data: dict[str, Any]) -> Response:
    result = emu.change(
        data["namespace"],
        data["table"],
        inserts=int(data.get("inserts", 0)),
        updates=data.get("updates", 0),
        deletes=data.get("deletes", 0),
    )
    return json_response(
        {
            "ts": format_ts(result.ts),
            "inserted": list(result.inserted),
            "updated": list(result.updated),
            "deleted": list(result.deleted),
        }
    )


def _expected(emu: Emulator, params: dict[str, list[str]]) -> Response:
    namespace, table = params["namespace"][0], params["table"][0]
    if "since" not in params:
        return json_response({"records": emu.expected_snapshot(namespace, table)})
    since = _parse(params["since"][0])
    until = _parse(params["until"][0]) if "until" in params else None
    return json_response({"records": emu.expected_changes(namespace, table, since, until)})


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp needs a zone: {text!r}")
    return parsed
