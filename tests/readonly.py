"""A read-only view of a destination's real filesystem: every write, delete, copy or folder creation is refused.

The one wrapper of the read tests (tests/test_reads.py), for the backends whose
test server has no read-only identity (SeaweedFS has one and is used as it is).
Each class is the real filesystem (a local folder, memory, s3fs talking to moto,
gcsfs talking to fake-gcs-server, adlfs talking to Azurite) with a check in front
of what writes: a refused request raises the backend's own access-denied error
and is recorded in :attr:`Refusals.seen`, so a test can also show that nothing
even tried to write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from csvpublish import Storage

from .conftest import Destination

S3_READS = {"head_bucket", "head_object", "get_object", "list_objects_v2", "list_objects", "get_bucket_location"}
"""The S3 API calls of a reader: anything else (PutObject, CopyObject, DeleteObject, multipart...) is refused."""
HTTP_READS = {"GET", "HEAD"}


@dataclass
class Refusals:
    """What a read-only filesystem refused, and the error it refuses with."""

    denied: Any
    seen: list[str] = field(default_factory=list)

    def refuse(self, what: str) -> None:
        self.seen.append(what)
        raise self.denied()


class _ReadOnlyMixin:
    """Local and memory filesystems: every method that changes something is refused."""

    cachable = False
    refusals: Refusals

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if set(mode) & set("wxa+"):
            self.refusals.refuse(f"open {path} {mode}")
        return super()._open(path, mode, *args, **kwargs)  # type: ignore[misc]

    def _refuse(self, what: str, path: Any) -> Any:
        self.refusals.refuse(f"{what} {path}")

    def mkdir(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("mkdir", path)

    def makedirs(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("makedirs", path)

    def rm_file(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("rm_file", path)

    def rm(self, path: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse("rm", path)

    def rmdir(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("rmdir", path)

    def cp_file(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("cp_file", path2)

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse("copy", path2)

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse("mv", path2)

    def link(self, src: str, dst: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("link", dst)

    def symlink(self, src: str, dst: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("symlink", dst)

    def touch(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("touch", path)

    def pipe_file(self, path: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("pipe_file", path)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        self._refuse("put_file", rpath)


class ReadOnlyLocal(_ReadOnlyMixin, LocalFileSystem):
    def __init__(self, refusals: Refusals) -> None:
        super().__init__()
        self.refusals = refusals


class ReadOnlyMemory(_ReadOnlyMixin, MemoryFileSystem):
    def __init__(self, refusals: Refusals) -> None:
        super().__init__()
        self.refusals = refusals


def _s3(refusals: Refusals, options: dict[str, Any]) -> Any:
    import s3fs
    from fsspec.asyn import sync_wrapper

    class ReadOnlyS3(s3fs.S3FileSystem):  # type: ignore[misc]
        cachable = False

        async def _call_s3(self, method: str, *args: Any, **kwargs: Any) -> Any:
            if method not in S3_READS:
                refusals.refuse(f"{method} {kwargs.get('Key', '')}")
            return await super()._call_s3(method, *args, **kwargs)

        call_s3 = sync_wrapper(_call_s3)

    return ReadOnlyS3(**options)


def _gcs(refusals: Refusals, options: dict[str, Any]) -> Any:
    import gcsfs
    from fsspec.asyn import sync_wrapper

    class ReadOnlyGCS(gcsfs.GCSFileSystem):  # type: ignore[misc]
        cachable = False

        async def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if method.upper() not in HTTP_READS:
                refusals.refuse(f"{method} {path} {args}")
            return await super()._call(method, path, *args, **kwargs)

        call = sync_wrapper(_call)

    return ReadOnlyGCS(**options)


def _azure(refusals: Refusals, options: dict[str, Any]) -> Any:
    from adlfs import AzureBlobFileSystem
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob.aio import BlobServiceClient

    class ReadOnlyTransport(AioHttpTransport):  # type: ignore[misc]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            if request.method.upper() not in HTTP_READS:
                refusals.refuse(f"{request.method} {request.url.split('?')[0]}")
            return await super().send(request, **kwargs)

    class ReadOnlyAzure(AzureBlobFileSystem):  # type: ignore[misc]
        cachable = False

        def do_connect(self) -> None:
            self.service_client = BlobServiceClient.from_connection_string(
                self.connection_string, transport=ReadOnlyTransport()
            )

    return ReadOnlyAzure(**options)


def read_only(destination: Destination) -> tuple[Storage, Refusals]:
    """A Storage of ``destination`` on its real filesystem that refuses every write, and what it refused."""
    refusals = Refusals(destination.caps.denied)
    options = {k: v for k, v in destination.options.items() if k != "skip_instance_cache"}
    makers = {
        "memory": lambda: ReadOnlyMemory(refusals),
        "local": lambda: ReadOnlyLocal(refusals),
        "s3": lambda: _s3(refusals, options),
        "gcs": lambda: _gcs(refusals, options),
        "azure": lambda: _azure(refusals, options),
    }
    return Storage(makers[destination.backend](), destination.url), refusals
