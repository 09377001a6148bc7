"""A Delta lake in a bucket: the object stores it may live in, and what delta-rs needs for
each, read from the same variables as dapctl's other bucket work (`dapctl.objects`), so one
set of credentials serves state, outputs and lakes.

- ``delta+s3://bucket/prefix``: delta-rs reads S3's standard variables itself (credentials,
  region, endpoint); an endpoint over plain HTTP (MinIO, moto) is allowed explicitly.
- ``delta+az://container/prefix``: ``AZURE_STORAGE_CONNECTION_STRING`` (which delta-rs does
  not read) is handed over as its parts (account, key or SAS, endpoint); without it
  delta-rs reads ``AZURE_STORAGE_ACCOUNT_NAME`` / ``_KEY``, a service principal's
  ``AZURE_CLIENT_*`` or a managed identity itself.

GCS is not offered: delta-rs writes to GCS through its XML API, which no GCS emulator here
serves, and dapctl ships no store it cannot test.

`open_bucket` returns the lake's root, the `BucketSide` (pending records, locks) in the same
bucket through `dapctl.objects`, and the options; `secrets` names what no message may show.
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


def _azure_options() -> dict[str, str]:
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
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
    options: Callable[[], dict[str, str]]


STORES = {
    "delta+s3": Store("s3", "s3", _s3_options),
    "delta+az": Store("az", "azure", _azure_options),
}


def open_bucket(url: str) -> tuple[str, BucketSide, dict[str, str]]:
    """The root, side and delta-rs options of the lake a ``delta+<store>://`` URL names."""
    prefix, _, rest = url.partition(":")
    store = STORES[prefix.lower()]
    try:
        where = parse_url(f"{store.scheme}:{rest}")
    except ValueError as exc:
        raise ConfigError(f"lake URL {redact(url)!r}: {exc}") from None
    try:
        require(store.scheme)
    except ImportError:
        raise ConfigError(
            f"Delta tables in {prefix.split('+')[1]} need the {store.extra} extra, "
            "which is not installed",
            hint=f"pip install 'dapctl[delta,{store.extra}]'",
        ) from None
    side = BucketSide(open_objects(store.scheme, where.bucket, error=DatabaseError), where.key)
    return str(where).rstrip("/"), side, store.options()


def secrets(options: dict[str, str]) -> tuple[str, ...]:
    """The option values no message may show (an account key, a SAS token)."""
    return tuple(options[name] for name in _SECRET_OPTIONS if options.get(name))
