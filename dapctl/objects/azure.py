"""Azure Blob Storage through adlfs: the ``Objects`` of an ``az://`` (``abfs://``) container.

The version token is the blob's ETag. fsspec has no conditional write but "no overwrite", so
the state's requests go to the blob client of azure-storage-blob that adlfs itself holds
(``service_client``, run on adlfs's event loop), with Azure's match conditions: an upload
``if_match`` an ETag (``IfNotModified``) or without overwrite (``If-None-Match: *``), a delete
``if_match``; a refused one (412 ``ConditionNotMet``, 409 ``BlobAlreadyExists``) is
``Conflict``. ``head`` reads the age by the server's ``Date`` header. ``put_once`` uploads
without overwrite and with the metadata (adlfs's ``put_file`` cannot carry both; Azure
takes only identifiers as keys, so ``-`` is kept as ``_``): one Put
Blob when small, else staged blocks committed by one conditional Put Block List at the end,
so the blob appears whole or not at all; Azure drops uncommitted blocks itself. Credentials
come from adlfs's chain (``AZURE_STORAGE_CONNECTION_STRING``, an account name with a key, a
service principal or a managed identity). A missing container is named, never taken for a
missing blob.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from dapctl.objects.base import Conflict, FsspecObjects, Head


class AzureObjects(FsspecObjects):
    protocol, package, extra = "az", "adlfs", "azure"

    def _blob(self, key: str) -> Any:
        return self.fs.service_client.get_blob_client(self.name, key)

    def get(self, key: str) -> tuple[bytes, str] | None:
        async def read() -> tuple[bytes, str] | None:
            try:
                download = await self._blob(key).download_blob()
            except Exception as exc:
                if _code(exc) == "ContainerNotFound":
                    raise self.missing(f", so {key} cannot be read or kept") from None
                if _code(exc) == "BlobNotFound":
                    return None
                raise
            return bytes(await download.readall()), str(download.properties.etag)

        with self.conditional(f"cannot read {key}"):
            return self.run(read)

    def head(self, key: str) -> Head | None:
        headers: dict[str, str] = {}

        def keep(response: Any) -> None:
            headers.update(response.http_response.headers)

        async def look() -> Any:
            return await self._blob(key).get_blob_properties(raw_response_hook=keep)

        with self.conditional(f"cannot look at {key}"):
            properties = self._unless_missing(look)
        if properties is None:
            return None
        return Head(str(properties.etag), _age(properties.last_modified, headers.get("Date")))

    def _unless_missing(self, call: Any) -> Any:
        """``call()``'s result, or ``None`` if there is no such blob (or container)."""

        async def guarded() -> Any:
            try:
                return await call()
            except Exception as exc:
                if _code(exc) in ("BlobNotFound", "ContainerNotFound"):
                    return None
                raise

        return self.run(guarded)

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        condition: dict[str, Any] = {"overwrite": not if_absent}
        if if_match:
            match = _match_conditions().IfNotModified
            condition.update(etag=if_match, match_condition=match)

        async def write() -> dict[str, Any]:
            written: dict[str, Any] = await self._blob(key).upload_blob(data, **condition)
            return written

        with self.conditional(f"cannot write {key}"):
            try:
                return str(self.run(write)["etag"])
            except Exception as exc:
                if if_match and _code(exc) == "BlobNotFound":  # removed since
                    raise Conflict from None
                raise

    def delete(self, key: str, *, if_match: str) -> None:
        match = _match_conditions().IfNotModified

        async def remove() -> None:
            await self._blob(key).delete_blob(etag=if_match, match_condition=match)

        with self.conditional(f"cannot remove {key}"):
            try:
                self.run(remove)
            except Exception as exc:
                if _code(exc) == "BlobNotFound":
                    raise Conflict from None
                raise

    def check(self) -> None:
        async def look() -> Any:
            client = self.fs.service_client.get_container_client(self.name)
            return await client.get_container_properties()

        with self.failures("cannot use the bucket"):
            if self._unless_missing(look) is None:
                raise self.missing()

    def exists(self, key: str) -> bool:
        return self._properties(key, f"cannot look for {key}") is not None

    def _properties(self, key: str, doing: str) -> Any:
        async def look() -> Any:
            return await self._blob(key).get_blob_properties()

        with self.failures(doing):
            return self._unless_missing(look)

    def put_once(self, local: Path, key: str, *, metadata: Mapping[str, str]) -> bool:
        async def upload() -> None:
            with local.open("rb") as stream:
                await self._blob(key).upload_blob(
                    stream,
                    overwrite=False,
                    metadata={_name(k): v for k, v in metadata.items()},
                    length=local.stat().st_size,
                )

        try:
            with self.conditional(f"cannot upload {key}"):
                self.run(upload)
        except Conflict:
            return False
        return True

    def metadata(self, key: str) -> dict[str, str]:
        properties = self._properties(key, f"cannot read {key}")
        if properties is None:
            raise self.describe(FileNotFoundError(key), f"cannot read {key}")
        return {k.replace("_", "-"): v for k, v in (properties.metadata or {}).items()}

    def remove(self, key: str) -> None:
        async def remove() -> None:
            await self._blob(key).delete_blob()

        with self.failures(f"cannot remove {key}"):
            self.run(remove)


def _name(key: str) -> str:
    """A metadata key as Azure takes it: a C# identifier, so ``dapctl-sha256`` is
    ``dapctl_sha256`` there (``metadata`` reads it back as written)."""
    return key.replace("-", "_")


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return None if code is None else str(getattr(code, "value", code))


def _match_conditions() -> Any:
    return importlib.import_module("azure.core").MatchConditions


def _age(modified: Any, date: str | None) -> float:
    try:
        seconds = float((parsedate_to_datetime(str(date)) - modified).total_seconds())
    except (TypeError, ValueError):
        return 0.0  # no clock to judge by: as fresh as can be, never taken over
    return max(0.0, seconds)
