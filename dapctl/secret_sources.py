"""The one reading of a setting given as itself, as ``*_env`` or as ``*_file``.

A profile's ``client_secret``, a database's ``url`` and the ``state`` may each be written in
the config, named by an environment variable (``*_env``) or kept in a file (``*_file``,
relative to the config's folder). `resolve_source` reads whichever is given, the same way
for all of them, so they fail and warn alike: a variable not set or empty, or a file that is
missing or empty, is a `MissingCredentialError` (``validate`` and ``plan`` may report it as a
warning; ``apply`` cannot go on without it); a file others may read is a warning ("chmod 600
it"), returned beside the value for the caller to log or show. Messages name the key (placed
by the caller's ``where``) and the variable or file, never the value. This module imports
nothing of dapctl but its errors, so the credentials, the outputs and the state may all use
it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from dapctl.errors import ConfigError

#: a setting's value and the warnings about where it came from
Resolved = tuple[str, tuple[str, ...]]


class MissingCredentialError(ConfigError):
    """A credential's source is not there: a variable or a secret file not set, or empty."""


def resolve_source(
    key: str,
    *,
    value: str | None,
    env: str | None,
    file: str | None = None,
    where: Callable[[str], str],
    environ: Mapping[str, str],
    base_dir: Path,
) -> Resolved | None:
    """A setting given as ``key`` itself, the variable ``key_env`` names or the file
    ``key_file`` names (``client_secret``, a database's ``url``, the ``state``): its value
    and warnings, or None when none is given. ``where(name)`` places a key for messages;
    a variable not set or a file not there is a `MissingCredentialError`."""
    if value is not None:
        if not value.strip():
            raise ConfigError(f"{where(key)}: is empty")
        return value, ()
    if env is not None:
        return from_env(environ, env, where(f"{key}_env")), ()
    if file is not None:
        return _from_file(base_dir / Path(file).expanduser(), where(f"{key}_file"))
    return None


def from_env(environ: Mapping[str, str], var: str, where: str, *, fallback: bool = False) -> str:
    """The variable's value, stripped; ``fallback``: the official client's variable, read
    because the profile names no credentials."""
    value = environ.get(var, "").strip()
    if not value:
        state = "is empty" if var in environ else "is not set"
        how = " (the profile names no credentials, so the official client's variable)"
        if not _ENV_CONVENTION.fullmatch(var):
            # Variable names are conventionally upper case; this one may be a pasted secret.
            raise ConfigError(
                f"{where}: the environment variable it names {state}",
                hint="give the variable's NAME here, not the secret itself",
            )
        raise MissingCredentialError(
            f"{where}: environment variable {var} {state}{how if fallback else ''}"
        )
    return value


_ENV_CONVENTION = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _from_file(path: Path, where: str) -> Resolved:
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise MissingCredentialError(f"{where}: secret file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {path} is a folder, not a secret file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{where}: cannot read secret file {path}: {reason}") from None
    if not value:
        raise MissingCredentialError(f"{where}: secret file {path} is empty")
    warnings: tuple[str, ...] = ()
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings = (f"{where}: secret file {path} is readable by others; chmod 600 it",)
    return value, warnings
