"""Single S3 objects read and written conditionally: the primitives of the S3 state backend.

``S3Objects`` wraps one bucket (``buckets.Bucket``, so through s3fs, with credentials and
endpoint from the standard chain and variables). ``get`` returns an object's bytes with its
ETag; ``head`` its ETag, its age by the server's own clock (its ``Date`` header, so that no
two machines' clocks are compared) and nothing else; ``put`` writes only if the object is
still the one with the given ETag (``If-Match``) or absent (``If-None-Match: *``); ``delete``
removes it only if unchanged. A refused condition (412, or 409 when two conditional writes
race) raises ``Conflict``; every other failure a ``StateError`` naming the bucket. A missing
bucket is never taken for a missing object: ``get`` (the state's first read) says so, where
"no object" would read as a first run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from dapctl.buckets import Bucket, conflict, missing_bucket
from dapctl.errors import DapctlError, StateError


class Conflict(Exception):
    """A conditional request was refused: the object is not what the condition said."""


@dataclass(frozen=True)
class Head:
    etag: str
    age: float  # seconds since it was last written, by the server's clock


class S3Objects:
    def __init__(self, bucket: str, *, fs: Any = None) -> None:
        self.bucket = Bucket("s3", bucket, error=StateError, fs=fs)

    def _at(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket.name, "Key": key}

    @contextmanager
    def _calls(self, doing: str) -> Iterator[None]:
        """Refused conditions as ``Conflict``, every other failure as a ``StateError``."""
        try:
            yield
        except (Conflict, DapctlError):
            raise
        except Exception as exc:
            if conflict(exc):
                raise Conflict from None
            raise self.bucket.describe(exc, doing) from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or ``None`` if there is none."""
        fs = self.bucket.fs
        sync = importlib.import_module("fsspec.asyn").sync

        async def read() -> tuple[bytes, str]:
            response = await fs._call_s3("get_object", **self._at(key))
            try:
                return bytes(await response["Body"].read()), str(response["ETag"])
            finally:
                response["Body"].close()

        with self._calls(f"cannot read {key}"):
            try:
                result: tuple[bytes, str] = sync(fs.loop, read)
            except FileNotFoundError as exc:
                if missing_bucket(exc):
                    raise self.bucket.missing(f", so {key} cannot be read or kept") from None
                return None
        return result

    def head(self, key: str) -> Head | None:
        with self._calls(f"cannot look at {key}"):
            try:
                response = self.bucket.fs.call_s3("head_object", **self._at(key))
            except FileNotFoundError:
                return None
        return Head(str(response["ETag"]), _age(response))

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write ``data``, only if the object has ETag ``if_match`` or is absent
        (``if_absent``); return the new ETag."""
        condition = {"IfMatch": if_match} if if_match else {}
        if if_absent:
            condition["IfNoneMatch"] = "*"
        with self._calls(f"cannot write {key}"):
            try:
                response = self.bucket.fs.call_s3(
                    "put_object", Body=data, **self._at(key), **condition
                )
            except FileNotFoundError:
                if if_match:  # it was removed since: not the one the condition named
                    raise Conflict from None
                raise
        return str(response["ETag"])

    def delete(self, key: str, *, if_match: str) -> None:
        with self._calls(f"cannot remove {key}"):
            try:
                self.bucket.fs.call_s3("delete_object", IfMatch=if_match, **self._at(key))
            except FileNotFoundError:
                raise Conflict from None


def _age(response: dict[str, Any]) -> float:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    modified: datetime = response["LastModified"]
    try:
        now = parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return 0.0  # no clock to judge by: as fresh as can be, never taken over
    return max(0.0, (now - modified).total_seconds())
