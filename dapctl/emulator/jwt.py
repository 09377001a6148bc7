"""Minimal HS256 JSON Web Tokens: enough to issue and check the emulator's access tokens.

`encode` signs a claims dict; `decode` verifies the signature and returns the claims, raising
`InvalidToken` for anything malformed or forged. Expiry is the caller's business (the
emulator compares ``exp`` with its injectable clock), so an expired token still decodes.
The official client reads ``exp`` without verifying the signature, so any well-formed JWT
would do for it; signing keeps the emulator honest about rejecting tampered tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(Exception):
    """The token is not a JWT this emulator signed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str, key: bytes) -> str:
    return _b64(hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest())


def encode(claims: dict[str, Any], key: bytes) -> str:
    """A compact HS256 JWT carrying ``claims``."""
    header = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(signing_input, key)}"


def decode(token: str, key: bytes) -> dict[str, Any]:
    """The claims of a token signed with ``key``; `InvalidToken` otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWT")
    header, payload, signature = parts
    if not hmac.compare_digest(_sign(f"{header}.{payload}", key), signature):
        raise InvalidToken("bad signature")
    try:
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise InvalidToken("unreadable payload") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
        raise InvalidToken("no exp claim")
    return claims
