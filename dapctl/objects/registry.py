"""The object stores dapctl knows: URL scheme -> store module, the extra it needs, what it can do.

One ``ObjectStore`` line per store, as Terraform's backend map and dlt's destination
``capabilities()`` are kept: its schemes (``s3``; ``gs`` and ``gcs``; ``az`` and ``abfs``), the
module and class that implement ``Objects``, the package that module needs and the dapctl
extra that installs it, and its capabilities. ``open_objects`` is the factory (the module is
imported only when a bucket of its kind is used); ``require`` checks the package imports, for
``validate`` and ``plan`` to refuse early. State in a bucket is offered for every store here
(``state/backends``), so adding a store is its module, one line here, and one parameter in the
contract suites (``tests/object_stores.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dapctl.errors import DapctlError, OutputError

if TYPE_CHECKING:
    from dapctl.objects.base import Objects

Importer = Callable[[str], object]


@dataclass(frozen=True)
class ObjectStore:
    name: str
    schemes: tuple[str, ...]
    implementation: str  # "module:Class", a class implementing ``Objects``
    package: str  # the module it needs
    extra: str  # the dapctl extra that installs it
    aborts_uploads: bool  # keeps unfinished uploads a killed process left, to abort (S3)
    version: str  # what its version token is, for messages and the docs

    @property
    def example(self) -> str:
        return f"{self.schemes[0]}://bucket/prefix/"


STORES: tuple[ObjectStore, ...] = (
    ObjectStore("s3", ("s3",), "dapctl.objects.s3:S3Objects", "s3fs", "s3", True, "ETag"),
    ObjectStore(
        "gcs", ("gs", "gcs"), "dapctl.objects.gcs:GcsObjects", "gcsfs", "gcs", False, "generation"
    ),
    ObjectStore(
        "azure",
        ("az", "abfs"),
        "dapctl.objects.azure:AzureObjects",
        "adlfs",
        "azure",
        False,
        "ETag",
    ),
)
SCHEMES: Mapping[str, ObjectStore] = {s: store for store in STORES for s in store.schemes}


def store_for(scheme: str) -> ObjectStore | None:
    return SCHEMES.get(scheme.lower())


def install_hint(scheme: str) -> str:
    return f"pip install 'dapctl[{SCHEMES[scheme].extra}]'"


def require(scheme: str, importer: Importer = importlib.import_module) -> None:
    """Raise ``ImportError`` unless the package the store of ``scheme`` needs imports here."""
    importer(SCHEMES[scheme].package)
    importer("fsspec")


def open_objects(
    scheme: str, bucket: str, *, error: type[DapctlError] = OutputError, fs: Any = None
) -> Objects:
    """The bucket ``bucket`` of the store ``scheme`` names; failures are raised as ``error``."""
    module, _, name = SCHEMES[scheme].implementation.partition(":")
    implementation = getattr(importlib.import_module(module), name)
    objects: Objects = implementation(scheme, bucket, error=error, fs=fs)
    return objects
