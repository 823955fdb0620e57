"""Whether a destination enforces conditional copies and writes: probed, never assumed from the protocol.

A backend with :attr:`~csvpublish.storage.Capabilities.conditional_copy` can
send a precondition on a copy's or a write's destination (S3 ``If-Match``,
GCS ``ifGenerationMatch``); many services and emulators accept the request and
ignore the condition (moto and fake-gcs-server ignore it on copies). The probe
sends a copy and a write conditional on a tag no object has onto an object the
caller owns: a service that enforces conditions refuses both. The answer is
kept per (protocol, endpoint, bucket) for the life of the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .backend import WriteOptions
from .translate import ErrorCodes, is_precondition_failure

if TYPE_CHECKING:
    from .core import Storage

logger = logging.getLogger("csvpublish")

_ENFORCED: dict[tuple[str, str, str], bool] = {}
"""The probe's answers, per (protocol, endpoint, bucket)."""


async def enforced(storage: Storage, scratch: str, data: bytes) -> bool:
    """True when ``storage`` refuses a copy and a write conditional on a stale tag.

    ``scratch`` is an object of the caller's that holds ``data``: the probe
    copies it onto itself and rewrites ``data`` over it, so refused or not it is
    left as it was. Two requests at once, once per endpoint and bucket per
    process; a probe that fails for another reason answers False and is tried
    again the next time.
    """
    backend = storage.backend
    answer = known(storage)
    if answer is not None:
        return answer
    key = _key(storage)
    full, stale = storage.path(scratch), backend.stale_tag
    copy = WriteOptions(content_type="application/json", if_match=stale)
    try:
        refused = await asyncio.gather(
            _refused(backend.copy(full, full, copy, len(data)), backend.errors),
            _refused(backend.write_bytes(full, data, WriteOptions(if_match=stale)), backend.errors),
        )
    except Exception as exc:
        logger.debug("%s: probing conditional writes failed (%s)", storage.uri(), type(exc).__name__)
        return False
    _ENFORCED[key] = all(refused)
    logger.debug("%s: conditional copies and writes %s", storage.uri(), "enforced" if all(refused) else "ignored")
    return _ENFORCED[key]


async def _refused(op: Awaitable[Any], errors: ErrorCodes) -> bool:
    """True when ``op`` fails as a failed precondition; False when it succeeds; its other failures propagate."""
    try:
        await op
    except Exception as exc:
        if isinstance(exc, FileExistsError) or is_precondition_failure(exc, errors):
            return True
        raise
    return False


def known(storage: Storage) -> bool | None:
    """What the probe found for ``storage`` in this process: None when it has not run (or cannot)."""
    if not storage.capabilities.conditional_copy:
        return False
    return _ENFORCED.get(_key(storage))


def _key(storage: Storage) -> tuple[str, str, str]:
    return (storage.protocol, storage.backend.endpoint(), storage.backend.bucket(storage.root) or "")
