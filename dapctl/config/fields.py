"""The config's building blocks: name patterns, constrained field types and the base model.

Every model of the config language derives from ``FrozenModel`` (frozen, strict, no unknown
keys) and types its keys with the annotated types here, so a rule about what a name, a path or
a file mode may be is stated once. The patterns are public because the loader recognises
which rule a value broke by them, to say what to write instead. ``PathError`` is how a
cross-field validator names the key it is about.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

NAME_PATTERN = r"^[a-z0-9_-]+$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN, max_length=256)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


PathText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_no_nul)]


FILE_MODE_PATTERN = r"^0?[0-7]{3}$"


def _file_mode(value: str) -> str:
    bits = int(value, 8)
    if bits & 0o600 != 0o600:
        raise ValueError(f"{value}: the owner must keep read and write (0600 at least)")
    if bits & 0o111:
        raise ValueError(f"{value}: output files are data, never executable: no x bits")
    if bits & 0o002:
        raise ValueError(f"{value}: a file anyone may write could be changed under dapctl")
    return value


FileMode = Annotated[
    str,
    StringConstraints(pattern=FILE_MODE_PATTERN),
    AfterValidator(_file_mode),
]
StateNamespace = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)]
# Namespaces and tables become path segments of output files: no separators, no dots.
IDENTIFIER_MAX_LENGTH = 128  # well under a file name's 255 bytes, prefixes and all
Identifier = Annotated[
    str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=IDENTIFIER_MAX_LENGTH)
]


class PathError(ValueError):
    """A cross-field error that knows which key it is about (``loc``, for the loader)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class FrozenModel(BaseModel):
    # Strict: a quoted number or boolean (concurrency = "4") is a mistake to point out, not
    # to coerce silently. Times stay lax: TOML writes them bare, but a string is a time too.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
