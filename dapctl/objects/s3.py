"""S3 (and S3-compatible stores) through s3fs: the ``Objects`` of an ``s3://`` bucket.

Credentials and endpoint come from the standard chain and variables (``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` for MinIO, R2 and the like). The version token is the ETag: ``put``
sends ``If-Match`` or ``If-None-Match: *`` and ``delete`` ``If-Match``; a refused condition
(412, or 409 when two conditional writes race) is ``Conflict``. ``head`` reads the age by the
server's ``Date`` header. ``put_once`` is one PUT when small, else a multipart upload whose
completion is conditional, so the object appears whole or not at all; ``abort_uploads``
aborts the unfinished multipart uploads of a key, which only a killed dapctl leaves. A
missing bucket is never taken for a missing object: ``get`` (the state's first read) says so.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from dapctl.objects.base import Conflict, FsspecObjects, Head
from dapctl.objects.diagnose import conflict, missing_bucket


class S3Objects(FsspecObjects):
    protocol, package, extra = "s3", "s3fs", "s3"
    chunksize: int | None = None  # multipart part size (tests make it small)

    def _at(self, key: str) -> dict[str, str]:
        return {"Bucket": self.name, "Key": key}

    def get(self, key: str) -> tuple[bytes, str] | None:
        fs = self.fs

        async def read() -> tuple[bytes, str]:
            response = await fs._call_s3("get_object", **self._at(key))
            try:
                return bytes(await response["Body"].read()), str(response["ETag"])
            finally:
                response["Body"].close()

        with self.conditional(f"cannot read {key}"):
            try:
                return self.run(read)
            except FileNotFoundError as exc:
                if missing_bucket(exc):
                    raise self.missing(f", so {key} cannot be read or kept") from None
                return None

    def head(self, key: str) -> Head | None:
        with self.conditional(f"cannot look at {key}"):
            try:
                response = self.fs.call_s3("head_object", **self._at(key))
            except FileNotFoundError:
                return None
        return Head(str(response["ETag"]), _age(response))

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        condition = {"IfMatch": if_match} if if_match else {}
        if if_absent:
            condition["IfNoneMatch"] = "*"
        with self.conditional(f"cannot write {key}"):
            try:
                response = self.fs.call_s3("put_object", Body=data, **self._at(key), **condition)
            except FileNotFoundError:
                if if_match:  # it was removed since: not the one the condition named
                    raise Conflict from None
                raise
        return str(response["ETag"])

    def delete(self, key: str, *, if_match: str) -> None:
        with self.conditional(f"cannot remove {key}"):
            try:
                self.fs.call_s3("delete_object", IfMatch=if_match, **self._at(key))
            except FileNotFoundError:
                raise Conflict from None

    def check(self) -> None:
        with self.failures("cannot use the bucket"):
            try:
                self.fs.call_s3("head_bucket", Bucket=self.name)
            except FileNotFoundError:
                raise self.missing() from None

    def exists(self, key: str) -> bool:
        with self.failures(f"cannot look for {key}"):
            try:  # this object, not a "folder" of that name as fsspec's exists would allow
                self.fs.call_s3("head_object", **self._at(key))
            except FileNotFoundError:
                return False
            return True

    def put_once(self, local: Path, key: str, *, metadata: Any) -> bool:
        with self.failures(f"cannot upload {key}"):
            try:
                self.fs.put_file(
                    str(local),
                    self.path(key),
                    mode="create",
                    Metadata=dict(metadata),
                    chunksize=self.chunksize,
                )
            except Exception as exc:
                if conflict(exc):
                    return False
                raise
        return True

    def metadata(self, key: str) -> dict[str, str]:
        with self.failures(f"cannot read {key}"):
            return dict(self.fs.call_s3("head_object", **self._at(key))["Metadata"])

    def abort_uploads(self, key: str) -> int:
        with self.failures(f"cannot list unfinished uploads of {key}"):
            listed = self.fs.call_s3("list_multipart_uploads", Bucket=self.name, Prefix=key)
            uploads = [u for u in listed.get("Uploads", []) if u["Key"] == key]
            for upload in uploads:
                self.fs.call_s3(
                    "abort_multipart_upload", UploadId=upload["UploadId"], **self._at(key)
                )
        return len(uploads)


def _age(response: dict[str, Any]) -> float:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    modified: datetime = response["LastModified"]
    try:
        now = parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return 0.0  # no clock to judge by: as fresh as can be, never taken over
    return max(0.0, (now - modified).total_seconds())
