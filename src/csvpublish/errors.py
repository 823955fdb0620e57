"""The csvpublish exception tree.

::

    CsvPublishError
     ├── InputError (ValueError)              bad source, rows, name or options
     │    └── MissingInputError (FileNotFoundError)   the CSV to publish is not there
     ├── MissingBackendError (ImportError)    the fsspec backend package is not installed
     ├── StorageError (OSError)               the storage refused or failed an operation
     │    ├── StorageNotFoundError (FileNotFoundError)   bucket/container/object missing
     │    ├── AccessDeniedError (PermissionError)        credentials lack a permission
     │    └── TransientStorageError                      retryable error, retries exhausted
     ├── SnapshotRejectedError                a guard refused the snapshot (empty, min_records)
     ├── VersionNotFoundError (LookupError)   no archived version has that identifier
     ├── ConflictError                        another publisher holds the destination's lock
     └── IntegrityError                       stored bytes do not match their manifest

Each subclass also derives from the builtin a caller would already catch, so
``except FileNotFoundError`` keeps working. Errors raised by fsspec backends
(botocore, gcsfs, OSError) are translated in one place: :func:`translate`.
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

__all__ = [
    "AccessDeniedError",
    "ConflictError",
    "CsvPublishError",
    "InputError",
    "IntegrityError",
    "MissingBackendError",
    "MissingInputError",
    "SnapshotRejectedError",
    "StorageError",
    "StorageNotFoundError",
    "TransientStorageError",
    "VersionNotFoundError",
]


class CsvPublishError(Exception):
    """Root of every error csvpublish raises on purpose."""


class InputError(CsvPublishError, ValueError):
    """Raised when the source, a row, the name or an option is unusable."""


class MissingInputError(InputError, FileNotFoundError):
    """Raised when the CSV file to publish does not exist."""


class MissingBackendError(CsvPublishError, ImportError):
    """Raised when a URL's protocol needs a package that is not installed."""


class StorageError(CsvPublishError, OSError):
    """Raised when the storage backend fails an operation."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """Raised when the bucket, container or object does not exist."""


class AccessDeniedError(StorageError, PermissionError):
    """Raised when the credentials do not allow an operation."""


class TransientStorageError(StorageError):
    """Raised when a retryable error (throttling, 5xx, dropped connection) outlasts the retries."""


class SnapshotRejectedError(CsvPublishError):
    """Raised when a guard refuses a snapshot: an empty file or fewer than ``min_records`` rows."""


class VersionNotFoundError(CsvPublishError, LookupError):
    """Raised when no archived version has the identifier asked for."""


class ConflictError(CsvPublishError):
    """Raised when another publisher kept the destination's lock for too long."""


class IntegrityError(CsvPublishError):
    """Raised by a strict ``verify`` when stored bytes do not match their manifest."""


# --- translation of backend errors -------------------------------------------------

_NOT_FOUND_CODES = {"NoSuchBucket", "NoSuchKey", "NotFound", "404"}
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "401",
}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
    "429",
}
_TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN, errno.EBUSY}
_TRANSIENT_NAMES = {
    # aiohttp / botocore / urllib3 class names: matched by name so that none of
    # these packages has to be imported here.
    "ServerDisconnectedError",
    "ClientConnectionError",
    "ClientOSError",
    "ClientPayloadError",
    "ServerTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ProtocolError",
    "IncompleteReadError",
}


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first (at most 10)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def error_code(exc: BaseException) -> str | None:
    """The backend's error code of ``exc`` (``"NoSuchKey"``, ``"503"``...), if it carries one."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code is not None:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status is not None:
            return str(status)
    code = getattr(exc, "code", None)  # gcsfs HttpError
    if isinstance(code, int):
        return str(code)
    return None


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` is worth retrying: throttling, a 5xx, a dropped or timed-out connection.

    Connection *refused* and unknown hosts are not transient: they mean a wrong
    endpoint, and retrying only delays the error.
    """
    for item in error_chain(exc):
        if isinstance(item, TransientStorageError):
            return True
        if isinstance(item, CsvPublishError):
            return False
        if type(item).__name__ in _TRANSIENT_NAMES:
            return True
        if isinstance(item, (asyncio.TimeoutError, TimeoutError, ConnectionResetError)):
            return True
        code = error_code(item)
        if code in _TRANSIENT_CODES:
            return True
        if isinstance(item, OSError) and item.errno in _TRANSIENT_ERRNOS:
            return True
    return False


def translate(exc: BaseException, what: str) -> BaseException:
    """Map a backend exception to the csvpublish error a caller can act on.

    ``what`` names the object or operation (a display URI, never a credential).
    Exceptions that are already csvpublish errors, and programming errors, come
    back unchanged.
    """
    if isinstance(exc, CsvPublishError):
        return exc
    if isinstance(exc, (TypeError, AttributeError, NotImplementedError, AssertionError, FileExistsError)):
        # programming errors, and the answer of a conditional create, pass through
        return exc
    chain = error_chain(exc)
    for item in chain:
        code = error_code(item)
        if code == "NoSuchBucket" or "bucket does not exist" in str(item).lower():
            return StorageNotFoundError(
                f"{what}: the bucket does not exist; create it or fix the destination URL",
            )
    for item in chain:
        code = error_code(item)
        if isinstance(item, PermissionError) or code in _DENIED_CODES:
            return AccessDeniedError(
                f"{what}: access denied; check the credentials and that they allow "
                "listing, reading and writing under the destination prefix",
            )
    if is_transient(exc):
        return TransientStorageError(
            f"{what}: the storage kept failing with a temporary error ({_describe(exc)}); try again later",
        )
    for item in chain:
        code = error_code(item)
        if isinstance(item, FileNotFoundError) or code in _NOT_FOUND_CODES:
            return StorageNotFoundError(f"{what}: not found")
    for item in chain:
        if isinstance(item, ConnectionError) or type(item).__name__ in {
            "ClientConnectorError",
            "EndpointConnectionError",
        }:
            return StorageError(
                f"{what}: cannot reach the storage endpoint ({_describe(item)}); "
                "check the endpoint URL and the network",
            )
    if isinstance(exc, (OSError, Exception)):
        return StorageError(f"{what}: {_describe(exc)}")
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
