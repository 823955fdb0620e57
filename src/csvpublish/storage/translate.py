"""Backend errors into csvpublish errors: each backend's table of codes, and the one entry point.

A backend module declares an :class:`ErrorCodes` table (which codes its
client library raises and what they mean); :func:`translate` reads any
exception with one table. The rules for Python's own exceptions (errnos,
``PermissionError``, ``TimeoutError``...) hold on every backend.

>>> translate(PermissionError(13, "Permission denied"), "/out/books_latest.csv.gz")
AccessDeniedError('/out/books_latest.csv.gz: access denied; check the credentials and that they allow listing, \
reading and writing under the destination prefix')
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from csvpublish.errors import (
    AccessDeniedError,
    CsvPublishError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
)

_TRANSIENT_ERRNOS = frozenset({errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN, errno.EBUSY})
_PASS_THROUGH = (TypeError, AttributeError, NotImplementedError, AssertionError, FileExistsError)
"""Programming errors, and the answer of a conditional create, are not storage failures."""


def no_code(exc: BaseException) -> str | None:
    """The code reader of a backend whose errors carry none."""
    return None


@dataclass(frozen=True)
class ErrorCodes:
    """How one backend's errors read: the code an exception carries and what each code means.

    ``*_names`` are exception class names, matched by name so that no client
    library has to be imported to classify its errors; ``*_text`` are
    fragments of a message, used only where a library gives no code.
    """

    code_of: Callable[[BaseException], str | None] = no_code
    missing_bucket: frozenset[str] = frozenset()
    missing_bucket_text: tuple[str, ...] = ()
    not_found: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    transient: frozenset[str] = frozenset()
    transient_names: frozenset[str] = frozenset()
    unreachable_names: frozenset[str] = frozenset()
    precondition: frozenset[str] = frozenset()
    precondition_text: tuple[str, ...] = ()

    def extend(self, **more: Any) -> ErrorCodes:
        """This table with more codes or names of each kind (sets are joined, ``code_of`` replaced)."""
        joined: dict[str, Any] = {}
        for name, value in more.items():
            mine = getattr(self, name)
            if isinstance(mine, frozenset):
                joined[name] = mine | frozenset(value)
            elif isinstance(mine, tuple):
                joined[name] = (*mine, *value)
            else:
                joined[name] = value
        return replace(self, **joined)


GENERIC = ErrorCodes()
"""Python's own exceptions only: local folders, ``memory://`` and errors raised outside a backend."""

HTTP = ErrorCodes(
    missing_bucket_text=("bucket does not exist",),
    not_found=frozenset({"404"}),
    denied=frozenset({"401", "403"}),
    transient=frozenset({"408", "429", "500", "502", "503", "504"}),
    transient_names=frozenset(
        {
            # aiohttp, under s3fs (aiobotocore), gcsfs and adlfs alike
            "ServerDisconnectedError",
            "ClientConnectionError",
            "ClientOSError",
            "ClientPayloadError",
            "ServerTimeoutError",
            "ProtocolError",
            "IncompleteReadError",
        }
    ),
    unreachable_names=frozenset({"ClientConnectorError"}),
    precondition=frozenset({"412"}),
)
"""What every HTTP object store shares: status codes and the errors of the aiohttp client."""


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first (at most 10)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _coded(exc: BaseException, table: ErrorCodes) -> list[tuple[BaseException, str | None]]:
    """The chain of ``exc``, each exception with the code ``table`` reads from it."""
    return [(item, table.code_of(item)) for item in error_chain(exc)]


def is_transient(exc: BaseException, table: ErrorCodes = GENERIC) -> bool:
    """Tell whether ``exc`` is worth retrying: throttling, a 5xx, a dropped or timed-out connection.

    Connection *refused* and unknown hosts are not transient: they mean a wrong
    endpoint, and retrying only delays the error.
    """
    for item, code in _coded(exc, table):
        if isinstance(item, TransientStorageError):
            return True
        if isinstance(item, CsvPublishError):
            return False
        if type(item).__name__ in table.transient_names or code in table.transient:
            return True
        if isinstance(item, (asyncio.TimeoutError, TimeoutError, ConnectionResetError)):
            return True
        if isinstance(item, OSError) and item.errno in _TRANSIENT_ERRNOS:
            return True
    return False


def is_precondition_failure(exc: BaseException, table: ErrorCodes = GENERIC) -> bool:
    """True when ``exc`` is a conditional create that found the object there.

    Matched by error code, never by the digits of a message: a message holds
    paths whose digits could read as a status.
    """
    for item, code in _coded(exc, table):
        if isinstance(item, FileExistsError) or code in table.precondition:
            return True
        if any(text in str(item) for text in table.precondition_text):
            return True
    return False


def translate(exc: BaseException, what: str, table: ErrorCodes = GENERIC) -> BaseException:
    """Map a backend exception to the csvpublish error a caller can act on.

    ``what`` names the object or operation (a display URI, never a credential).
    Exceptions that are already csvpublish errors, and programming errors, come
    back unchanged; a conditional create that lost comes back as
    :class:`FileExistsError`.
    """
    if isinstance(exc, (CsvPublishError, *_PASS_THROUGH)) or not isinstance(exc, Exception):
        return exc
    if is_precondition_failure(exc, table):
        return FileExistsError(what)
    pairs = _coded(exc, table)
    if any(code in table.missing_bucket or _says(item, table.missing_bucket_text) for item, code in pairs):
        return StorageNotFoundError(f"{what}: the bucket does not exist; create it or fix the destination URL")
    if any(isinstance(item, PermissionError) or code in table.denied for item, code in pairs):
        return AccessDeniedError(
            f"{what}: access denied; check the credentials and that they allow "
            "listing, reading and writing under the destination prefix",
        )
    if is_transient(exc, table):
        return TransientStorageError(
            f"{what}: the storage kept failing with a temporary error ({_describe(exc)}); try again later",
        )
    if any(isinstance(item, FileNotFoundError) or code in table.not_found for item, code in pairs):
        return StorageNotFoundError(f"{what}: not found")
    for item, _ in pairs:
        if isinstance(item, ConnectionError) or type(item).__name__ in table.unreachable_names:
            return StorageError(
                f"{what}: cannot reach the storage endpoint ({_describe(item)}); "
                "check the endpoint URL and the network",
            )
    return StorageError(f"{what}: {_describe(exc)}")


def _says(item: BaseException, fragments: tuple[str, ...]) -> bool:
    text = str(item).lower()
    return any(fragment in text for fragment in fragments)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
