"""``Storage``: a folder on any fsspec filesystem, with async, retried, translated operations.

>>> import asyncio
>>> storage = Storage("memory://csvpublish-doc")
>>> asyncio.run(storage.write_bytes("a.txt", b"hi"))
>>> asyncio.run(storage.read_bytes("a.txt"))
b'hi'
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import random
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, TypeVar

import fsspec
from fsspec.asyn import AsyncFileSystem, sync
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from .errors import (
    InputError,
    MissingBackendError,
    StorageNotFoundError,
    error_chain,
    error_code,
    is_transient,
    translate,
)

logger = logging.getLogger("csvpublish")

T = TypeVar("T")

PART_SIZE = 5 * 2**20
"""Bytes buffered per multipart part / resumable chunk when streaming an upload
(S3's smallest part: each part in flight is held in memory)."""

PARTS_PER_STEP = 1000
"""S3 allows 10,000 parts per upload: every this many parts, the part size grows
by ``part_size``, so 5 MiB parts reach 268 GiB (see :func:`part_target`)."""


def part_target(part_size: int, parts_done: int) -> int:
    """Bytes to gather for the next S3 part once ``parts_done`` parts are uploaded.

    Parts stay at ``part_size`` for objects up to ``PARTS_PER_STEP * part_size``
    (about 5 GB), so memory stays bounded by one part; beyond that they grow in
    steps, so 10,000 parts hold 55,000 x ``part_size``.

    >>> part_target(5, 0), part_target(5, 999), part_target(5, 1000)
    (5, 5, 10)
    """
    return part_size * (1 + parts_done // PARTS_PER_STEP)

_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"}
_memory_lock = threading.Lock()

_CREDENTIAL_OPTIONS = {
    "key",
    "secret",
    "token",
    "password",
    "session_token",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "account_key",
    "sas_token",
    "client_secret",
    "connection_string",
    "credentials",
    "private_key",
}
# Loggers of backend clients that print request headers at DEBUG: botocore shows the
# access key id in Authorization and the session token in X-Amz-Security-Token.
_HEADER_LOGGERS = ("botocore.auth", "botocore.endpoint", "gcsfs")


class _Redactor(logging.Filter):
    """Replaces credentials given in storage options with ``***`` in the records of :data:`_HEADER_LOGGERS`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._installed = False

    def register(self, options: dict[str, Any]) -> None:
        found = set(_credentials(options))
        if not found - self.secrets:
            return
        with self._lock:
            self.secrets = self.secrets | found
            if not self._installed:
                for name in _HEADER_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        if any(secret in message for secret in secrets):
            for secret in secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def _credentials(options: dict[str, Any]) -> builtins.list[str]:
    out = []
    for name, value in options.items():
        if isinstance(value, dict):
            out += _credentials(value)
        elif isinstance(value, str) and name.lower() in _CREDENTIAL_OPTIONS and len(value) >= 4:
            out.append(value)
    return out


_redactor = _Redactor()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient errors are retried.

    Waits grow from ``initial`` by ``multiplier`` up to ``maximum`` seconds, with
    jitter; after ``attempts`` tries the error is raised as
    :class:`~csvpublish.TransientStorageError`.
    """

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        out, wait = [], self.initial
        for _ in range(self.attempts - 1):
            out.append(min(wait, self.maximum) * random.uniform(0.5, 1.0))
            wait *= self.multiplier
        return out


@dataclass(frozen=True)
class Entry:
    """One object found by :meth:`Storage.list`."""

    path: str
    """Path relative to the storage root."""
    size: int
    modified: datetime | None = None

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


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
            url = os.fspath(location)
            if not url:
                raise InputError("the destination is empty: give a folder or a URL such as s3://bucket/prefix")
            protocol = url.split("://", 1)[0] if "://" in url else "file"
            try:
                fs, path = fsspec.core.url_to_fs(url, **storage_options)
            except ImportError as exc:
                package = _PACKAGES.get(protocol, f"the fsspec backend for {protocol}://")
                extra = _EXTRAS.get(protocol)
                hint = f"pip install 'csvpublish[{extra}]'" if extra else f"pip install {package}"
                raise MissingBackendError(f"{protocol}:// needs {package}, which is not installed: {hint}") from exc
            except ValueError as exc:
                if "Protocol not known" in str(exc):
                    raise InputError(f"unknown storage protocol {protocol}:// in the destination") from None
                raise
            self.fs = fs
            self.root = path.rstrip("/")
        _redactor.register(dict(getattr(self.fs, "storage_options", None) or {}))
        self._is_async = isinstance(self.fs, AsyncFileSystem)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.protocol: str = protocols[0]
        self._protocols = set(protocols)

    # --- naming ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Storage({self.uri()!r})"

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine's filesystem."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def is_object_store(self) -> bool:
        """True where an upload becomes visible only once complete (S3, GCS, Azure)."""
        return bool(self._protocols & _OBJECT_STORES)

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
        full = self.path(rel)
        if self.is_local:
            return full
        if self.protocol == "memory":  # memory paths start with "/": show memory://a/b, not memory:///a/b
            return f"memory://{full.lstrip('/')}"
        return str(self.fs.unstrip_protocol(full))

    # --- the engine ------------------------------------------------------------------

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a coroutine of an async filesystem on the loop it belongs to."""
        if getattr(self.fs, "asynchronous", False):  # built by the caller for the running loop
            return await coro
        fut = asyncio.run_coroutine_threadsafe(coro, self.fs.loop)  # fsspec's I/O thread
        return await asyncio.wrap_future(fut)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._is_async:
            return await self._on_loop(getattr(self.fs, "_" + method)(*args, **kwargs))
        return await asyncio.to_thread(getattr(self.fs, method), *args, **kwargs)

    async def _s3(self, method: str, **kwargs: Any) -> Any:
        """One S3 API call through s3fs (its error translation included)."""
        fs: Any = self.fs
        return await self._on_loop(fs._call_s3(method, **kwargs))

    async def retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` with the retry policy; raise its failure translated.

        ``what`` names the target in messages (a display URI, never a secret).
        """
        delays = self.retry.delays()
        attempt = 0
        while True:
            try:
                return await op()
            except Exception as exc:
                if attempt < len(delays) and is_transient(exc):
                    logger.warning(
                        "%s: temporary error (%s), retrying in %.1fs", what, type(exc).__name__, delays[attempt]
                    )
                    await asyncio.sleep(delays[attempt])
                    attempt += 1
                    continue
                raise translate(exc, what) from exc

    def blocking(self, what: str, op: Callable[[], T], *, retry: bool = True) -> T:
        """Run a blocking ``op`` with the retry policy (for worker threads).

        ``retry=False`` runs it once, translating its failure: for steps that
        are not safe to repeat, such as committing a writer.
        """
        import time

        delays = self.retry.delays() if retry else []
        attempt = 0
        while True:
            try:
                return op()
            except Exception as exc:
                if attempt < len(delays) and is_transient(exc):
                    logger.warning("%s: temporary error (%s), retrying", what, type(exc).__name__)
                    time.sleep(delays[attempt])
                    attempt += 1
                    continue
                raise translate(exc, what) from exc

    # --- async operations --------------------------------------------------------------

    async def check(self, *, create: bool = True) -> None:
        """Make sure the destination exists: the bucket is there, the local folder is made.

        With ``create=False`` (for reading) a missing local folder is an error too.

        Raises:
            StorageNotFoundError: the bucket, container or folder does not exist.
            AccessDeniedError: the credentials cannot see it.
        """
        if self.is_local:
            if create:
                await asyncio.to_thread(os.makedirs, self.root or ".", exist_ok=True)
            elif not await asyncio.to_thread(os.path.isdir, self.root or "."):
                raise StorageNotFoundError(f"{self.uri()}: no such folder; check the destination")
            return
        if not self.is_object_store:
            return
        bucket = self.root.split("/", 1)[0]
        if not bucket:
            raise InputError(f"{self.uri()}: the destination needs a bucket, like {self.protocol}://bucket/prefix")
        self.fs.invalidate_cache(bucket)
        what = f"{self.protocol}://{bucket}"

        async def probe() -> None:
            # Ask the service itself: a plain exists() answers False for any error,
            # so an unreachable endpoint would look like a missing bucket.
            if self._protocols & {"s3", "s3a"}:
                await self._s3("head_bucket", Bucket=bucket)
            else:
                await self._call("info", bucket)

        try:
            await self.retrying(what, probe)
        except StorageNotFoundError:
            raise StorageNotFoundError(
                f"{what}: the bucket does not exist (or these credentials cannot see it); "
                "create it or fix the destination URL"
            ) from None

    async def exists(self, rel: str) -> bool:
        """True when ``rel`` exists (never answered from a cache)."""
        full = self.path(rel)
        self.fs.invalidate_cache(full)
        return bool(await self.retrying(self.uri(rel), lambda: self._call("exists", full)))

    async def info(self, rel: str) -> dict[str, Any]:
        """The backend's metadata of ``rel`` (size, type, content type, ...)."""
        full = self.path(rel)
        self.fs.invalidate_cache(full)
        return dict(await self.retrying(self.uri(rel), lambda: self._call("info", full)))

    async def read_bytes(self, rel: str) -> bytes:
        """The whole content of ``rel``; meant for small objects like manifests."""
        full = self.path(rel)

        async def op() -> bytes:
            # s3fs sizes the read from its listing cache, which would miss an object made since
            self.fs.invalidate_cache(full)
            return bytes(await self._call("cat_file", full))

        return await self.retrying(self.uri(rel), op)

    async def list(self, rel: str = "") -> builtins.list[Entry]:
        """Files directly inside folder ``rel``; an absent folder lists as empty."""
        full = self.path(rel)

        async def op() -> list[Entry]:
            self.fs.invalidate_cache(full)
            try:
                items = await self._call("ls", full, detail=True)
            except FileNotFoundError:
                return []
            return [self._entry(item) for item in items if item.get("type") != "directory"]

        return await self.retrying(self.uri(rel), op)

    def _entry(self, item: dict[str, Any]) -> Entry:
        name = self.fs._strip_protocol(item["name"]).rstrip("/")
        rel = name[len(self.root) + 1 :] if self.root else name
        modified = item.get("LastModified") or item.get("mtime") or item.get("updated") or item.get("created")
        if isinstance(modified, (int, float)):
            modified = datetime.fromtimestamp(modified).astimezone()
        elif isinstance(modified, str):
            try:
                modified = datetime.fromisoformat(modified.replace("Z", "+00:00"))
            except ValueError:
                modified = None
        return Entry(rel, int(item.get("size") or 0), modified if isinstance(modified, datetime) else None)

    async def delete(self, rel: str) -> None:
        """Delete ``rel``; a missing object is not an error."""
        full = self.path(rel)

        async def op() -> None:
            try:
                await self._call("rm_file", full)
            except FileNotFoundError:
                pass
            self.fs.invalidate_cache(full)

        await self.retrying(self.uri(rel), op)

    async def write_bytes(
        self, rel: str, data: bytes, *, content_type: str | None = None, exclusive: bool = False
    ) -> None:
        """Write a small object atomically.

        With ``exclusive=True`` the write fails with :class:`FileExistsError` when
        ``rel`` exists, using the backend's conditional create (S3
        ``If-None-Match: *``, GCS ``ifGenerationMatch=0``, ``O_EXCL`` locally).
        """
        full = self.path(rel)
        if self.is_object_store:
            kwargs: dict[str, Any] = {"mode": "create" if exclusive else "overwrite"}
            if content_type:
                kwargs.update(self._content_type_kwargs(content_type))

            async def op() -> None:
                await self._call("pipe_file", full, data, **kwargs)
                self.fs.invalidate_cache(full)

            try:
                await self.retrying(self.uri(rel), op)
            except Exception as exc:
                if _is_precondition_failure(exc):
                    raise FileExistsError(self.uri(rel)) from None
                raise
            return

        def write() -> None:
            writer = self.open_writer(rel, exclusive=exclusive)
            try:
                writer.write(data)
                writer.commit()
            except BaseException:
                writer.discard()
                raise

        await asyncio.to_thread(self.blocking, self.uri(rel), write)

    async def upload_file(
        self, local_path: str | os.PathLike[str], rel: str, *, content_type: str | None = None, exclusive: bool = False
    ) -> None:
        """Upload a local file to ``rel``; it becomes visible only once complete."""

        def upload() -> None:
            writer = self.open_writer(rel, content_type=content_type, exclusive=exclusive)
            try:
                with open(local_path, "rb") as f:
                    while chunk := f.read(PART_SIZE):
                        writer.write(chunk)
                writer.commit()
            except BaseException:
                writer.discard()
                raise

        await asyncio.to_thread(self.blocking, self.uri(rel), upload)

    async def copy(
        self,
        src: str,
        dst: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Server-side copy ``src`` to ``dst``, replacing ``dst`` atomically.

        S3 uses CopyObject (setting ``content_type`` and ``metadata`` on the copy),
        GCS a rewrite, a local folder a copy to a temp file then a rename. The
        bytes never pass through this machine on object stores.
        """
        full_src, full_dst = self.path(src), self.path(dst)
        what = f"copy {self.uri(src)} -> {self.uri(dst)}"
        if self.is_local:
            await asyncio.to_thread(self.blocking, what, lambda: _local_copy(self.fs, full_src, full_dst))
            return
        if self._protocols & {"s3", "s3a"}:
            await self.retrying(what, lambda: self._s3_copy(full_src, full_dst, content_type, metadata))
        elif self._protocols & {"gs", "gcs"}:
            await self.retrying(what, lambda: self._gcs_copy(full_src, full_dst, content_type, metadata))
        else:

            async def op() -> None:
                await self._call("cp_file", full_src, full_dst)

            await self.retrying(what, op)
        self.fs.invalidate_cache(full_dst)

    async def _s3_copy(self, src: str, dst: str, content_type: str | None, metadata: dict[str, str] | None) -> None:
        fs: Any = self.fs
        sb, sk, _ = fs.split_path(src)
        db, dk, _ = fs.split_path(dst)
        info = await self._call("info", src)
        if int(info.get("size") or 0) >= 5 * 2**30:  # CopyObject's limit: let s3fs do a multipart copy
            await self._call("cp_file", src, dst)
            return
        kwargs: dict[str, Any] = {"MetadataDirective": "REPLACE", "Metadata": metadata or {}}
        kwargs["ContentType"] = content_type or info.get("ContentType") or "application/octet-stream"
        await self._s3("copy_object", Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk}, **kwargs)

    async def _gcs_copy(self, src: str, dst: str, content_type: str | None, metadata: dict[str, str] | None) -> None:
        fs: Any = self.fs
        sb, sk, _ = fs.split_path(src)
        db, dk, _ = fs.split_path(dst)
        body: dict[str, Any] = {}
        if content_type:
            body["contentType"] = content_type
        if metadata:
            body["metadata"] = metadata

        async def rewrite() -> None:
            token = None
            while True:
                out = await fs._call(
                    "POST",
                    "b/{}/o/{}/rewriteTo/b/{}/o/{}",
                    sb,
                    sk,
                    db,
                    dk,
                    headers={"Content-Type": "application/json"},
                    json=body,
                    rewriteToken=token,
                    json_out=True,
                )
                if out.get("done", True):
                    return
                token = out["rewriteToken"]

        await self._on_loop(rewrite())

    async def metadata(self, rel: str) -> dict[str, str]:
        """User metadata of ``rel`` where the backend keeps it (S3, GCS), else ``{}``."""
        info = await self.info(rel)
        meta = info.get("metadata") or info.get("Metadata") or {}
        if not meta and self._protocols & {"s3", "s3a"}:
            full = self.path(rel)
            meta = await self.retrying(self.uri(rel), lambda: self._call("metadata", full))
        return {str(k).lower(): str(v) for k, v in dict(meta).items()}

    async def incomplete_uploads(self, rel_prefix: str) -> builtins.list[tuple[str, str, datetime | None]]:
        """Multipart uploads begun under ``rel_prefix`` and never completed (S3 only).

        Returns ``(relative key, upload id, initiated)`` triples; other backends have none.
        """
        if not self._protocols & {"s3", "s3a"}:
            return []
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(self.path(rel_prefix))

        async def op() -> builtins.list[tuple[str, str, datetime | None]]:
            out: builtins.list[tuple[str, str, datetime | None]] = []
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
            while True:
                page = await self._s3("list_multipart_uploads", **kwargs)
                for upload in page.get("Uploads", []):
                    full = f"{bucket}/{upload['Key']}"
                    rel = full[len(self.root) + 1 :] if self.root else full
                    out.append((rel, upload["UploadId"], upload.get("Initiated")))
                if not page.get("IsTruncated"):
                    return out
                kwargs["KeyMarker"] = page.get("NextKeyMarker")
                kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")

        return await self.retrying(self.uri(rel_prefix), op)

    async def abort_upload(self, rel: str, upload_id: str) -> None:
        """Abort an incomplete multipart upload found by :meth:`incomplete_uploads`."""
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(self.path(rel))

        async def op() -> None:
            await self._s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

        await self.retrying(self.uri(rel), op)

    # --- blocking streams, for worker threads ------------------------------------------

    def _content_type_kwargs(self, content_type: str) -> dict[str, Any]:
        if self._protocols & {"s3", "s3a"}:
            return {"ContentType": content_type}
        if self._protocols & {"gs", "gcs"}:
            return {"content_type": content_type}
        return {}

    def open_writer(
        self, rel: str, *, content_type: str | None = None, exclusive: bool = False, part_size: int = PART_SIZE
    ) -> Writer:
        """A blocking writer whose data becomes visible at ``rel`` only on :meth:`Writer.commit`.

        Object stores stream multipart parts of ``part_size`` bytes; other
        filesystems write a hidden temp file beside the target and rename it.
        """
        full = self.path(rel)
        writer: Writer
        if self.is_local:
            writer = _LocalWriter(self.fs, full, exclusive)
        elif self._protocols & {"s3", "s3a"}:
            writer = _S3Writer(self, full, content_type, exclusive, part_size)
        elif self.is_object_store:
            kwargs = self._content_type_kwargs(content_type) if content_type else {}
            handle = self.fs.open(full, "xb" if exclusive else "wb", block_size=part_size, **kwargs)
            writer = _ObjectWriter(self, full, handle)
        else:
            writer = _MoveWriter(self, full, exclusive)
        writer.name = self.uri(rel)
        return writer

    def open_reader(self, rel: str) -> IO[bytes]:
        """A blocking binary reader of ``rel``, never opened from cached metadata."""
        full = self.path(rel)
        self.fs.invalidate_cache(full)  # a stale cached ETag would make S3 refuse the read of a replaced object
        return self.fs.open(full, "rb", block_size=PART_SIZE)  # type: ignore[no-any-return]


class Writer:
    """A blocking, all-or-nothing writer made by :meth:`Storage.open_writer`."""

    name: str = "upload"
    """Display URI of the target, for messages."""

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


def temp_name(full: str) -> str:
    """A hidden temp path beside ``full``: ``dir/.base.<pid>-<random>.tmp``."""
    folder, _, base = full.rpartition("/")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return f"{folder}/.{base}.{token}.tmp" if folder else f".{base}.{token}.tmp"


class _LocalWriter(Writer):
    """Hidden temp file beside the target, fsync, then rename (or hard-link for an exclusive create)."""

    def __init__(self, fs: AbstractFileSystem, final: str, exclusive: bool) -> None:
        self.fs = fs
        self.final = final
        self.exclusive = exclusive
        fs.makedirs(os.path.dirname(final) or ".", exist_ok=True)
        self.tmp = temp_name(final)
        self.handle: Any = fs.open(self.tmp, "xb")

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            if self.exclusive:
                self.fs.link(self.tmp, self.final)  # fails if the target exists: an exclusive create
                self._remove_tmp()  # committed already: a temp left behind is cleanup()'s job
            else:
                self.fs.mv(self.tmp, self.final)  # rename(2): atomic replacement
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        try:
            if not self.handle.closed:
                self.handle.close()
        except OSError:
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self.fs.rm_file(self.tmp)
        except OSError as exc:  # best effort: never hide the real outcome; cleanup() removes the temp
            if not isinstance(exc, FileNotFoundError):
                logger.warning("could not remove the temp file %s: %s", self.tmp, type(exc).__name__)


def local_writer(path: str, exclusive: bool = False) -> Writer:
    """An atomic writer for a path on this machine (used for the exported CSV)."""
    full = os.path.abspath(path)
    if os.path.isdir(full):  # a rename onto a folder would move the file into it
        raise InputError(f"{path} is a folder; give the path of the CSV file to write, such as {path}/books.csv")
    writer = _LocalWriter(LocalFileSystem(), full, exclusive)
    writer.name = full
    return writer


class _S3Writer(Writer):
    """A multipart upload driven request by request, so each request is retried on its own.

    Data under ``part_size`` goes up in one PutObject at commit. Either way the
    object appears only on commit, created conditionally (``If-None-Match: *``)
    when ``exclusive``; ``discard`` aborts the multipart upload.
    """

    def __init__(self, storage: Storage, full: str, content_type: str | None, exclusive: bool, part_size: int) -> None:
        fs: Any = storage.fs
        self.storage = storage
        self.full = full
        self.bucket, self.key, _ = fs.split_path(full)
        self.headers: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        self.match: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive else {}
        self.part_size = part_size
        self.pending: builtins.list[bytes] = []  # joined once per part: one copy of the part's bytes
        self.pending_size = 0
        self.parts: builtins.list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.finished = False

    def _s3(self, method: str, *, retry: bool = True, **kwargs: Any) -> Any:
        fs: Any = self.storage.fs
        return self.storage.blocking(
            self.name,
            lambda: sync(fs.loop, fs._call_s3, method, Bucket=self.bucket, Key=self.key, **kwargs),
            retry=retry,
        )

    def write(self, data: bytes) -> None:
        """Buffer ``data``; upload a part once ``part_size`` bytes are waiting.

        Parts are at least ``part_size`` (S3 wants 5 MiB but for the last one),
        so a part is whatever is waiting, joined once, not cut to an exact size;
        very large uploads use larger parts (:func:`part_target`).
        """
        if not data:
            return
        self.pending.append(bytes(data))
        self.pending_size += len(data)
        if self.pending_size >= part_target(self.part_size, len(self.parts)):
            self._upload_part(self._take())

    def _take(self) -> bytes:
        body = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        return body

    def _upload_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self._s3("create_multipart_upload", **self.headers)["UploadId"]
        number = len(self.parts) + 1
        out = self._s3("upload_part", UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": out["ETag"]})

    def commit(self) -> None:
        try:
            if self.upload_id is None:
                body = self._take()
                try:
                    self._s3("put_object", Body=body, **self.headers, **self.match)
                except Exception as exc:
                    # a retried conditional PUT whose first attempt landed: the object is ours
                    if not (_is_precondition_failure(exc) and self._holds(body)):
                        raise
            else:
                if self.pending:
                    self._upload_part(self._take())
                # CompleteMultipartUpload is idempotent for one upload id, so retrying it is safe
                self._s3(
                    "complete_multipart_upload",
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts},
                    **self.match,
                )
            self.finished = True
        except Exception as exc:
            self.discard()
            if _is_precondition_failure(exc):
                raise FileExistsError(self.name) from None
            raise
        finally:
            self.storage.fs.invalidate_cache(self.full)

    def _holds(self, body: bytes) -> bool:
        import hashlib

        try:
            etag = self._s3("head_object", retry=False).get("ETag", "")
        except Exception:
            return False
        return bool(etag.strip('"') == hashlib.md5(body, usedforsecurity=False).hexdigest())

    def discard(self) -> None:
        self.pending, self.pending_size = [], 0
        if self.finished or self.upload_id is None:
            return
        upload_id, self.upload_id = self.upload_id, None
        try:
            self._s3("abort_multipart_upload", UploadId=upload_id)
        except Exception as exc:  # best effort: cleanup() aborts what is left
            logger.warning("could not abort the upload of %s: %s", self.name, type(exc).__name__)


class _ObjectWriter(Writer):
    """An fsspec file of an object store (GCS resumable upload, Azure blocks, ...)."""

    def __init__(self, storage: Storage, full: str, handle: Any) -> None:
        self.storage = storage
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
            if _is_precondition_failure(exc):
                raise FileExistsError(self.storage.fs.unstrip_protocol(self.full)) from None
            raise
        finally:
            self.storage.fs.invalidate_cache(self.full)

    def discard(self) -> None:
        # A failed close() marks the file closed with its upload still open: abort it all the same.
        if self.finished:
            return
        self.finished = True
        try:
            self.handle.discard()
        except Exception as exc:  # best effort: cleanup() removes what an abort leaves
            logger.warning(
                "could not abort the upload of %s: %s", self.storage.fs.unstrip_protocol(self.full), type(exc).__name__
            )
        self.handle.closed = True  # never let the file's finaliser commit a discarded upload


class _MoveWriter(Writer):
    """Temp object then rename, for filesystems whose writes are visible while they happen."""

    def __init__(self, storage: Storage, full: str, exclusive: bool) -> None:
        self.storage = storage
        self.fs = storage.fs
        self.final = full
        self.exclusive = exclusive
        self.tmp = temp_name(full)
        parent = full.rpartition("/")[0]
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        self.handle: Any = self.fs.open(self.tmp, "wb")

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        try:
            with _memory_lock:  # makes check-then-move atomic for in-process filesystems (memory://)
                if self.exclusive and self.fs.exists(self.final):
                    raise FileExistsError(self.fs.unstrip_protocol(self.final))
                self.fs.mv(self.tmp, self.final)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        try:
            if not self.handle.closed:
                self.handle.close()
            self.fs.rm_file(self.tmp)
        except (FileNotFoundError, OSError):
            pass


def _local_copy(fs: AbstractFileSystem, src: str, dst: str) -> None:
    fs.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    tmp = temp_name(dst)
    try:
        fs.cp_file(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        fs.mv(tmp, dst)
    except BaseException:
        try:
            fs.rm_file(tmp)
        except FileNotFoundError:
            pass
        raise


def _is_precondition_failure(exc: BaseException) -> bool:
    """True when ``exc`` is a conditional create that found the object there.

    Matched by error code, never by message text: a message holds paths whose
    digits could read as a status.
    """
    for item in error_chain(exc):
        if isinstance(item, FileExistsError) or error_code(item) in {"PreconditionFailed", "412"}:
            return True
        if "conditionNotMet" in str(item):  # GCS's reason for a failed ifGenerationMatch
            return True
    return False
