"""Bucket URLs, and ``Bucket``: one bucket of whichever object store its scheme names.

``parse_url`` reads ``s3://bucket/key`` (``gs://``, ``gcs://``, ``az://``, ``abfs://`` too:
every scheme of ``objects.registry``) and refuses what a config must not hold: an unknown
scheme, no bucket, a placeholder in the bucket, credentials, a query. A ``Bucket`` is the
``Objects`` the registry opens for its scheme (``dapctl/objects/``: S3, GCS, Azure through
s3fs, gcsfs, adlfs, the extras ``s3``, ``gcs``, ``azure``), with the calls outputs make:
``check``, ``exists``, ``put_once`` (a local file as a new object, whole or not at all, never
over an existing one), ``metadata``, ``remove``, ``abort_uploads``. Credentials and endpoints
come from each cloud's own chain and variables, never from dapctl's config. Every failure is
the caller's ``DapctlError`` naming the bucket and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dapctl.errors import DapctlError, OutputError
from dapctl.objects.base import Objects
from dapctl.objects.registry import SCHEMES, open_objects

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


@dataclass(frozen=True)
class BucketURL:
    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.bucket}"


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://``) rather than a local path."""
    return _SCHEME.match(text) is not None


def parse_url(text: str) -> BucketURL:
    """``text`` as a bucket URL; ``ValueError`` saying what is wrong, never echoing it."""
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme not in SCHEMES:
        raise ValueError(
            f"dapctl writes to s3://, gs:// and az:// URLs (gcs:// and abfs:// too), not {scheme}://"
        )
    rest = text[len(scheme) + 3 :]
    bucket, _, key = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise ValueError(
            "the URL holds credentials, which must not sit in a config file; take them out: "
            "dapctl takes them from the cloud's own chain (variables, profiles, roles)"
        )
    if "?" in text or "#" in text:
        raise ValueError("a bucket URL takes no ?query or #fragment")
    if not bucket:
        raise ValueError(f"the URL names no bucket: write {scheme}://BUCKET/path")
    if "{" in bucket or "}" in bucket:
        raise ValueError("write the bucket out in full: placeholders belong in the path after it")
    if not key:
        raise ValueError(f"the URL names a bucket but no object path: {scheme}://{bucket}/path")
    return BucketURL(scheme, bucket, key)


class Bucket:
    """One bucket, whatever its store; every failure raised as ``error`` naming the bucket."""

    def __init__(
        self, scheme: str, bucket: str, *, error: type[DapctlError] = OutputError, fs: Any = None
    ) -> None:
        self.scheme, self.name = scheme, bucket
        self.root = f"{scheme}://{bucket}"
        self.objects: Objects = open_objects(scheme, bucket, error=error, fs=fs)

    @property
    def chunksize(self) -> int | None:
        """S3's multipart part size (tests make it small); other stores choose their own."""
        return getattr(self.objects, "chunksize", None)

    @chunksize.setter
    def chunksize(self, value: int | None) -> None:
        self.objects.chunksize = value  # type: ignore[attr-defined]

    def check(self) -> None:
        self.objects.check()

    def exists(self, key: str) -> bool:
        return self.objects.exists(key)

    def put_once(self, local: Path, key: str, *, metadata: Mapping[str, str]) -> bool:
        return self.objects.put_once(local, key, metadata=metadata)

    def metadata(self, key: str) -> dict[str, str]:
        return self.objects.metadata(key)

    def remove(self, key: str) -> None:
        self.objects.remove(key)

    def abort_uploads(self, key: str) -> int:
        return self.objects.abort_uploads(key)
