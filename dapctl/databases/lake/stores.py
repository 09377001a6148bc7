"""A lake in a bucket: the object stores it may live in, and what each format's writer
needs there, read from the same variables as dapctl's other bucket work (`dapctl.objects`),
so one set of credentials serves state, outputs and lakes.

- ``<format>+s3://bucket/prefix``: delta-rs and s3fs read S3's standard variables
  themselves (credentials, region, endpoint); delta-rs must be told an endpoint over plain
  HTTP (MinIO, moto) is allowed.
- ``<format>+az://container/prefix``: ``AZURE_STORAGE_CONNECTION_STRING`` (which delta-rs
  does not read) is handed to delta-rs as its parts (account, key or SAS, endpoint) and to
  adlfs whole; without it both read ``AZURE_STORAGE_ACCOUNT_NAME`` / ``_KEY``, a service
  principal's ``AZURE_CLIENT_*`` or a managed identity themselves.

Iceberg reads and writes through pyiceberg's fsspec file IO, the s3fs and adlfs that
dapctl's object stores use; a table in Azure is located at ``abfs://container/...``, the
scheme that IO (and Spark's Hadoop Azure) reads. GCS is not offered: delta-rs writes to
GCS through its XML API, which no GCS emulator here serves, and dapctl ships no store it
cannot test.

`open_bucket` returns the lake's root, the `BucketSide` (pending records, locks) in the same
bucket through `dapctl.objects`, and the `Store`; `secrets` names what no message may show.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from dapctl.buckets import parse_url
from dapctl.databases.engine import DatabaseError
from dapctl.databases.lake.steps import BucketSide
from dapctl.errors import ConfigError
from dapctl.objects import open_objects
from dapctl.objects.registry import require
from dapctl.redaction import redact


def _s3_options() -> dict[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")
    options = {"AWS_ENDPOINT_URL": endpoint} if endpoint else {}
    if endpoint.startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    return options


# A connection string's parts, as delta-rs (object_store) names them.
_AZURE_PARTS = {
    "accountname": "azure_storage_account_name",
    "accountkey": "azure_storage_account_key",
    "sharedaccesssignature": "azure_storage_sas_key",
    "blobendpoint": "azure_storage_endpoint",
}
_SECRET_OPTIONS = ("azure_storage_account_key", "azure_storage_sas_key")
_CONNECTION = "AZURE_STORAGE_CONNECTION_STRING"
FSSPEC_IO = {"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"}


def _s3_properties() -> dict[str, str]:
    endpoint = _s3_options().get("AWS_ENDPOINT_URL")
    return {**FSSPEC_IO, **({"s3.endpoint": endpoint} if endpoint else {})}


def _azure_properties() -> dict[str, str]:
    text = os.environ.get(_CONNECTION)
    return {**FSSPEC_IO, **({"adls.connection-string": text} if text else {})}


def _azure_options() -> dict[str, str]:
    text = os.environ.get(_CONNECTION, "")
    options = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, value = part.partition("=")
        if (option := _AZURE_PARTS.get(name.strip().lower())) is not None:
            options[option] = value.strip()
    if options.get("azure_storage_endpoint", "").startswith("http://"):
        options["azure_allow_http"] = "true"  # Azurite, or a development account
    return options


@dataclass(frozen=True)
class Store:
    scheme: str  # dapctl.objects' scheme
    extra: str
    delta: Callable[[], dict[str, str]]  # delta-rs's storage options
    iceberg: Callable[[], dict[str, str]]  # pyiceberg's file IO properties
    files: str  # the scheme of a table's location as pyiceberg's fsspec IO reads it

    def located(self, root: str) -> str:
        """``root`` (``<scheme>://bucket/prefix``) as an Iceberg location."""
        return self.files + root.removeprefix(self.scheme)


STORES = {
    "s3": Store("s3", "s3", _s3_options, _s3_properties, "s3"),
    "az": Store("az", "azure", _azure_options, _azure_properties, "abfs"),
}


def store_of(url: str) -> Store | None:
    """The store a ``<format>+<store>://`` URL names, or None (a folder, or unknown)."""
    return STORES.get(url.partition(":")[0].partition("+")[2].lower())


def open_bucket(url: str) -> tuple[str, BucketSide, Store]:
    """The root, side and store of the lake a ``<format>+<store>://`` URL names."""
    prefix, _, rest = url.partition(":")
    store = STORES[prefix.partition("+")[2].lower()]
    try:
        where = parse_url(f"{store.scheme}:{rest}")
    except ValueError as exc:
        raise ConfigError(f"lake URL {redact(url)!r}: {exc}") from None
    try:
        require(store.scheme)
    except ImportError:
        raise ConfigError(
            f"lake tables in {store.scheme} need the {store.extra} extra, which is not installed",
            hint=f"pip install 'dapctl[{prefix.partition('+')[0].lower()},{store.extra}]'",
        ) from None
    side = BucketSide(open_objects(store.scheme, where.bucket, error=DatabaseError), where.key)
    return str(where).rstrip("/"), side, store


# Variables whose values are credentials, for `secrets`.
_SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    _CONNECTION,
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)


def secrets() -> tuple[str, ...]:
    """What no message may show: the credentials in this process's variables (S3's, Azure's)
    and an Azure connection string's key or SAS token."""
    options = _azure_options()
    found = [options[name] for name in _SECRET_OPTIONS if options.get(name)]
    found += [os.environ[name] for name in _SECRET_VARIABLES if os.environ.get(name)]
    return tuple(found)
