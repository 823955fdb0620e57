"""``Storage``: a folder on any fsspec filesystem, with async, retried, translated operations.

Storage owns paths (relative to its root, never leaving it), display URIs,
the retry policy and error translation; its backend (found by protocol in
``registry``) does everything that differs between services.

>>> import asyncio
>>> storage = Storage("memory://csvpublish-doc")
>>> asyncio.run(storage.write_bytes("a.txt", b"hi"))
>>> asyncio.run(storage.read_bytes("a.txt"))
b'hi'
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import IO, Any, TypeVar

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from csvpublish import retry as retries
from csvpublish.credentials import redactor
from csvpublish.errors import InputError, StorageNotFoundError
from csvpublish.retry import RetryPolicy

from . import conditions
from .backend import PART_SIZE, Backend, Capabilities, ObjectState, Tagged, Upload, WriteOptions, Writer, committing
from .entry import Entry
from .registry import backend_class, open_url
from .translate import is_transient, translate

T = TypeVar("T")


# Over 350 lines on purpose: the one facade of every storage operation (path, retry, delegate), read whole.
class Storage:
    """A folder on any fsspec filesystem: local path, ``s3://``, ``gs://``, ``memory://``, ...

    Paths given to its methods are relative to the root and may not leave it.
    Async methods run on the filesystem's own async API where it has one (s3fs,
    gcsfs) and in a worker thread otherwise, so the event loop is never blocked.
    Transient errors are retried with backoff (:class:`RetryPolicy`); backend
    errors come out as :class:`~csvpublish.CsvPublishError` subclasses.

    Args:
        location: a URL or path, or an fsspec filesystem (then ``root`` is its folder).
        root: the folder inside ``location`` when it is a filesystem.
        retry: the retry policy for transient errors.
        **storage_options: passed to the fsspec filesystem (credentials, endpoint...).
            They are never logged or shown in ``repr``; credentials among them are
            masked as ``***`` in the DEBUG logs of botocore, which print request headers.

    Example:
        >>> Storage("/tmp/out").uri("books_latest.csv.gz")
        '/tmp/out/books_latest.csv.gz'
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | AbstractFileSystem,
        root: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        **storage_options: Any,
    ) -> None:
        self.retry = retry or RetryPolicy()
        if isinstance(location, AbstractFileSystem):
            if storage_options:
                raise InputError("storage options go to the filesystem you built, not to Storage(fs, root)")
            self.fs: AbstractFileSystem = location
            self.root = location._strip_protocol(root or "").rstrip("/")
        else:
            self.fs, self.root = open_url(os.fspath(location), storage_options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.protocol: str = protocols[0]
        self.backend: Backend = backend_class(protocols)(self.fs)
        redactor.register(dict(getattr(self.fs, "storage_options", None) or {}), self.backend.header_loggers)

    # --- naming ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Storage({self.uri()!r})"

    @property
    def capabilities(self) -> Capabilities:
        """What this destination's backend can do."""
        return self.backend.capabilities

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine's filesystem."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def is_object_store(self) -> bool:
        """True where an upload becomes visible only once complete (S3, GCS, Azure)."""
        return self.capabilities.object_store

    def path(self, rel: str = "") -> str:
        """The filesystem path of ``rel``; refuses paths that would leave the root."""
        rel = rel.strip("/")
        parts = rel.split("/") if rel else []
        if any(part in {"", ".", ".."} for part in parts) or "\\" in rel:
            raise InputError(f"path {rel!r} would leave the destination folder")
        if not self.root:
            return rel
        return f"{self.root}/{rel}" if rel else self.root

    def uri(self, rel: str = "") -> str:
        """A URI to show a person: ``s3://bucket/prefix/rel``, or an absolute local path."""
        return self.backend.display_uri(self.path(rel))

    def relative(self, full: str) -> str:
        """The path relative to the root of a filesystem path under it."""
        full = self.fs._strip_protocol(full).rstrip("/")
        return full[len(self.root) + 1 :] if self.root else full

    # --- the engine ------------------------------------------------------------------

    def translate(self, exc: BaseException, what: str) -> BaseException:
        """``exc`` as the csvpublish error it means, read with this backend's error codes."""
        return translate(exc, what, self.backend.errors)

    def _transient(self, exc: BaseException) -> bool:
        return is_transient(exc, self.backend.errors)

    async def retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` with the retry policy; raise its failure translated.

        ``what`` names the target in messages (a display URI, never a secret).
        """
        return await retries.acall(self.retry, what, op, transient=self._transient, translate=self.translate)

    def blocking(self, what: str, op: Callable[[], T], *, retry: bool = True) -> T:
        """Run a blocking ``op`` with the retry policy (for worker threads).

        ``retry=False`` runs it once, translating its failure: for steps that
        are not safe to repeat, such as committing a writer.
        """
        policy = self.retry if retry else None
        return retries.call(policy, what, op, transient=self._transient, translate=self.translate)

    # --- async operations --------------------------------------------------------------

    async def check(self, *, create: bool = True) -> None:
        """Make sure the destination exists: the bucket is there, the local folder is made.

        With ``create=False`` (for reading) a missing local folder is an error too.

        Raises:
            StorageNotFoundError: the bucket, container or folder does not exist.
            AccessDeniedError: the credentials cannot see it.
        """
        bucket = self.backend.bucket(self.root)
        if bucket is None:
            if not await self.backend.ensure_folder(self.root, create=create):
                raise StorageNotFoundError(f"{self.uri()}: no such folder; check the destination")
            return
        if not bucket:
            raise InputError(f"{self.uri()}: the destination needs a bucket, like {self.protocol}://bucket/prefix")
        self.backend.forget(bucket)
        what = self.backend.display_uri(bucket)
        try:
            await self.retrying(what, lambda: self.backend.probe_bucket(bucket))
        except StorageNotFoundError:
            raise StorageNotFoundError(
                f"{what}: the bucket does not exist (or these credentials cannot see it); "
                "create it or fix the destination URL"
            ) from None

    async def exists(self, rel: str) -> bool:
        """True when ``rel`` exists (never answered from a cache)."""
        full = self.path(rel)
        self.backend.forget(full)
        return bool(await self.retrying(self.uri(rel), lambda: self.backend.call("exists", full)))

    async def info(self, rel: str) -> dict[str, Any]:
        """The backend's metadata of ``rel`` (size, type, content type, ...)."""
        full = self.path(rel)
        self.backend.forget(full)
        return dict(await self.retrying(self.uri(rel), lambda: self.backend.call("info", full)))

    async def read_bytes(self, rel: str) -> bytes:
        """The whole content of ``rel``; meant for small objects like manifests."""
        full = self.path(rel)

        async def op() -> bytes:
            # s3fs sizes the read from its listing cache, which would miss an object made since
            self.backend.forget(full)
            return bytes(await self.backend.call("cat_file", full))

        return await self.retrying(self.uri(rel), op)

    async def list_prefix(self, rel: str, prefix: str) -> builtins.list[Entry]:
        """Files in folder ``rel`` named ``prefix...``: on object stores, a listing of those keys alone."""
        full = self.path(rel)

        async def op() -> list[Entry]:
            self.fs.invalidate_cache(full)
            return [
                Entry.of(item, self.relative(item["name"])) for item in await self.backend.list_prefix(full, prefix)
            ]

        return await self.retrying(self.uri(rel), op)

    async def list(self, rel: str = "") -> builtins.list[Entry]:
        """Files directly inside folder ``rel``; an absent folder lists as empty."""
        full = self.path(rel)

        async def op() -> list[Entry]:
            self.backend.forget(full)
            try:
                items = await self.backend.call("ls", full, detail=True)
            except FileNotFoundError:
                return []
            return [Entry.of(item, self.relative(item["name"])) for item in items if item.get("type") != "directory"]

        return await self.retrying(self.uri(rel), op)

    async def delete(self, rel: str) -> None:
        """Delete ``rel``; a missing object is not an error."""
        full = self.path(rel)

        async def op() -> None:
            try:
                await self.backend.call("rm_file", full)
            except FileNotFoundError:
                pass
            self.backend.forget(full)

        await self.retrying(self.uri(rel), op)

    async def write_bytes(
        self,
        rel: str,
        data: bytes,
        *,
        content_type: str | None = None,
        exclusive: bool = False,
        if_match: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        """Write a small object atomically.

        ``exclusive=True``: :class:`FileExistsError` when ``rel`` exists (S3 and Azure ``If-None-Match: *``,
        GCS ``ifGenerationMatch=0``, a hard link locally). ``if_match`` (a tag from :meth:`state`):
        :class:`FileExistsError` unless ``rel`` still has it, where that is enforced (:meth:`enforces_conditions`).
        ``cache_control``: its ``Cache-Control`` header, where the backend stores one.
        """
        options = WriteOptions(
            content_type=content_type, exclusive=exclusive, if_match=if_match, cache_control=cache_control
        )
        full = self.path(rel)
        await self.retrying(self.uri(rel), lambda: self.backend.write_bytes(full, data, options))

    async def upload_file(
        self,
        local_path: str | os.PathLike[str],
        rel: str,
        *,
        content_type: str | None = None,
        exclusive: bool = False,
        cache_control: str | None = None,
    ) -> None:
        """Upload a local file to ``rel``; it becomes visible only once complete."""

        def upload() -> None:
            writer = self.open_writer(rel, content_type=content_type, exclusive=exclusive, cache_control=cache_control)
            with committing(writer), open(local_path, "rb") as f:
                while chunk := f.read(PART_SIZE):
                    writer.write(chunk)

        await asyncio.to_thread(self.blocking, self.uri(rel), upload)

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        size: int | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
        cache_control: str | None = None,
    ) -> None:
        """Server-side copy ``src`` over ``dst`` atomically, with these headers and metadata (never the source's).

        S3 CopyObject, a GCS rewrite, an Azure Copy Blob, a local copy then rename: on object stores the bytes
        never pass through this machine. ``size`` (the source's, if known) saves a request. ``if_match`` /
        ``if_absent``: a compare-and-swap (:attr:`Capabilities.conditional_copy`; FileExistsError when it lost).
        """
        full_src, full_dst = self.path(src), self.path(dst)
        options = WriteOptions(
            content_type=content_type,
            metadata=dict(metadata or {}),
            if_match=if_match,
            exclusive=if_absent,
            cache_control=cache_control,
        )
        what = f"copy {self.uri(src)} -> {self.uri(dst)}"
        await self.retrying(what, lambda: self.backend.copy(full_src, full_dst, options, size))
        self.backend.forget(full_dst)

    # --- compare-and-swap ----------------------------------------------------------------

    async def state(self, rel: str) -> ObjectState | None:
        """``rel``'s tag and user metadata (one metadata request); None when it does not exist."""
        full = self.path(rel)
        return await self.retrying(self.uri(rel), lambda: self.backend.state(full))

    async def read_tagged(self, rel: str) -> Tagged:
        """``rel``'s bytes and tag from one request; :class:`StorageNotFoundError` when it does not exist."""
        full = self.path(rel)
        return await self.retrying(self.uri(rel), lambda: self.backend.read_tagged(full))

    async def enforces_conditions(self, scratch: str, data: bytes) -> bool:
        """Whether the service refuses a copy and a write conditional on a tag the object does not have.

        Probed once per endpoint and bucket per process on ``scratch``, the caller's object holding ``data``.
        """
        return await conditions.enforced(self, scratch, data)

    async def metadata(self, rel: str) -> dict[str, str]:
        """User metadata of ``rel`` where the backend keeps it (S3, GCS, Azure), else ``{}``."""
        full = self.path(rel)
        self.backend.forget(full)
        meta = await self.retrying(self.uri(rel), lambda: self.backend.metadata(full))
        return {str(k).lower(): str(v) for k, v in meta.items()}

    async def incomplete_uploads(self, rel_prefix: str) -> builtins.list[tuple[str, str, datetime | None]]:
        """Multipart uploads begun under ``rel_prefix`` and never completed (where the backend has them).

        Returns ``(relative key, upload id, initiated)`` triples; other backends have none.
        """
        if not (self.capabilities.multipart_uploads or self.capabilities.parallel_parts):  # staged parts too
            return []
        full = self.path(rel_prefix)
        uploads = await self.retrying(self.uri(rel_prefix), lambda: self.backend.incomplete_uploads(full))
        return [(self.relative(u.path), u.upload_id, u.initiated) for u in uploads]

    async def abort_upload(self, rel: str, upload_id: str) -> None:
        """Abort an incomplete multipart upload found by :meth:`incomplete_uploads`."""
        upload = Upload(self.path(rel), upload_id)
        await self.retrying(self.uri(rel), lambda: self.backend.abort_upload(upload))

    # --- share URLs --------------------------------------------------------------------

    def check_share_url(self, expires: int) -> None:
        """Raise :class:`InputError` unless this destination can sign a URL that lasts ``expires`` seconds.

        >>> Storage("memory://doc-share").check_share_url(60)
        Traceback (most recent call last):
        csvpublish.errors.InputError: memory://doc-share cannot sign share URLs; only object stores do (S3, GCS, Azure)
        """
        refusal = self.backend.share_refusal(expires)
        if refusal is not None:
            raise InputError(f"{self.uri()} {refusal}")

    async def share_url(self, rel: str, *, expires: int = 3600) -> str:
        """A URL that reads ``rel`` for ``expires`` seconds without credentials (S3 presigned GET, GCS signed URL, SAS);
        a credential, never logged, signed whether or not ``rel`` exists.

        Raises:
            InputError: the destination or its credentials cannot sign, or ``expires`` is out of range.
        """
        self.check_share_url(expires)
        full = self.path(rel)
        return await self.retrying(self.uri(rel), lambda: self.backend.share_url(full, expires))

    # --- blocking streams, for worker threads ------------------------------------------

    def open_writer(
        self,
        rel: str,
        *,
        content_type: str | None = None,
        exclusive: bool = False,
        part_size: int = PART_SIZE,
        cache_control: str | None = None,
    ) -> Writer:
        """A blocking writer whose data becomes visible at ``rel`` only on :meth:`Writer.commit`.

        Object stores stream multipart parts of ``part_size`` bytes; other
        filesystems write a hidden temp file beside the target and rename it.
        """
        options = WriteOptions(content_type=content_type, exclusive=exclusive, cache_control=cache_control)
        writer = self.backend.open_writer(self.path(rel), options, part_size, self.blocking)
        writer.name = self.uri(rel)
        writer.errors = self.backend.errors
        return writer

    def open_reader(self, rel: str) -> IO[bytes]:
        """A blocking binary reader of ``rel``, never opened from cached metadata."""
        return self.backend.open_reader(self.path(rel), PART_SIZE)
