"""Resolving a profile into the base URL, client ID and secret dapctl will log in with.

A profile names its credentials directly, through environment variables (``*_env``) or a
file (``client_secret_file``); one that names none falls back to the official client's
``DAP_CLIENT_ID``, ``DAP_CLIENT_SECRET`` and ``DAP_API_URL``. Errors name the profile, the
key and the variable or file, never the value. Secrets stay ``SecretStr`` from here on. An
``http://`` base URL is refused unless its host is loopback: credentials must not cross a
network in clear text. The environment is a parameter, so tests pass their own.
``validate`` and ``plan`` talk to no server: ``check_used`` lets them warn about a missing
variable or secret file (``MissingCredentialError``) instead of failing, so a lint job
without secrets can run them; ``check_locations`` does the same for the state's and the
databases' URLs (``state_env``, ``url_env``, ``url_file``). Each is read by
``secret_sources.resolve_source``, as the outputs and the state read them when they run.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from dapctl.config import DEFAULT_BASE_URL, Config, Profile
from dapctl.errors import ConfigError
from dapctl.loading import LoadedConfig
from dapctl.secret_sources import MissingCredentialError, from_env, resolve_source

log = logging.getLogger("dapctl")


@dataclass(frozen=True)
class Credentials:
    """What one profile logs in with. ``repr`` never shows the secret."""

    profile: str
    base_url: str
    client_id: str
    client_secret: SecretStr
    warnings: tuple[str, ...] = ()
    ca_bundle: Path | None = None


Locate = Callable[[tuple[str | int, ...]], str]


def _key_path(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def resolve_credentials(
    name: str,
    profile: Profile,
    *,
    environ: Mapping[str, str],
    base_dir: Path,
    locate: Locate = _key_path,
) -> Credentials:
    """Resolve a (non-emulator) profile; raise ``ConfigError`` naming what is missing.

    ``locate`` turns a key path into the words that place it (``file:line: key.path``).
    """

    def where(key: str | None = None) -> str:
        return locate(("profiles", name, key) if key else ("profiles", name))

    named_none = all(
        v is None
        for v in (
            profile.client_id,
            profile.client_id_env,
            profile.client_secret,
            profile.client_secret_env,
            profile.client_secret_file,
        )
    )
    if profile.base_url is not None:
        base_url = profile.base_url
        check_base_url(base_url, where=where("base_url"))
    else:
        base_url = environ.get("DAP_API_URL") or DEFAULT_BASE_URL
        check_base_url(
            base_url, where=f"{where()}: sets no base_url, so environment variable DAP_API_URL"
        )
    ca_bundle = _ca_bundle(profile, base_dir, where)
    if named_none:
        client_id = from_env(environ, "DAP_CLIENT_ID", where(), fallback=True)
        secret = from_env(environ, "DAP_CLIENT_SECRET", where(), fallback=True)
        _check_sendable(client_id, "client ID", where())
        _check_sendable(secret, "client secret", where())
        return Credentials(
            name, base_url.rstrip("/"), client_id, SecretStr(secret), ca_bundle=ca_bundle
        )
    client_id = _client_id(profile, environ, where)
    secret, warnings = _client_secret(profile, environ, where, base_dir)
    _check_sendable(client_id, "client ID", where())
    _check_sendable(secret, "client secret", where())
    return Credentials(
        name, base_url.rstrip("/"), client_id, SecretStr(secret), warnings, ca_bundle
    )


def _check_sendable(value: str, what: str, where: str) -> None:
    """The login sends the ID and secret with HTTP Basic authentication, which carries
    Latin-1 only (requests encodes them so). A lone surrogate is what Python makes of bytes
    in the environment that are not UTF-8. Never show the value: it may be the secret."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{where}: the {what} holds a character a login cannot send (HTTP Basic "
            "authentication carries Latin-1 text only)",
            hint="look for a stray character, or bytes that are not UTF-8, where it is set",
        ) from None


def _ca_bundle(profile: Profile, base_dir: Path, where: Callable[..., str]) -> Path | None:
    if profile.ca_bundle is None:
        return None
    path = (base_dir / Path(profile.ca_bundle).expanduser()).resolve()
    if not path.is_file():
        raise ConfigError(f"{where('ca_bundle')}: {path} is not a file of CA certificates")
    return path


def check_base_url(url: str, *, where: str) -> None:
    """Accept https anywhere and http only on loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            f"{where}: http:// is allowed only for loopback hosts; "
            "credentials must not cross a network in clear text",
            hint="use https://",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_id(profile: Profile, environ: Mapping[str, str], where: Callable[..., str]) -> str:
    if profile.client_id is not None:
        return profile.client_id
    if profile.client_id_env is not None:
        return from_env(environ, profile.client_id_env, where("client_id_env"))
    return from_env(environ, "DAP_CLIENT_ID", where(), fallback=True)


def _client_secret(
    profile: Profile, environ: Mapping[str, str], where: Callable[..., str], base_dir: Path
) -> tuple[str, tuple[str, ...]]:
    inline = profile.client_secret
    resolved = resolve_source(
        "client_secret",
        value=None if inline is None else inline.get_secret_value(),
        env=profile.client_secret_env,
        file=profile.client_secret_file,
        where=where,
        environ=environ,
        base_dir=base_dir,
    )
    if resolved is not None:
        return resolved
    return from_env(environ, "DAP_CLIENT_SECRET", where(), fallback=True), ()


def resolve_profiles(
    config: Config,
    names: Sequence[str],
    *,
    environ: Mapping[str, str],
    base_dir: Path,
    locate: Locate = _key_path,
) -> dict[str, Credentials | None]:
    """Resolve the named profiles (all when empty); emulator profiles map to None."""
    return {
        name: None
        if profile.emulator
        else resolve_credentials(name, profile, environ=environ, base_dir=base_dir, locate=locate)
        for name, profile in config.profiles.items()
        if not names or name in names
    }


def resolve_used(
    loaded: LoadedConfig, names: Sequence[str], *, environ: Mapping[str, str]
) -> dict[str, Credentials | None]:
    """Resolve the profiles a command is about to use, logging any warning about them."""
    if not names:
        return {}
    resolved = resolve_profiles(
        loaded.config, names, environ=environ, base_dir=loaded.base_dir, locate=loaded.locate
    )
    for creds in resolved.values():
        for warning in creds.warnings if creds else ():
            log.warning(warning)
    return resolved


def check_locations(
    loaded: LoadedConfig, *, environ: Mapping[str, str], require: bool = False
) -> list[str]:
    """Check, without connecting, the URLs a command would read for the state
    (``state_env``) and the targets' databases (``url_env``, ``url_file``); return (and log)
    the warnings: a missing variable or file is one, unless ``require`` makes it the error
    it is for ``apply``; a file others may read is one always."""
    warnings: list[str] = []
    for section, key, value, env, file in _locations(loaded.config):

        def where(name: str, section: tuple[str, ...] = section) -> str:
            return loaded.locate((*section, name))

        try:
            resolved = resolve_source(
                key,
                value=value,
                env=env,
                file=file,
                where=where,
                environ=environ,
                base_dir=loaded.base_dir,
            )
        except MissingCredentialError as exc:
            if require:
                raise
            warnings.append(f"{exc.message} (apply needs it; --require-credentials: an error)")
            continue
        warnings += resolved[1] if resolved else ()
    for warning in warnings:
        log.warning(warning)
    return warnings


Location = tuple[tuple[str, ...], str, str | None, str | None, str | None]


def _locations(config: Config) -> list[Location]:
    """(section, key, value, variable, file) of the state's URL and each used database's."""
    found: list[Location] = [(("settings",), "state", None, config.settings.state_env, None)]
    for name in sorted({t.database for t in config.targets if t.database is not None}):
        spec = config.databases[name]
        found.append((("databases", name), "url", spec.url, spec.url_env, spec.url_file))
    return found


def check_used(
    loaded: LoadedConfig,
    names: Sequence[str],
    *,
    environ: Mapping[str, str],
    require: bool = False,
) -> list[str]:
    """Check the credentials of profiles a command would use without logging in; return
    (and log) its warnings. A missing variable or secret file is one warning per profile,
    unless ``require`` makes it the error it is for ``apply``; anything else is an error."""
    if require:
        resolve_used(loaded, names, environ=environ)
        return []
    warnings = []
    for name in names:
        try:
            resolve_used(loaded, [name], environ=environ)
        except MissingCredentialError as exc:
            warnings.append(f"{exc.message} (apply needs it; --require-credentials: an error)")
            log.warning(warnings[-1])
    return warnings
