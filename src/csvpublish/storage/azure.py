"""Azure Blob Storage through adlfs, and azure-storage-blob's clients where adlfs has no option.

Uploads stage blocks request by request (each block retried on its own) and
appear with one Put Block List, or with one Put Blob under a block; exclusive
ones are created with ``If-None-Match: *``, which Azure (and Azurite) enforce
on both. Every upload carries its content type and an MD5 of its bytes. The
latest is a Copy Blob that sets its metadata. Staged blocks that no upload
committed are the unfinished uploads ``cleanup()`` lists and removes.

Azure metadata names must be C# identifiers: ``record-count`` is stored as
``record_count`` and read back as ``record-count``.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import hashlib
import logging
import uuid
from enum import Enum
from typing import Any

from fsspec.asyn import sync

from .backend import Capabilities, RunBlocking, Upload, WriteOptions, Writer
from .objectstore import ObjectStoreBackend
from .translate import HTTP

logger = logging.getLogger("csvpublish")

COPY_POLL = 0.2
"""Seconds between looks at a copy Azure has not finished yet (in one account it is usually done at once)."""
MARKERS = frozenset({"is_directory", "hdi_isfolder"})
"""Metadata adlfs keeps for its own folder emulation, not the caller's."""
UNCOMMITTED = "uncommitted blocks"
"""The upload id of an Azure upload: staged blocks belong to a blob name, not to an upload."""


def _code(exc: BaseException) -> str | None:
    """Azure's error code (``BlobNotFound``, ``ServerBusy``), else the HTTP status of its response."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, Enum):  # azure-storage-blob hands back its StorageErrorCode members
        code = code.value
    if code:
        return str(code)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return str(status)
    if type(exc).__name__ == "ClientAuthenticationError":  # no response: the credential itself was refused
        return "401"
    return None


ERRORS = HTTP.extend(
    code_of=_code,
    missing_bucket={"ContainerNotFound", "ContainerBeingDeleted"},
    not_found={"BlobNotFound", "ResourceNotFound"},
    denied={
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationSourceIPMismatch",
        "InsufficientAccountPermissions",
        "InvalidAuthenticationInfo",
        "NoAuthenticationInformation",
        "AccountIsDisabled",
    },
    transient={"ServerBusy", "OperationTimedOut", "InternalError"},
    # azure-core's own wrappers of a response that broke off (the aiohttp error under them is read too)
    transient_names={"ServiceResponseError", "ServiceResponseTimeoutError", "ServiceRequestTimeoutError"},
    unreachable_names={"ServiceRequestError"},
    # an exclusive create that found the blob: 409 BlobAlreadyExists (Put Blob, Put Block List), 412 ConditionNotMet
    precondition={"BlobAlreadyExists", "ConditionNotMet"},
)


def azure_name(key: str) -> str:
    """A metadata name as Azure accepts it (a C# identifier).

    >>> azure_name("record-count")
    'record_count'
    """
    return key.replace("-", "_")


def our_name(key: str) -> str:
    """A metadata name as csvpublish writes it, from Azure's.

    >>> our_name("csv_sha256")
    'csv-sha256'
    """
    return key.replace("_", "-")


def content_settings(content_type: str | None, md5: bytes | None = None, base: Any = None) -> Any:
    """azure-storage-blob's ``ContentSettings``: ``base``'s, with the content type and MD5 given."""
    from azure.storage.blob import ContentSettings

    settings = base if base is not None else ContentSettings()
    if content_type:
        settings.content_type = content_type
    if md5 is not None:
        settings.content_md5 = bytearray(md5)
    return settings


class AzureBackend(ObjectStoreBackend):
    """``az://``, ``abfs://`` and ``abfss://``: the Blob service of an Azure storage account."""

    capabilities = Capabilities(object_store=True, server_side_copy=True, user_metadata=True, multipart_uploads=True)
    errors = ERRORS
    header_loggers = ("azure.core.pipeline.policies.http_logging_policy",)

    def blob(self, full: str) -> Any:
        """azure-storage-blob's async client of the blob at ``full``, sharing the filesystem's connection."""
        container, name = self._split(full)
        return self.service().get_blob_client(container, name)

    def forget(self, full: str) -> None:
        # adlfs forgets only the path itself, so a folder listed before a write would still be
        # listed without the new blob, and info() of that blob would say it is missing
        path = full.rstrip("/")
        while path:
            self.fs.invalidate_cache(path)
            path = path.rpartition("/")[0]

    def display_uri(self, full: str) -> str:
        # adlfs's first protocol is abfs; az:// is the notation of its documentation and ours
        return f"az://{full.lstrip('/')}"

    def service(self) -> Any:
        """The filesystem's ``BlobServiceClient`` (async, on the filesystem's loop)."""
        fs: Any = self.fs
        return fs.service_client

    def _split(self, full: str) -> tuple[str, str]:
        fs: Any = self.fs
        container, name, _ = fs.split_path(full)
        return str(container), str(name)

    async def probe_bucket(self, bucket: str) -> None:
        # Ask the service itself: adlfs's info() reads some refusals as a missing path.
        await self.on_loop(self.service().get_container_client(bucket).get_container_properties())

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        settings = content_settings(options.content_type, hashlib.md5(data, usedforsecurity=False).digest())
        upload = self.blob(full).upload_blob(data, overwrite=not options.exclusive, content_settings=settings)
        await self.on_loop(upload)
        self.forget(full)

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        assert run is not None, "the Azure writer sends its own requests: give it the storage's retries"
        return AzureWriter(self, full, options, part_size, run)

    async def copy(self, src: str, dst: str, options: WriteOptions) -> None:
        """Copy Blob (server-side), replacing the copy's metadata; its content type follows ``options``."""
        source, target = self.blob(src), self.blob(dst)
        found = await self.on_loop(source.get_blob_properties())
        metadata = {azure_name(k): v for k, v in options.metadata.items()}
        await self.on_loop(self._copied(source.url, target, metadata))
        wanted = options.content_type
        if wanted and found.content_settings.content_type != wanted:  # Copy Blob keeps the source's
            settings = content_settings(wanted, base=found.content_settings)
            await self.on_loop(target.set_http_headers(content_settings=settings))

    @staticmethod
    async def _copied(source_url: str, target: Any, metadata: dict[str, str]) -> None:
        """Start a copy and wait until Azure says it is done."""
        out = await target.start_copy_from_url(source_url, metadata=metadata or None)
        status, description = out.get("copy_status"), None
        while status == "pending":
            await asyncio.sleep(COPY_POLL)
            copy = (await target.get_blob_properties()).copy
            status, description = copy.status, copy.status_description
        if status != "success":
            raise OSError(errno.EIO, f"the copy ended {status}: {description}")

    async def metadata(self, full: str) -> dict[str, Any]:
        found = await self.on_loop(self.blob(full).get_blob_properties())
        return {our_name(k): v for k, v in (found.metadata or {}).items() if k.lower() not in MARKERS}

    async def incomplete_uploads(self, full_prefix: str) -> builtins.list[Upload]:
        container, prefix = self._split(full_prefix)
        client = self.service().get_container_client(container)

        async def names(include: list[str] | None) -> set[str]:
            return {str(item.name) async for item in client.list_blobs(name_starts_with=prefix, include=include)}

        # Everything first, then the committed: a blob committed in between shows in both and is not listed.
        everything = await self.on_loop(names(["uncommittedblobs"]))
        committed = await self.on_loop(names(None))
        return [Upload(f"{container}/{name}", UNCOMMITTED) for name in sorted(everything - committed)]

    async def abort_upload(self, upload: Upload) -> None:
        await self.on_loop(self.drop_uncommitted(upload.path))

    async def drop_uncommitted(self, full: str) -> None:
        """Delete the staged blocks of ``full`` when no committed blob holds them.

        A committed blob is never touched: blocks staged on it by an exclusive
        upload that lost are dropped by its next commit, or by Azure after a week.
        """
        from azure.core.exceptions import ResourceNotFoundError

        client = self.blob(full)
        try:
            await client.get_blob_properties()
            return
        except ResourceNotFoundError:
            pass
        try:
            await client.delete_blob()
        except ResourceNotFoundError:  # nothing staged any more
            pass


class AzureWriter(Writer):
    """Blocks staged one request each, so each is retried on its own, then one Put Block List.

    Data under ``part_size`` goes up in one Put Blob at commit. Either way the
    blob appears only on commit, created conditionally (``If-None-Match: *``)
    when exclusive; ``discard`` deletes the staged blocks.
    """

    errors = ERRORS

    def __init__(
        self, backend: AzureBackend, full: str, options: WriteOptions, part_size: int, run: RunBlocking
    ) -> None:
        self.backend = backend
        self.fs = backend.fs
        self.full = full
        self.run = run
        self.options = options
        self.part_size = part_size
        self.pending: builtins.list[bytes] = []
        self.pending_size = 0
        self.blocks: builtins.list[str] = []
        self.md5 = hashlib.md5(usedforsecurity=False)  # stored as the blob's Content-MD5, as Put Blob does
        self.finished = False

    def _call(self, method: str, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        client = self.backend.blob(self.full)
        return self.run(self.name, lambda: sync(self.fs.loop, getattr(client, method), *args, **kwargs), retry=retry)

    def write(self, data: bytes) -> None:
        """Buffer ``data``; stage a block once ``part_size`` bytes are waiting."""
        if not data:
            return
        self.pending.append(bytes(data))
        self.pending_size += len(data)
        self.md5.update(data)
        if self.pending_size >= self.part_size:
            self._stage(self._take())

    def _take(self) -> bytes:
        body = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        return body

    def _stage(self, body: bytes) -> None:
        block_id = uuid.uuid4().hex  # fixed length, as Azure wants for every block of a blob
        self._call("stage_block", block_id, body, length=len(body))
        self.blocks.append(block_id)

    def commit(self) -> None:
        try:
            if not self.blocks:
                self._put(self._take())
            else:
                if self.pending:
                    self._stage(self._take())
                self._commit_blocks()
            self.finished = True
        except Exception as exc:
            self.discard()
            if isinstance(exc, FileExistsError):  # the service's answer to a conditional create that lost
                raise FileExistsError(self.name) from None
            raise
        finally:
            self.backend.forget(self.full)

    def _settings(self) -> Any:
        return content_settings(self.options.content_type, self.md5.digest())

    def _put(self, body: bytes) -> None:
        try:
            self._call("upload_blob", body, overwrite=not self.options.exclusive, content_settings=self._settings())
        except FileExistsError:
            # a retried conditional Put Blob whose first attempt landed: the blob is ours
            if not self._holds(lambda found: bytes(found.content_settings.content_md5 or b"") == self.md5.digest()):
                raise

    def _commit_blocks(self) -> None:
        from azure.storage.blob import BlobBlock

        headers = {"If-None-Match": "*"} if self.options.exclusive else {}
        blocks = [BlobBlock(block_id=block) for block in self.blocks]
        try:
            self._call("commit_block_list", blocks, content_settings=self._settings(), headers=headers)
        except FileExistsError:
            # a retried conditional Put Block List whose first attempt landed: the blob is ours
            committed = self._call("get_block_list", "committed", retry=False)[0]
            if [block.id for block in committed] != self.blocks:
                raise

    def _holds(self, mine: Any) -> bool:
        try:
            return bool(mine(self._call("get_blob_properties", retry=False)))
        except Exception:
            return False

    def discard(self) -> None:
        self.pending, self.pending_size = [], 0
        if self.finished or not self.blocks:
            return
        self.blocks = []
        try:
            self.run(self.name, lambda: sync(self.fs.loop, self.backend.drop_uncommitted, self.full))
        except Exception as exc:  # best effort: cleanup() removes what is left
            logger.warning("could not drop the staged blocks of %s: %s", self.name, type(exc).__name__)
