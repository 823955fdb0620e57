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
from enum import Enum
from typing import Any

from .backend import Capabilities, ObjectState, RunBlocking, Tagged, Upload, WriteOptions, Writer
from .objectstore import ObjectStoreBackend
from .parts import STAGED, PartedUpload, PartsWriter, Piece
from .translate import HTTP

logger = logging.getLogger("csvpublish")

COPY_POLL = 0.2
"""Seconds between looks at a copy Azure has not finished yet (in one account it is usually done at once)."""
SYNC_COPY_LIMIT = 256 * 2**20
"""Azure copies blobs up to this size synchronously when asked (``x-ms-requires-sync``); larger ones run on."""
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


def _matching(etag: str) -> dict[str, Any]:
    """azure-storage-blob's keywords for "only if the blob still has this ETag"."""
    from azure.core import MatchConditions

    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


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


def content_settings(
    content_type: str | None, md5: bytes | None = None, base: Any = None, cache_control: str | None = None
) -> Any:
    """azure-storage-blob's ``ContentSettings``: ``base``'s, with the content type, MD5 and Cache-Control given."""
    from azure.storage.blob import ContentSettings

    settings = base if base is not None else ContentSettings()
    if content_type:
        settings.content_type = content_type
    settings.cache_control = cache_control
    if md5 is not None:
        settings.content_md5 = bytearray(md5)
    return settings


class AzureBackend(ObjectStoreBackend):
    """``az://``, ``abfs://`` and ``abfss://``: the Blob service of an Azure storage account."""

    capabilities = Capabilities(
        object_store=True,
        server_side_copy=True,
        user_metadata=True,
        multipart_uploads=True,
        conditional_copy=True,
        cache_control=True,
        presigned_urls=True,  # a read-only SAS, signed with the account key
        parallel_parts=True,  # blocks staged by every worker, one Put Block List (storage/azure_blocks.py)
    )
    errors = ERRORS
    stale_tag = '"0x0000000000000000"'
    """No blob has this ETag (Azure's are ``"0x"`` and the time in hex)."""
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

    def endpoint(self) -> str:
        return str(getattr(self.service(), "url", "") or "azure")

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        settings = content_settings(options.content_type, md5, cache_control=options.cache_control)
        kwargs: dict[str, Any] = {"overwrite": not options.exclusive, "content_settings": settings}
        if options.if_match is not None:
            kwargs.update(overwrite=True, **_matching(options.if_match))
        await self.on_loop(self.blob(full).upload_blob(data, **kwargs))
        self.forget(full)

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        from .azure_blocks import AzureWriter

        assert run is not None, "the Azure writer sends its own requests: give it the storage's retries"
        return AzureWriter(self, full, options, part_size, run)

    async def begin_parts(self, full: str, options: WriteOptions) -> str:
        return STAGED  # blocks belong to the blob's name: nothing to start

    def parts_writer(self, upload: PartedUpload, index: int, run: RunBlocking) -> PartsWriter:
        from .azure_blocks import AzurePartsWriter

        return AzurePartsWriter(self, upload, index, run)

    async def assemble(self, upload: PartedUpload, pieces: builtins.list[tuple[Piece, ...]]) -> None:
        from .azure_blocks import commit_blocks

        await self.on_loop(commit_blocks(self.blob(upload.path), upload, pieces))
        self.forget(upload.path)

    async def abort_parts(self, upload: PartedUpload) -> None:
        await self.on_loop(self.drop_uncommitted(upload.path))

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        """Copy Blob (server-side), replacing the copy's metadata; its headers follow ``options``.

        ``options.if_match`` / ``exclusive`` become the destination's ``If-Match`` / ``If-None-Match: *``.
        Copy Blob keeps the source's headers, so the copy's are set after it, only while it is still ours.
        """
        source, target = self.blob(src), self.blob(dst)
        found = await self.on_loop(source.get_blob_properties())
        metadata = {azure_name(k): v for k, v in options.metadata.items()}
        condition = _matching(options.if_match) if options.if_match is not None else {}
        if options.exclusive and options.if_match is None:
            from azure.core import MatchConditions

            condition = {"match_condition": MatchConditions.IfMissing}
        if int(getattr(found, "size", 0) or 0) <= SYNC_COPY_LIMIT:
            condition["requires_sync"] = True  # done when Azure answers: nobody reads a copy in progress
        etag = await self.on_loop(self._copied(source.url, target, metadata, condition))
        kept = (found.content_settings.content_type, found.content_settings.cache_control)
        wanted = content_settings(
            options.content_type, base=found.content_settings, cache_control=options.cache_control
        )
        if (wanted.content_type, wanted.cache_control) != kept:
            try:
                await self.on_loop(target.set_http_headers(content_settings=wanted, **_matching(etag)))
            except Exception as exc:
                if _code(exc) not in {"ConditionNotMet", "412"}:
                    raise
                # another copy replaced ours meanwhile: its own headers follow it

    async def state(self, full: str) -> ObjectState | None:
        try:
            found = await self.on_loop(self.blob(full).get_blob_properties())
        except Exception as exc:
            if _code(exc) in ERRORS.not_found:
                return None
            raise
        meta = {our_name(k).lower(): str(v) for k, v in (found.metadata or {}).items() if k.lower() not in MARKERS}
        return ObjectState(str(found.etag), meta)

    async def read_tagged(self, full: str) -> Tagged:
        async def read() -> Tagged:
            stream = await self.blob(full).download_blob()
            return Tagged(bytes(await stream.readall()), str(stream.properties.etag))

        try:
            return await self.on_loop(read())
        except Exception as exc:
            if _code(exc) in ERRORS.not_found:
                raise FileNotFoundError(self.display_uri(full)) from None
            raise

    @staticmethod
    async def _copied(source_url: str, target: Any, metadata: dict[str, str], condition: dict[str, Any]) -> str:
        """Start a copy, wait until Azure says it is done, and return the copy's ETag."""
        out = await target.start_copy_from_url(source_url, metadata=metadata or None, **condition)
        status, description, etag = out.get("copy_status"), None, out.get("etag")
        while status == "pending":
            await asyncio.sleep(COPY_POLL)
            found = await target.get_blob_properties()
            status, description, etag = found.copy.status, found.copy.status_description, found.etag
        if status != "success":
            raise OSError(errno.EIO, f"the copy ended {status}: {description}")
        return str(etag)

    async def metadata(self, full: str) -> dict[str, Any]:
        found = await self.on_loop(self.blob(full).get_blob_properties())
        return {our_name(k): v for k, v in (found.metadata or {}).items() if k.lower() not in MARKERS}

    async def list_prefix(self, folder: str, prefix: str) -> builtins.list[dict[str, Any]]:
        container, start = self._split(f"{folder}/{prefix}")
        client = self.service().get_container_client(container)

        async def walk() -> builtins.list[dict[str, Any]]:
            found = []
            async for item in client.walk_blobs(name_starts_with=start, delimiter="/"):
                if getattr(item, "size", None) is None:  # a BlobPrefix: a folder below, not a file here
                    continue
                found.append(
                    {
                        "name": f"{container}/{item.name}",
                        "size": item.size,
                        "type": "file",
                        "last_modified": item.last_modified,
                    }
                )
            return found

        return await self.on_loop(walk())

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
