"""What a command may touch: its output streams, the environment, the live progress, and the
importer that looks for optional extras.

``Context`` is built once by ``main`` and handed to every command handler; tests build it
with their own streams and environment. ``emit_json`` writes a command's one JSON document;
``load`` reads the config a command names and logs its warnings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from collections.abc import Mapping
from typing import Any, TextIO

from dapctl.cli.progress import Progress
from dapctl.cli.style import Style
from dapctl.loading import Importer, LoadedConfig, load_config

log = logging.getLogger("dapctl")


class Context:
    """What a command may touch: its streams, the environment, and the live progress."""

    def __init__(
        self,
        *,
        stdout: TextIO,
        stderr: TextIO,
        environ: Mapping[str, str],
        importer: Importer = importlib.import_module,
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self.importer = importer  # how optional extras are looked for (tests make it fail)
        self.progress: Progress | None = None
        self.style = Style()

    def out(self, text: str) -> None:
        self.write(self.stdout, text + "\n")

    def err(self, text: str) -> None:
        self.write(self.stderr, text + "\n")

    def write(self, stream: TextIO, text: str) -> None:
        if self.progress is not None:
            self.progress.write_above(stream, text)
        else:
            stream.write(text)


class Console:
    """stderr for log records, through the context so progress is not torn."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def write(self, text: str) -> int:
        self.ctx.write(self.ctx.stderr, text)
        return len(text)

    def flush(self) -> None:
        self.ctx.stderr.flush()


def emit_json(ctx: Context, document: Mapping[str, Any]) -> None:
    ctx.out(json.dumps(document, indent=2, default=str))


def load(args: argparse.Namespace) -> LoadedConfig:
    loaded = load_config(args.config)
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded
