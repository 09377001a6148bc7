"""Google Cloud Storage through gcsfs: the ``Objects`` of a ``gs://`` (``gcs://``) bucket.

The version token is the object's generation. fsspec has no conditional write but "create",
so the state's requests go to GCS's JSON API through gcsfs's own authenticated client
(``GCSFileSystem._call``), with the generation preconditions GCS defines: a multipart upload
with ``ifGenerationMatch`` (the generation last read, or ``0``: only if absent) and a delete
with ``ifGenerationMatch``; a refused one is a 412, which gcsfs raises as ``FileExistsError``
and this module as ``Conflict``. A media download answers with its generation
(``x-goog-generation``), so the bytes and their version come from one request. ``head`` reads
the age by the server's ``Date`` header. ``put_once`` is gcsfs's upload with
``ifGenerationMatch=0`` (a resumable upload when large, whole only when its last chunk lands).
Credentials come from Google's standard chain; ``STORAGE_EMULATOR_HOST`` points gcsfs at an
emulator. GCS answers 404 alike for a missing object and a missing bucket, so ``get`` asks
which before it takes "not found" for "no state yet".
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from dapctl.objects.base import Conflict, FsspecObjects, Head
from dapctl.objects.diagnose import conflict

_OBJECT = "b/{}/o/{}"


class GcsObjects(FsspecObjects):
    protocol, package, extra = "gs", "gcsfs", "gcs"

    def make_fs(self) -> Any:
        # The plain JSON-API client: gcsfs's experimental default subclass probes every bucket
        # over gRPC for zonal buckets, which dapctl's whole objects do not need (and an
        # emulator does not answer: each first use would wait out its timeout).
        core = importlib.import_module("gcsfs.core")
        return core.GCSFileSystem(skip_instance_cache=True)

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self.conditional(f"cannot read {key}"):
            try:
                headers, data = self.fs.call("GET", _OBJECT, self.name, key, alt="media")
            except FileNotFoundError:
                if not self._bucket_exists():
                    raise self.missing(f", so {key} cannot be read or kept") from None
                return None
        return bytes(data), str(headers["X-Goog-Generation"])

    def head(self, key: str) -> Head | None:
        found = self._resource(key, f"cannot look at {key}")
        if found is None:
            return None
        resource, date = found
        return Head(str(resource["generation"]), _age(resource, date))

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        condition = {"ifGenerationMatch": "0" if if_absent else if_match}
        with self.conditional(f"cannot write {key}"):
            try:
                written = self._upload(key, data, {k: v for k, v in condition.items() if v})
            except FileNotFoundError:
                if if_match:  # removed since: not the one the condition named
                    raise Conflict from None
                raise
        return str(written["generation"])

    def _upload(self, key: str, data: bytes, condition: dict[str, str]) -> dict[str, Any]:
        """A multipart upload (metadata and bytes in one request): the kind whose preconditions
        fake-gcs-server honours as GCS does (it ignores them on a media upload)."""
        meta = json.dumps({"name": key}).encode()
        body = b"".join(
            (
                b"--==0==\nContent-Type: application/json; charset=UTF-8\n\n",
                meta,
                b"\n--==0==\nContent-Type: application/octet-stream\n\n",
                data,
                b"\n--==0==--",
            )
        )
        result: dict[str, Any] = self.fs.call(
            "POST",
            f"{self.fs._location}/upload/storage/v1/b/{{}}/o",
            self.name,
            uploadType="multipart",
            headers={"Content-Type": 'multipart/related; boundary="==0=="'},
            data=body,
            json_out=True,
            **condition,
        )
        return result

    def delete(self, key: str, *, if_match: str) -> None:
        with self.conditional(f"cannot remove {key}"):
            try:
                self.fs.call("DELETE", _OBJECT, self.name, key, ifGenerationMatch=if_match)
            except FileNotFoundError:
                raise Conflict from None

    def check(self) -> None:
        with self.failures("cannot use the bucket"):
            if not self._bucket_exists():
                raise self.missing()

    def _bucket_exists(self) -> bool:
        try:
            self.fs.call("GET", "b/{}", self.name)
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        return self._resource(key, f"cannot look for {key}") is not None

    def _resource(self, key: str, doing: str) -> tuple[dict[str, Any], str | None] | None:
        """The object's JSON resource and the server's ``Date``; ``None`` when absent."""
        with self.failures(doing):
            try:
                headers, data = self.fs.call("GET", _OBJECT, self.name, key)
            except FileNotFoundError:
                return None
        return json.loads(data), headers.get("Date")

    def put_once(self, local: Path, key: str, *, metadata: Mapping[str, str]) -> bool:
        with self.failures(f"cannot upload {key}"):
            try:
                self.fs.put_file(str(local), self.path(key), mode="create", metadata=dict(metadata))
            except Exception as exc:
                if conflict(exc):
                    return False
                raise
        return True

    def metadata(self, key: str) -> dict[str, str]:
        found = self._resource(key, f"cannot read {key}")
        if found is None:
            raise self.describe(FileNotFoundError(key), f"cannot read {key}")
        return dict(found[0].get("metadata") or {})


def _age(resource: dict[str, Any], date: str | None) -> float:
    try:
        now = parsedate_to_datetime(str(date))
        modified = datetime.fromisoformat(str(resource["updated"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return 0.0  # no clock to judge by: as fresh as can be, never taken over
    return max(0.0, (now - modified).total_seconds())
