"""The Identity Service and Query API endpoints, as pure request -> `Response` functions.

`handle_api` routes one request. Every ``/dap/`` call passes, in order: injected faults (the
gateway fails before anything else), token check (``Authorization: Bearer`` wins over the
deprecated ``x-instauth``), account state, the client's rate limit for the endpoint class,
then the endpoint. Query bodies are validated strictly, as the service does: unknown fields,
bad formats, modes and timestamps are 400 ``ValidationError`` with a location in the body.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from dapctl.emulator import jwt
from dapctl.emulator.catalog import format_ts, json_schema
from dapctl.emulator.data import TableData
from dapctl.emulator.formats import FORMATS, MODES, FormatUnavailable, require
from dapctl.emulator.jobs import Query
from dapctl.emulator.responses import ApiError, Response, json_response, not_found, validation

if TYPE_CHECKING:
    from dapctl.emulator.emulator import Emulator

Handler = Callable[["Emulator", str, dict[str, str], str], Response]
QUERY_FIELDS = ("format", "mode", "since", "until")
READY_WAIT = 0.5
SCOPE = "urn:canvas:dap:query urn:canvas:dap:object"


def login(emu: Emulator, headers: dict[str, str], body: str) -> Response:
    """``POST /ids/auth/login``: HTTP Basic + ``grant_type=client_credentials``."""
    failure = emu.faults.next_login_failure()
    if failure is not None:
        emu.stats.incr("login_failures")
        raise ApiError(failure, "AuthenticationError", "login refused (an emulator fault knob)")
    client_id, secret = _basic(headers.get("authorization"))
    if parse_qs(body).get("grant_type") != ["client_credentials"]:
        raise ApiError(400, "BadRequest", "grant_type must be client_credentials")
    if emu.settings.all_clients().get(client_id) != secret:
        emu.stats.incr("login_failures")
        raise ApiError(403, "AuthenticationError", "invalid client credentials")
    now = emu.clock()
    lifetime = emu.faults.token_lifetime
    lifetime = emu.settings.token_lifetime if lifetime is None else lifetime
    claims = {
        "iss": "dapctl-emulator",
        "sub": client_id,
        "scope": SCOPE,
        "iat": int(now),
        "exp": int(now + lifetime),
        "jti": str(uuid.uuid4()),
    }
    emu.stats.incr("logins")
    token = jwt.encode(claims, emu.key)
    body_out = {"access_token": token, "expires_in": int(lifetime), "scope": SCOPE}
    return json_response({**body_out, "token_type": "bearer"})


def _basic(header: str | None) -> tuple[str, str]:
    if not header:
        raise ApiError(403, "AuthenticationError", "missing HTTP Basic authentication")
    scheme, _, encoded = header.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", "malformed Basic credentials") from exc
    client_id, colon, secret = decoded.partition(":")
    if scheme.lower() != "basic" or not colon:
        raise ApiError(400, "BadRequest", "expected 'Basic base64(client_id:secret)'")
    return client_id, secret


def authenticate(emu: Emulator, headers: dict[str, str]) -> str:
    """The calling client's id, or a 401 (403 for expired tokens when so knobbed)."""
    auth = headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-instauth")
    if not token:
        raise ApiError(401, "AuthenticationError", "missing access token")
    try:
        claims = jwt.decode(token, emu.key)
    except jwt.InvalidToken as exc:
        raise ApiError(401, "AuthenticationError", f"invalid access token: {exc}") from exc
    if claims["exp"] <= emu.clock():
        status = emu.faults.expired_token_status
        raise ApiError(status, "AuthenticationError", "access token expired")
    client_id = str(claims.get("sub"))
    state = emu.faults.account_states.get(client_id)
    if state is not None:
        raise ApiError(403, state, f"account state: {state} (an emulator fault knob)")
    return client_id


def list_tables(emu: Emulator, path: str, match: dict[str, str], body: str) -> Response:
    tables = emu.data.namespaces().get(match["ns"])
    if tables is None:
        raise not_found("namespace", match["ns"])
    emu.stats.incr("tables_listed")
    return json_response({"tables": sorted(tables)})


def schema(emu: Emulator, path: str, match: dict[str, str], body: str) -> Response:
    table = _table(emu, match)
    emu.stats.incr("schemas")
    return json_response(json_schema(table.spec, emu.settings.schema_version))


def _table(emu: Emulator, match: dict[str, str]) -> TableData:
    if match["ns"] not in emu.data.namespaces():
        raise not_found("namespace", match["ns"])
    table = emu.data.table(match["ns"], match["table"])
    if table is None:
        raise not_found("table", f"{match['ns']}.{match['table']}")
    return table


def create_job(emu: Emulator, path: str, match: dict[str, str], body: str) -> Response:
    table = _table(emu, match)
    query = parse_query(body, emu.data.now, emu.settings.retention)
    faults, settings = emu.faults, emu.settings
    delay = settings.job_delay if faults.job_delay is None else faults.job_delay
    job, new = emu.jobs.create(
        table,
        query,
        emu.clock(),
        use_cache=faults.cache_jobs,
        delay=delay,
        lifetime=settings.job_lifetime,
        schema_version=settings.schema_version,
        # A window can only be gone for an incremental: a snapshot of a failing table whose
        # jobs report SnapshotRequired succeeds, as the real service's would.
        failed=table.spec.dotted in faults.failing_tables
        and (faults.failed_job_type != "SnapshotRequired" or query.since is not None),
        failure_type=faults.failed_job_type,
    )
    emu.stats.incr("jobs_created" if new else "jobs_reused")
    # Small results encode in milliseconds; waiting a moment lets an instant job answer
    # "complete" at once (the official client sleeps 5 s before its first poll otherwise).
    job.ready.wait(READY_WAIT)
    return json_response(job.to_json(emu.clock()))


def parse_query(text: str, now: int, retention: float) -> Query:
    """A validated `Query` from a request body, or a 400 that points into the body."""
    try:
        body = json.loads(text or "")
    except json.JSONDecodeError as exc:
        where = {"line": exc.lineno, "column": exc.colno, "character": exc.pos + 1}
        message = f"malformed JSON: {exc.msg}"
        raise ApiError(400, "ValidationError", message, location=where) from exc
    if not isinstance(body, dict):
        raise validation(text, "the query must be a JSON object")
    for name in body:
        if name not in QUERY_FIELDS:
            raise validation(text, f"unknown field {name!r}; expected {QUERY_FIELDS}", f'"{name}"')
    fmt, mode = body.get("format"), body.get("mode")
    if fmt not in FORMATS:
        raise validation(text, f"format must be one of {FORMATS}", '"format"')
    if mode is not None and mode not in MODES:
        raise validation(text, f"mode must be one of {MODES} or null", '"mode"')
    try:
        require(fmt)
    except FormatUnavailable as exc:
        raise validation(text, str(exc), '"format"') from exc
    since, until = _ts(text, body, "since"), _ts(text, body, "until")
    if since is None and until is not None:
        raise validation(text, "until needs since", '"until"')
    if since is not None:
        _check_window(text, since, until, now, retention)
    return Query(fmt, mode, since, until)


def _ts(text: str, body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise validation(text, f"{name} must be an RFC 3339 timestamp with a zone", f'"{name}"')
    # The data clock ticks in whole seconds, so a fractional bound rounds up losslessly.
    return math.ceil(parsed.timestamp())


def _check_window(text: str, since: int, until: int | None, now: int, retention: float) -> None:
    earliest = now - int(retention)
    bounds: dict[str, Any] = {"since": format_ts(earliest), "until": format_ts(now)}
    if since < earliest:
        message = f"since is older than the {retention / 86400:g}-day retention; take a snapshot"
        raise ApiError(400, "SnapshotRequired", message, **bounds)
    if until is not None and until > now:
        raise ApiError(400, "OutOfRange", "until is in the future", **bounds)
    if since > (now if until is None else until):
        raise validation(text, "since is later than until (or now)", '"since"')


def get_job(emu: Emulator, path: str, match: dict[str, str], body: str) -> Response:
    now = emu.clock()
    job = emu.jobs.get(match["job"], now)
    if job is None:
        raise not_found("job", match["job"])
    emu.stats.incr("job_polls")
    return json_response(job.to_json(now))


def object_urls(emu: Emulator, path: str, match: dict[str, str], body: str) -> Response:
    try:
        ids = [item["id"] for item in json.loads(body)]
    except (ValueError, TypeError, KeyError):
        raise validation(body, 'expected [{"id": "<object id>"}, ...]') from None
    now = emu.clock()
    lifetime = emu.faults.url_lifetime
    expires = int(now + (emu.settings.url_lifetime if lifetime is None else lifetime))
    urls = {}
    for object_id in ids:
        if not isinstance(object_id, str) or emu.jobs.live_object(object_id, now) is None:
            raise not_found("object", str(object_id))
        signature = emu.jobs.sign(object_id, expires)
        query = f"X-Expires={expires}&X-Signature={signature}"
        urls[object_id] = {"url": f"{emu.base_url}/_objects/{quote(object_id)}?{query}"}
    emu.stats.incr("url_requests")
    emu.stats.incr("urls_issued", len(urls))
    return json_response({"urls": urls})


ROUTES: tuple[tuple[str, re.Pattern[str], str, Any], ...] = (
    ("GET", re.compile(r"/dap/query/(?P<ns>[^/]+)/table"), "tables", list_tables),
    (
        "GET",
        re.compile(r"/dap/query/(?P<ns>[^/]+)/table/(?P<table>[^/]+)/schema"),
        "schema",
        schema,
    ),
    (
        "POST",
        re.compile(r"/dap/query/(?P<ns>[^/]+)/table/(?P<table>[^/]+)/data"),
        "jobs",
        create_job,
    ),
    ("GET", re.compile(r"/dap/job/(?P<job>[^/]+)"), "job_status", get_job),
    ("POST", re.compile(r"/dap/object/url"), "urls", object_urls),
)


def handle_api(
    emu: Emulator, method: str, path: str, headers: dict[str, str], body: str
) -> Response:
    """Route one request under ``/ids/`` or ``/dap/``."""
    if path == "/ids/auth/login":
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", "use POST")
        return login(emu, headers, body)
    for route_method, pattern, endpoint_class, endpoint in ROUTES:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        if method != route_method:
            raise ApiError(405, "MethodNotAllowed", f"use {route_method}")
        _gateway(emu, headers, endpoint_class)
        response: Response = endpoint(emu, path, found.groupdict(), body)
        return response
    raise not_found("endpoint", path)


def _gateway(emu: Emulator, headers: dict[str, str], endpoint_class: str) -> None:
    injected = emu.faults.next_api_error()
    if injected is not None:
        emu.stats.incr("injected_errors")
        extra = {} if injected.retry_after is None else {"Retry-After": str(injected.retry_after)}
        kind = "TooManyRequests" if injected.status == 429 else "ServerError"
        html = injected.html and injected.status >= 500
        raise ApiError(injected.status, kind, "an emulator fault knob", headers=extra, html=html)
    client_id = authenticate(emu, headers)
    wait = emu.limiter.hit(client_id, endpoint_class)
    if wait is not None:
        emu.stats.incr("rate_limited")
        message = f"rate limit for {endpoint_class} calls exceeded"
        raise ApiError(429, "TooManyRequests", message, headers={"Retry-After": str(wait)})
