"""A store's exception as a message a user can act on: what went wrong, and what to do.

Exceptions are recognised by name and code, so that none of the three clouds' libraries need
be importable here. ``conflict`` tells a refused conditional request (412, or 409 when two
conditional writes race, S3 and Azure alike; gcsfs raises ``FileExistsError``) from every
other failure. No message carries a secret or the provider's raw text: an endpoint is shown
by its host and port only.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, urlsplit

# Exceptions by name, so that none of the three clouds' libraries need be importable here.
_CREDENTIALS = {
    "NoCredentialsError",
    "PartialCredentialsError",
    "DefaultCredentialsError",
    "RefreshError",
    "ClientAuthenticationError",
    "CredentialUnavailableError",
}
_BAD_KEYS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthenticationFailed",
}
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


def diagnose(exc: BaseException, scheme: str) -> tuple[str, str | None]:
    """What went wrong, and what to do (``None``: nothing to suggest)."""
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
    return _code(exc) in _CONFLICTS


_CONFLICTS = {
    "PreconditionFailed",
    "ConditionalRequestConflict",
    "ConditionNotMet",
    "BlobAlreadyExists",
    "412",
    "409",
}


def _code(exc: BaseException) -> str | None:
    """The provider's error code, from the exception or the one it was translated from."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):  # botocore's ClientError
            error = response.get("Error") or {}
            code = error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return None if code is None else str(code)
        azure = getattr(candidate, "error_code", None)  # azure-core's HttpResponseError
        if azure is not None:
            return str(getattr(azure, "value", azure))
        status = getattr(candidate, "status_code", None) or getattr(candidate, "code", None)
        if isinstance(status, int):  # azure-core without a code; gcsfs's HttpError
            return str(status)
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
