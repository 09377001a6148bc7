"""Reading a config file: TOML in, a validated ``Config`` or one clear ``ConfigError`` out.

This is the boundary where raw input becomes trusted models. Every problem is reported
together, each naming the file, the line when it can be found, and the key path
(``targets[1].format``), with a "did you mean" for unknown keys (``problems`` tells them,
``keypaths`` locates them). Nothing downstream sees a raw dict. Relative paths in a config
resolve against the config file's folder, never the working directory (cron starts in
``$HOME``).
"""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from dapctl.buckets import is_url, parse_url
from dapctl.config import Config
from dapctl.errors import ConfigError
from dapctl.keypaths import Loc, format_loc, key_lines, line_of
from dapctl.objects.registry import SCHEMES, install_hint, require
from dapctl.problems import describe
from dapctl.state.backends import backend_for
from dapctl.state.backends import require as require_backend
from dapctl.template import output_pattern

Importer = Callable[[str], object]

# Formats that need an optional extra: the module to import, and how to install it.
EXTRAS = {"parquet": ("pyarrow.parquet", "pip install 'dapctl[parquet]'")}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from."""

    path: Path
    config: Config
    warnings: tuple[str, ...] = field(default=())
    lines: Mapping[Loc, int] = field(default_factory=dict, repr=False)

    def locate(self, loc: Loc) -> str:
        """``file:line: key.path`` for a key of this config, for messages about it."""
        line = line_of(self.lines, loc)
        return (
            f"{self.path}:{line}: {format_loc(loc)}" if line else f"{self.path}: {format_loc(loc)}"
        )

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return (self.base_dir / Path(value).expanduser()).resolve()

    @property
    def state_path(self) -> Path:
        """The local state file (meaningful when ``state_is_local``)."""
        return self.resolve_path(self.config.settings.state)

    @property
    def state_is_local(self) -> bool:
        settings = self.config.settings
        return settings.state_env is None and len(urlsplit(settings.state).scheme) <= 1

    @property
    def state_location(self) -> str:
        """Where the state is, for people: the file, the URL (which holds no password), or
        the variable that holds the URL."""
        settings = self.config.settings
        if settings.state_env is not None:
            return f"${settings.state_env}"
        return str(self.state_path) if self.state_is_local else settings.state


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; raise ``ConfigError`` naming every problem."""
    path = Path(path).expanduser().absolute()
    text = _read_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except RecursionError:
        # tomllib parses arrays and inline tables recursively: a few hundred levels of
        # nesting exhaust Python's stack. No dapctl setting nests more than three deep.
        raise ConfigError(
            f"{path}: malformed TOML: arrays or inline tables nested too deeply"
        ) from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc, path=path, text=text, raw=raw)) from None
    loaded = LoadedConfig(
        path=path, config=config, warnings=tuple(_warnings(config, path)), lines=key_lines(text)
    )
    _outputs_spare_own_files(loaded)
    return loaded


def _outputs_spare_own_files(loaded: LoadedConfig) -> None:
    """Refuse an output template that could name the config, the state or its companions.

    Data written there would replace the config, be overwritten by the next state write, or
    vanish with the lock.
    """
    own = [loaded.path]
    if loaded.state_is_local:
        state = loaded.state_path
        own += [state, state.with_name(state.name + ".backup")]
        own.append(state.with_name(state.name + ".lock"))
    for index, target in enumerate(loaded.config.targets):
        if not target.writes_files:
            continue
        for profile in loaded.config.target_profiles(target):
            pattern = output_pattern(target, profile)
            for file in own:
                relative = os.path.relpath(file, loaded.base_dir)
                if pattern.fullmatch(os.path.normpath(relative)) or pattern.fullmatch(str(file)):
                    raise ConfigError(
                        f"{loaded.locate(('targets', index, 'output'))}: the output path "
                        f"could be {file}, one of dapctl's own files; choose another path"
                    )


def require_extras(loaded: LoadedConfig, *, importer: Importer = importlib.import_module) -> None:
    """Refuse a format, or a bucket URL output, whose optional dependency cannot be imported.

    Checked by ``validate``, ``plan`` and ``apply`` before any job runs: otherwise the
    missing module is found only when the first output is merged, after every job ran.
    """
    state, located = loaded.config.settings.state, loaded.locate(("settings", "state"))
    require_backend(backend_for(state, where=located), where=located, importer=importer)
    for index, target in enumerate(loaded.config.targets):
        if target.writes_files and is_url(target.output):
            where = ("targets", index, "output")
            _require_bucket_module(loaded, where, parse_url(target.output).scheme, importer)
        if target.format not in EXTRAS:
            continue
        module, install = EXTRAS[target.format]
        try:
            importer(module)
        except ImportError:
            raise ConfigError(
                f"{loaded.locate(('targets', index, 'format'))}: format = "
                f'"{target.format}" needs {module.split(".")[0]}, which cannot be imported',
                hint=install,
            ) from None


def _require_bucket_module(loaded: LoadedConfig, loc: Loc, scheme: str, importer: Importer) -> None:
    try:
        require(scheme, importer)
    except ImportError:
        module = SCHEMES[scheme].package
        raise ConfigError(
            f"{loaded.locate(loc)}: {scheme}:// needs {module}, which cannot be imported",
            hint=install_hint(scheme),
        ) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM, as some Windows editors write
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None


def _warnings(config: Config, path: Path) -> list[str]:
    warnings = [
        f"{path}: profiles.{name}.client_secret holds the secret in the config file; "
        "prefer client_secret_env or client_secret_file"
        for name, profile in config.profiles.items()
        if profile.client_secret is not None
    ]
    warnings += [
        f"{path}: profiles.{name}.rate_limits.status_per_minute is deprecated: it is "
        "job_status_per_minute now (table schema calls have schema_per_minute)"
        for name, profile in config.profiles.items()
        if profile.rate_limits.status_per_minute is not None
    ]
    return warnings
