"""The backend protocol: what csvpublish asks of a storage service, and the capabilities it can tell.

One module per backend implements :class:`Backend` (``local``, ``s3``,
``gcs``, ``azure``, ``objectstore`` for other object stores, ``filesystem``
for ``memory://`` and any other fsspec filesystem); ``registry`` finds it by
protocol. :class:`~csvpublish.Storage` holds paths, URIs, retries and error
translation, and hands everything backend-specific to its backend. Callers
ask :class:`Capabilities`, never a protocol name.

All paths given to a backend are full filesystem paths (``bucket/prefix/key``);
a backend never retries and never translates: :class:`~csvpublish.Storage`
does both, with the backend's :class:`~csvpublish.storage.translate.ErrorCodes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from fsspec.asyn import AsyncFileSystem
from fsspec.spec import AbstractFileSystem

from .translate import GENERIC, ErrorCodes

if TYPE_CHECKING:
    from .parts import PartedUpload, PartsWriter, Piece

T = TypeVar("T")
W = TypeVar("W", bound="Writer")

PART_SIZE = 5 * 2**20
"""Bytes buffered per multipart part / resumable chunk when streaming an upload
(S3's smallest part: each part in flight is held in memory)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. Callers ask these instead of testing protocol names.

    >>> Capabilities(object_store=True).object_store
    True
    """

    object_store: bool = False
    """An upload becomes visible only once complete, and the first path segment is a bucket."""
    conditional_create: bool = True
    """An exclusive create fails when the object exists, enforced by the service (or a lock, in process)."""
    server_side_copy: bool = False
    """A copy never passes the bytes through this machine."""
    user_metadata: bool = False
    """Objects carry user metadata: the latest's ``sha256``, ``record-count`` and ``version``."""
    multipart_uploads: bool = False
    """Unfinished uploads exist apart from objects and are listed and aborted by ``cleanup()``."""
    writer_pids: bool = False
    """Temp files are written by processes of this machine, so the pid in a temp name tells whether its writer lives."""
    endpoint_url: bool = False
    """An endpoint URL can be given (an S3-compatible store, a GCS emulator): see :meth:`Backend.with_endpoint`."""
    conditional_copy: bool = False
    """Copies and small writes can carry a precondition on the destination's tag (:attr:`WriteOptions.if_match`),
    and :meth:`Backend.state` reads that tag: the latest can be replaced by compare-and-swap. Whether the
    service enforces the precondition is probed (:meth:`~csvpublish.Storage.enforces_conditions`), never assumed."""
    cache_control: bool = False
    """Objects keep the ``Cache-Control`` header a write or a copy sets (:attr:`WriteOptions.cache_control`)."""
    presigned_urls: bool = False
    """Read URLs signed for a limited time, for readers without credentials (:meth:`Backend.share_url`)."""
    parallel_parts: bool = False
    """The parts of one object uploaded by several processes, then assembled by the service
    (:mod:`csvpublish.storage.parts`: S3 multipart parts, GCS compose, Azure blocks, a local concatenation)."""


@dataclass(frozen=True)
class WriteOptions:
    """What a write sets on the object besides its bytes (each backend maps it to its own headers)."""

    content_type: str | None = None
    exclusive: bool = False
    """Create only if absent: a conditional create."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata, where the backend keeps it (:attr:`Capabilities.user_metadata`)."""
    cache_control: str | None = None
    """The ``Cache-Control`` header where the backend stores one (:attr:`Capabilities.cache_control`); None: none."""
    if_match: str | None = None
    """Write only if the destination still has this tag (:attr:`ObjectState.tag`): a compare-and-swap.
    Sent only by backends with :attr:`Capabilities.conditional_copy`; with ``exclusive``, only if absent."""


@dataclass(frozen=True)
class ObjectState:
    """What a conditional write names an object by, and its user metadata, from one metadata request."""

    tag: str
    """The ETag (S3, Azure) or generation (GCS) a write's :attr:`WriteOptions.if_match` names."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata, keys lower-cased."""


@dataclass(frozen=True)
class Tagged:
    """A small object's bytes with its tag, read in one request."""

    data: bytes
    tag: str


@dataclass(frozen=True)
class Upload:
    """An unfinished multipart upload found by :meth:`Backend.incomplete_uploads`."""

    path: str
    upload_id: str
    initiated: datetime | None = None


class Writer:
    """A blocking, all-or-nothing writer made by :meth:`~csvpublish.Storage.open_writer`."""

    name: str = "upload"
    """Display URI of the target, for messages."""
    errors: ErrorCodes = GENERIC
    """How its backend's errors read, for whoever translates a failed :meth:`write`."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        """Make the data visible at the target. Raises FileExistsError for an exclusive write that lost.

        Call it once: after a failed commit the writer is discarded, so run it
        with ``Storage.blocking(..., retry=False)``.
        """
        raise NotImplementedError

    def discard(self) -> None:
        """Drop everything written; the target is untouched. Safe to call twice."""
        raise NotImplementedError


@contextlib.contextmanager
def committing(writer: W) -> Iterator[W]:
    """Commit ``writer`` when the block ends, discard it when the block or the commit fails.

    >>> import fsspec
    >>> from csvpublish.storage.filesystem import FilesystemBackend
    >>> backend = FilesystemBackend(fsspec.filesystem("memory"))
    >>> with committing(backend.open_writer("/doc-committing/a.txt", WriteOptions(), PART_SIZE, None)) as w:
    ...     w.write(b"hi")
    >>> backend.fs.cat_file("/doc-committing/a.txt")
    b'hi'
    """
    try:
        yield writer
        writer.commit()
    except BaseException:
        writer.discard()
        raise


def temp_name(full: str) -> str:
    """A hidden temp path beside ``full``: ``dir/.base.<pid>-<random>.tmp``."""
    folder, _, base = full.rpartition("/")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return f"{folder}/.{base}.{token}.tmp" if folder else f".{base}.{token}.tmp"


class RunBlocking(Protocol):
    """:meth:`~csvpublish.Storage.blocking`: run a blocking step with retries, its failure translated."""

    def __call__(self, what: str, op: Callable[[], T], *, retry: bool = True) -> T: ...


class Backend:
    """One storage service, as csvpublish uses it. Subclasses live in one module each.

    Args:
        fs: the fsspec filesystem of the destination.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()
    errors: ClassVar[ErrorCodes] = GENERIC
    """How this backend's errors read."""
    header_loggers: ClassVar[tuple[str, ...]] = ()
    """Loggers of the client library that print request headers (credentials) at DEBUG."""
    max_share_seconds: ClassVar[int | None] = None
    """The longest a signed URL of :meth:`share_url` may last; None: no limit of the service's."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs
        self.is_async = isinstance(fs, AsyncFileSystem)

    @classmethod
    def with_endpoint(cls, options: dict[str, Any], endpoint_url: str) -> dict[str, Any]:
        """``options`` with an endpoint URL put where this backend's filesystem reads it."""
        raise NotImplementedError(f"{cls.__name__} takes no endpoint URL")

    # --- the engine: one call of the filesystem, on its own loop or in a thread ----------

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a coroutine of an async filesystem on the loop it belongs to."""
        if getattr(self.fs, "asynchronous", False):  # built by the caller for the running loop
            return await coro
        fut = asyncio.run_coroutine_threadsafe(coro, self.fs.loop)  # fsspec's I/O thread
        return await asyncio.wrap_future(fut)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``fs.<method>(...)``: its native coroutine where the filesystem is async, else in a worker thread."""
        if self.is_async:
            return await self.on_loop(getattr(self.fs, "_" + method)(*args, **kwargs))
        return await asyncio.to_thread(getattr(self.fs, method), *args, **kwargs)

    # --- naming and checks ---------------------------------------------------------------

    def display_uri(self, full: str) -> str:
        """A URI to show a person for the filesystem path ``full``."""
        return str(self.fs.unstrip_protocol(full))

    def bucket(self, root: str) -> str | None:
        """The bucket or container of ``root`` on an object store; None on a filesystem."""
        return None

    async def ensure_folder(self, root: str, *, create: bool) -> bool:
        """Make the folder ``root`` (``create``) or tell whether it exists; object stores have none."""
        return True

    async def probe_bucket(self, bucket: str) -> None:
        """Ask the service whether ``bucket`` is there: raises its not-found or access error if not."""
        await self.call("info", bucket)

    # --- writing -----------------------------------------------------------------------

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        """Write a small object atomically; an exclusive write raises FileExistsError when it exists."""
        raise NotImplementedError

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        """A blocking writer whose data becomes visible at ``full`` only on :meth:`Writer.commit`.

        ``run`` runs one request with the storage's retries, for writers that
        send requests themselves.
        """
        raise NotImplementedError

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        """Copy ``src`` over ``dst`` in one step, with the headers and metadata of ``options`` (never the source's).

        ``size`` is the source's size when the caller knows it (saves a metadata request).
        """
        await self.call("cp_file", src, dst)

    # --- conditional writes (Capabilities.conditional_copy) --------------------------------

    stale_tag: ClassVar[str] = ""
    """A tag no object has: a write conditional on it must be refused where conditions are enforced."""

    async def state(self, full: str) -> ObjectState | None:
        """The tag and user metadata of ``full``; None when it does not exist."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional writes")

    async def read_tagged(self, full: str) -> Tagged:
        """``full``'s bytes and tag from one request; FileNotFoundError when it does not exist."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional writes")

    def endpoint(self) -> str:
        """Which service this filesystem talks to (an endpoint URL), for what is learned once per endpoint."""
        return ""

    def share_refusal(self, expires: int) -> str | None:
        """Why this backend cannot sign a URL that lasts ``expires`` seconds (the end of a sentence), or None."""
        if isinstance(expires, bool) or not isinstance(expires, int) or expires < 1:
            return f"cannot sign a share URL for expires={expires!r}: give a whole number of seconds, 1 or more"
        if not self.capabilities.presigned_urls:
            return "cannot sign share URLs; only object stores do (S3, GCS, Azure)"
        longest = self.max_share_seconds
        if longest is not None and expires > longest:
            return f"signs share URLs for {longest} seconds ({longest // 86400} days) at most, not expires={expires}"
        return None

    async def share_url(self, full: str, expires: int) -> str:
        """A URL that reads ``full`` without credentials for ``expires`` seconds (:attr:`Capabilities.presigned_urls`).

        The URL is a credential: never log it.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot sign URLs")

    # --- reading -----------------------------------------------------------------------

    async def list_prefix(self, folder: str, prefix: str) -> list[dict[str, Any]]:
        """The files directly in ``folder`` whose names start with ``prefix`` (fsspec ``ls`` entries).

        Object stores list only those keys (one request for up to 1,000), so the cost does not grow
        with the rest of the folder; this default lists the folder and filters.
        """
        try:
            items = await self.call("ls", folder, detail=True)
        except FileNotFoundError:
            return []
        start = f"{folder}/{prefix}" if folder else prefix
        return [
            i for i in items if i.get("type") != "directory" and self.fs._strip_protocol(i["name"]).startswith(start)
        ]

    async def metadata(self, full: str) -> dict[str, Any]:
        """The user metadata of ``full``, as the backend reports it."""
        info = await self.call("info", full)
        return dict(info.get("metadata") or {})

    def forget(self, full: str) -> None:
        """Drop what the filesystem cached about ``full`` and the folders above it (listings, ETags)."""
        self.fs.invalidate_cache(full)

    def open_reader(self, full: str, block_size: int) -> IO[bytes]:
        """A blocking binary reader of ``full``, never opened from cached metadata."""
        self.forget(full)  # a stale cached ETag would make S3 refuse the read of a replaced object
        return self.fs.open(full, "rb", block_size=block_size)  # type: ignore[no-any-return]

    # --- unfinished uploads ----------------------------------------------------------------

    async def incomplete_uploads(self, full_prefix: str) -> list[Upload]:
        """Uploads begun under ``full_prefix`` and never completed (:attr:`Capabilities.multipart_uploads`)."""
        return []

    async def abort_upload(self, upload: Upload) -> None:
        """Abort an unfinished upload found by :meth:`incomplete_uploads`."""
        raise NotImplementedError(f"{type(self).__name__} has no unfinished uploads")

    # --- parts from several processes (Capabilities.parallel_parts; storage/parts.py) ----------

    max_parts: ClassVar[int] = 10_000
    """Parts one object may have (S3's limit; the numbers are shared out among the partitions)."""

    async def begin_parts(self, full: str, options: WriteOptions) -> str:
        """Start an upload of ``full`` in parts from several processes; its upload id."""
        raise NotImplementedError(f"{type(self).__name__} cannot assemble parts")

    def parts_writer(self, upload: PartedUpload, index: int, run: RunBlocking) -> PartsWriter:
        """The blocking writer of partition ``index``'s parts, in any process."""
        raise NotImplementedError(f"{type(self).__name__} cannot assemble parts")

    async def assemble(self, upload: PartedUpload, pieces: list[tuple[Piece, ...]]) -> None:
        """Make ``upload.path`` from every partition's pieces, in order; exclusive as its options say."""
        raise NotImplementedError(f"{type(self).__name__} cannot assemble parts")

    async def abort_parts(self, upload: PartedUpload) -> None:
        """Drop every part and staged object of ``upload``; the object never appears."""
        raise NotImplementedError(f"{type(self).__name__} cannot assemble parts")
