"""Object storage through fsspec: bucket URLs, objects written once, errors naming the bucket.

``parse_url`` reads ``s3://bucket/key`` (``gs://``, ``gcs://``, ``az://``, ``abfs://`` too)
and refuses what a config must not hold: an unknown scheme, no bucket, a placeholder in the
bucket, credentials, a query. A ``Bucket`` is one bucket reached through the scheme's fsspec
implementation (s3fs, gcsfs, adlfs: the optional extras ``s3``, ``gcs``, ``azure``; a missing
one is an error naming it). Credentials and endpoints come from each cloud's own chain and
variables (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores), never
from dapctl's config. ``put_once`` uploads a local file as a new object, conditionally
(S3 ``If-None-Match: *``, GCS generation 0, Azure no-overwrite): one PUT when small, else a
multipart upload completed only at the end, so the object appears whole or not at all, and an
existing object is never replaced. Every failure becomes the caller's ``DapctlError`` naming
the bucket and what to do; no message carries a secret or the provider's raw text.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from dapctl.errors import DapctlError, OutputError

# scheme -> (the fsspec module it needs, the dapctl extra that installs it)
SCHEMES: Mapping[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
Importer = Callable[[str], object]


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


def install_hint(scheme: str) -> str:
    return f"pip install 'dapctl[{SCHEMES[scheme][1]}]'"


def require_module(scheme: str, importer: Importer = importlib.import_module) -> None:
    """Raise ``ImportError`` unless the fsspec implementation for ``scheme`` imports here."""
    importer(SCHEMES[scheme][0])
    importer("fsspec")


class Bucket:
    """One bucket, through fsspec; every failure raised as ``error`` naming the bucket."""

    def __init__(
        self, scheme: str, bucket: str, *, error: type[DapctlError] = OutputError, fs: Any = None
    ) -> None:
        self.scheme, self.name = scheme, bucket
        self.root = f"{scheme}://{bucket}"
        self._error = error
        self._fs = fs
        self.chunksize: int | None = None  # S3 multipart part size (tests make it small)

    @property
    def fs(self) -> Any:
        if self._fs is None:
            try:
                require_module(self.scheme)
                fsspec = importlib.import_module("fsspec")
            except ImportError:
                module = SCHEMES[self.scheme][0]
                raise self._error(
                    f"{self.root}: {self.scheme}:// needs {module}, which cannot be imported",
                    hint=install_hint(self.scheme),
                ) from None
            # A fresh instance: fsspec's cache would keep one made under other variables.
            self._fs = fsspec.filesystem(self.scheme, skip_instance_cache=True)
        return self._fs

    def path(self, key: str) -> str:
        return f"{self.name}/{key}"

    def check(self) -> None:
        """Fail now, naming the bucket, if it is missing or out of reach."""
        with self.failures("cannot use the bucket"):
            try:
                if self.scheme == "s3":
                    self.fs.call_s3("head_bucket", Bucket=self.name)
                elif not self.fs.exists(self.name):
                    raise FileNotFoundError(self.name)
            except FileNotFoundError:
                raise self.missing() from None

    def missing(self, holding: str = "") -> DapctlError:
        """The error for a bucket that does not exist (``holding``: what it was to hold)."""
        return self._error(
            f"{self.root}: no such bucket{holding}",
            hint="create it, or correct its name in the config",
        )

    def exists(self, key: str) -> bool:
        with self.failures(f"cannot look for {key}"):
            if self.scheme != "s3":
                return bool(self.fs.exists(self.path(key)))
            try:  # this object, not a "folder" of that name as fsspec's exists would allow
                self.fs.call_s3("head_object", **self._at(key))
            except FileNotFoundError:
                return False
            return True

    def put_once(self, local: Path, key: str, *, metadata: Mapping[str, str]) -> bool:
        """Upload ``local`` as a new object; ``False`` (nothing written) when one exists."""
        kwargs: dict[str, Any] = {"mode": "create"}
        if self.scheme == "s3":
            kwargs.update(Metadata=dict(metadata), chunksize=self.chunksize)
        elif self.scheme in ("gs", "gcs"):
            kwargs["metadata"] = dict(metadata)
        with self.failures(f"cannot upload {key}"):
            try:
                self.fs.put_file(str(local), self.path(key), **kwargs)
            except Exception as exc:
                if conflict(exc):
                    return False
                raise
        return True

    def metadata(self, key: str) -> dict[str, str]:
        """The user metadata an object carries (``{}`` where the store keeps none)."""
        with self.failures(f"cannot read {key}"):
            if self.scheme == "s3":
                return dict(self.fs.call_s3("head_object", **self._at(key))["Metadata"])
            return dict(self.fs.info(self.path(key)).get("metadata") or {})

    def remove(self, key: str) -> None:
        with self.failures(f"cannot remove {key}"):
            self.fs.rm_file(self.path(key))

    def abort_uploads(self, key: str) -> int:
        """Abort unfinished multipart uploads of exactly ``key`` (S3); how many there were."""
        if self.scheme != "s3":
            return 0  # GCS and Azure drop uncommitted uploads themselves
        with self.failures(f"cannot list unfinished uploads of {key}"):
            listed = self.fs.call_s3("list_multipart_uploads", Bucket=self.name, Prefix=key)
            uploads = [u for u in listed.get("Uploads", []) if u["Key"] == key]
            for upload in uploads:
                self.fs.call_s3(
                    "abort_multipart_upload", UploadId=upload["UploadId"], **self._at(key)
                )
        return len(uploads)

    def _at(self, key: str) -> dict[str, str]:
        return {"Bucket": self.name, "Key": key}

    @contextlib.contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """A context that turns what the store raised into ``error`` naming the bucket."""
        try:
            yield
        except DapctlError:
            raise
        except Exception as exc:
            raise self.describe(exc, doing) from None

    def describe(self, exc: BaseException, doing: str) -> DapctlError:
        message, hint = _diagnose(exc, self.scheme)
        return self._error(f"{self.root}: {doing}: {message}", hint=hint)


# Exceptions by name, so that none of the three clouds' libraries need be importable here.
_CREDENTIALS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "RefreshError",
    "ClientAuthenticationError",
    "CredentialUnavailableError",
}
_BAD_KEYS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ClientConnectorError",
    "ServerTimeoutError",
    "ServiceRequestError",
}
_CHAINS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS or gcloud's application default credentials",
    "az": "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME with a key or "
    "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or a managed identity",
}


def _diagnose(exc: BaseException, scheme: str) -> tuple[str, str | None]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    code = _code(exc)
    chain = _CHAINS[{"gcs": "gs", "abfs": "az"}.get(scheme, scheme)]
    if names & _CREDENTIALS:
        return "no usable credentials were found", f"give them the standard way: {chain}"
    if code in _BAD_KEYS:
        return f"the credentials were refused ({code})", f"check them: {chain}"
    if names & _UNREACHABLE or isinstance(exc, ConnectionError):
        return f"cannot reach the object store{_endpoint(scheme)}", (
            "check the network, and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for an "
            "S3-compatible store"
            if scheme == "s3"
            else "check the network"
        )
    if code == "NoSuchBucket":
        return "no such bucket", "create it, or correct its name in the config"
    if isinstance(exc, FileNotFoundError) or code in ("404", "ContainerNotFound"):
        return "not found (no such bucket, or no such object)", "check the bucket's name"
    if isinstance(exc, PermissionError) or code in ("AccessDenied", "403", "AllAccessDisabled"):
        return "access denied", (
            "the credentials in use were refused, or may not do this: check them and the "
            "bucket's policy"
        )
    return f"{type(exc).__name__}" + (f" ({code})" if code else ""), None


def missing_bucket(exc: BaseException) -> bool:
    """Whether a request failed because its bucket does not exist (S3's ``NoSuchBucket``:
    fsspec raises it as ``FileNotFoundError``, as it does a missing object)."""
    return _code(exc) == "NoSuchBucket"


def conflict(exc: BaseException) -> bool:
    """Whether a conditional request was refused (412), or lost a race with another (409)."""
    if isinstance(exc, FileExistsError):
        return True
    return _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def _code(exc: BaseException) -> str | None:
    """The provider's error code, from the exception or the one it was translated from."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return None if code is None else str(code)
    return None


def _endpoint(scheme: str) -> str:
    if scheme != "s3":
        return ""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return ""
    parts = urlsplit(url)  # the host and port only: a URL may carry a user and password
    return f" at {parts.scheme}://{parts.hostname}" + (f":{parts.port}" if _port(parts) else "")


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None
