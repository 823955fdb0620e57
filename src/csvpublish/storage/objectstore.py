"""Any fsspec object store: uploads visible only once complete.

Writes go through the filesystem's own file object (resumable uploads, staged
blocks) and become visible when it closes; exclusive ones open with ``"xb"``.
GCS (``gcs``), S3 (``s3``) and Azure (``azure``; the last two with writers of
their own) build on this module. Share URLs are the filesystem's own ``sign()``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from csvpublish.errors import InputError

from .backend import Backend, Capabilities, RunBlocking, WriteOptions, Writer
from .translate import HTTP, is_precondition_failure

logger = logging.getLogger("csvpublish")


class ObjectStoreBackend(Backend):
    """An object store reached through its fsspec filesystem alone."""

    capabilities = Capabilities(object_store=True, server_side_copy=True, presigned_urls=True)
    errors = HTTP

    def bucket(self, root: str) -> str | None:
        return root.split("/", 1)[0]

    def headers(self, options: WriteOptions) -> dict[str, Any]:
        """The keyword arguments that set ``options`` on a write (none for a store fsspec gives no way to set them)."""
        return {}

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        mode = "create" if options.exclusive else "overwrite"
        await self.call("pipe_file", full, data, mode=mode, **self.headers(options))
        self.fs.invalidate_cache(full)

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        handle = self.fs.open(full, "xb" if options.exclusive else "wb", block_size=part_size, **self.headers(options))
        return FileWriter(self, full, handle)

    async def share_url(self, full: str, expires: int) -> str:
        """The filesystem's signed URL (fsspec's ``sign``): on Azure, adlfs's read-only SAS."""
        try:
            return str(await asyncio.to_thread(self.fs.sign, full, expires))
        except NotImplementedError:
            raise InputError(f"{self.display_uri(full)}: this store's filesystem cannot sign URLs") from None
        except ValueError as exc:
            hint = azure_sign_hint(exc)
            if hint is None:
                raise
            raise InputError(f"{self.display_uri(full)}: {hint}") from None


class FileWriter(Writer):
    """An fsspec file of an object store (a GCS resumable upload, ...)."""

    def __init__(self, backend: Backend, full: str, handle: Any) -> None:
        self.fs = backend.fs
        self.errors = backend.errors
        self.full = full
        self.handle = handle
        self.finished = False

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        try:
            self.handle.close()
            self.finished = True
        except Exception as exc:
            self.discard()
            if is_precondition_failure(exc, self.errors):
                raise FileExistsError(self.fs.unstrip_protocol(self.full)) from None
            raise
        finally:
            self.fs.invalidate_cache(self.full)

    def discard(self) -> None:
        # A failed close() marks the file closed with its upload still open: abort it all the same.
        if self.finished:
            return
        self.finished = True
        try:
            self.handle.discard()
        except Exception as exc:  # best effort: cleanup() removes what an abort leaves
            where = self.fs.unstrip_protocol(self.full)
            logger.warning("could not abort the upload of %s: %s", where, type(exc).__name__)
        self.handle.closed = True  # never let the file's finaliser commit a discarded upload


# --- Azure (adlfs) ---------------------------------------------------------------------------------
# Kept here until the Azure backend has a module of its own (storage/azure.py): move it there.


def azure_sign_hint(exc: BaseException) -> str | None:
    """What to give adlfs when it has no key to sign a SAS with (its ``sign()`` raises ValueError then).

    >>> azure_sign_hint(ValueError("Either user_delegation_key or account_key must be provided."))[:32]
    'an Azure share URL (a SAS) needs'
    """
    if "account_key" not in str(exc):
        return None
    return (
        "an Azure share URL (a SAS) needs the storage account key to sign it; "
        "give account_key= or a connection_string with AccountKey=..."
    )
