r"""Fault injection for faults a real server will not produce on demand.

Each class is the real filesystem (local folder, memory, s3fs talking to moto
or SeaweedFS, adlfs talking to Azurite, gcsfs talking to fake-gcs-server) with
one hook in front of its operations; nothing else is replaced. A rule fails
one kind of operation:

* ``upload``: writing snapshot data (temp files locally, PutObject/UploadPart on S3, Put Blob/Put
  Block on Azure, a resumable upload's chunks on GCS); ``after_bytes`` fails once that many bytes
  went through;
* ``commit``: making an upload visible (link/rename locally, CompleteMultipartUpload, Put Block
  List, the last chunk of a GCS upload);
* ``copy``: the copy to the latest; ``manifest``: writing a manifest; ``descriptor``: writing a
  Data Package descriptor;
* ``list``: listing a folder; ``lock``: writing a lock or reservation;
* ``delete``: deleting an object; ``request`` (object stores): any request to the service.

On S3 and GCS every check runs before its request is sent. On Azure a staged
block (Put Block) is checked once the service has it, as the bytes of an upload
that stays open: a kill there leaves staged blocks, as one on S3 leaves the
multipart upload that CreateMultipartUpload opened before the first part.

``where`` narrows a rule to paths matching that regular expression
(``"timestamped/"``, ``r"_latest\.manifest"``, ``r"latest\.lock$"``). The error
may be any callable: the crash test passes one that SIGKILLs the process at that
very step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem


@dataclass
class Rule:
    op: str
    error: Callable[[], BaseException]
    skip: int = 0
    times: int | None = 1
    after_bytes: int | None = None
    where: str | None = None
    seen: int = 0
    fired: int = 0


class Faults:
    """The rules of one faulty filesystem, and a log of the operations it saw."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.calls: list[str] = []
        self.log: list[tuple[str, str]] = []
        """``(op, path)`` of every operation seen."""
        self.bytes = 0

    def fail(
        self,
        op: str,
        error: Callable[[], BaseException] = lambda: ConnectionResetError(104, "Connection reset by peer"),
        *,
        skip: int = 0,
        times: int | None = 1,
        after_bytes: int | None = None,
        where: str | None = None,
    ) -> Faults:
        self.rules.append(Rule(op, error, skip, times, after_bytes, where))
        return self

    def check(self, op: str, nbytes: int = 0, path: str = "") -> None:
        self.calls.append(op)
        self.log.append((op, path))
        if op == "upload":
            self.bytes += nbytes
        for rule in self.rules:
            if rule.op != op or (rule.times is not None and rule.fired >= rule.times):
                continue
            if rule.where is not None and not re.search(rule.where, path):
                continue
            if rule.after_bytes is not None:
                if self.bytes < rule.after_bytes:
                    continue
            else:
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
            rule.fired += 1
            raise rule.error()


def _op_for_path(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if ".lock" in name:
        return "lock"
    if ".manifest.json" in name:
        return "manifest"
    if ".datapackage.json" in name:
        return "descriptor"
    return "upload"


class _CountingFile:
    def __init__(self, inner: Any, faults: Faults, op: str, path: str) -> None:
        self._inner, self._faults, self._op, self._path = inner, faults, op, path

    def write(self, data: bytes) -> int:
        self._faults.check(self._op, len(data), self._path)
        return int(self._inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


class _FaultyMixin:
    """The hooks local and memory filesystems share; ``mv`` differs and is defined by each."""

    cachable = False
    faults: Faults

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        handle = super()._open(path, mode, *args, **kwargs)  # type: ignore[misc]
        if "w" in mode or "x" in mode:
            return _CountingFile(handle, self.faults, _op_for_path(path), path)
        return handle

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.faults.check("copy", path=path2)
        super().cp_file(path1, path2, **kwargs)  # type: ignore[misc]

    def rm_file(self, path: str) -> None:
        self.faults.check("delete", path=path)
        super().rm_file(path)  # type: ignore[misc]

    def ls(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.faults.check("list", path=path)
        return super().ls(path, *args, **kwargs)  # type: ignore[misc]


class FaultyLocal(_FaultyMixin, LocalFileSystem):
    def __init__(self, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults

    def link(self, src: str, dst: str, **kwargs: Any) -> None:
        self.faults.check("commit", path=dst)
        super().link(src, dst, **kwargs)

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        op = "copy" if "_latest" in path2.rsplit("/", 1)[-1] and "manifest" not in path2 else "commit"
        self.faults.check(op, path=path2)
        super().mv(path1, path2, *args, **kwargs)


class FaultyMemory(_FaultyMixin, MemoryFileSystem):
    def __init__(self, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        self.faults.check(_op_for_path(path2) if _op_for_path(path2) != "upload" else "commit", path=path2)
        super().mv(path1, path2, *args, **kwargs)


def faulty_s3(faults: Faults, **options: Any) -> Any:
    """An s3fs filesystem whose S3 API calls pass through ``faults`` first."""
    import s3fs
    from fsspec.asyn import sync_wrapper

    class FaultyS3(s3fs.S3FileSystem):  # type: ignore[misc]
        cachable = False

        async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
            key = str(kwargs.get("Key", ""))
            faults.check("request", path=f"{method} {key}")
            if method in {"put_object", "upload_part"}:
                body = kwargs.get("Body", b"")
                op = _op_for_path(key)
                faults.check(op, len(body) if op == "upload" and isinstance(body, (bytes, bytearray)) else 0, key)
            elif method == "complete_multipart_upload":
                faults.check("commit", path=key)
            elif method == "copy_object":
                faults.check("copy", path=key)
            elif method in {"list_objects_v2", "list_objects"}:
                faults.check("list", path=str(kwargs.get("Prefix", "")))
            elif method in {"delete_object", "delete_objects"}:
                faults.check("delete", path=key)
            return await super()._call_s3(method, *akwarglist, **kwargs)

        # the base class's blocking twin is bound to the base coroutine: route it through the hook too
        call_s3 = sync_wrapper(_call_s3)

    return FaultyS3(**{k: v for k, v in options.items() if k != "skip_instance_cache"})


# --- Azure ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AzureRequest:
    op: str | None
    """The fault operation, None for reads and requests on containers or properties."""
    key: str
    """The blob it names, or the prefix it lists."""
    size: int = 0
    staged: bool = False
    """A Put Block: checked once the service has the block."""


def _azure_request(method: str, url: str, headers: Any) -> _AzureRequest:
    """What one Blob service request is, for the fault hook."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    segments = unquote(parts.path).lstrip("/").split("/", 2)  # account, container, blob
    key = segments[2] if len(segments) > 2 else ""
    size = int(headers.get("Content-Length") or 0)
    comp = query.get("comp")
    if method == "GET" and comp == "list":
        return _AzureRequest("list", query.get("prefix", ""))
    if method == "DELETE" and key:
        return _AzureRequest("delete", key)
    if method != "PUT" or not key or comp not in {None, "block", "blocklist"}:
        return _AzureRequest(None, key)
    if "x-ms-copy-source" in headers:
        return _AzureRequest("copy", key)
    if comp == "block":
        return _AzureRequest("upload", key, size, staged=True)
    if comp == "blocklist":
        return _AzureRequest("commit", key)
    op = _op_for_path(key)  # Put Blob: a lock, a manifest or a small archive, in one request
    return _AzureRequest(op, key, size if op == "upload" else 0)


def faulty_azure(faults: Faults, **options: Any) -> Any:
    """An adlfs filesystem whose Blob service requests pass through ``faults`` first (its HTTP transport wrapped)."""
    from adlfs import AzureBlobFileSystem
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob.aio import BlobServiceClient

    class FaultyTransport(AioHttpTransport):  # type: ignore[misc]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            seen = _azure_request(request.method, request.url, request.headers)
            faults.check("request", path=f"{request.method} {seen.key}")
            if seen.op is not None and not seen.staged:
                faults.check(seen.op, seen.size, seen.key)
            response = await super().send(request, **kwargs)
            if seen.op is not None and seen.staged:
                faults.check(seen.op, seen.size, seen.key)
            return response

    class FaultyAzure(AzureBlobFileSystem):  # type: ignore[misc]
        cachable = False

        def do_connect(self) -> None:
            # Faults are raised under azure-storage-blob's own retries (15 s, then longer, between tries),
            # which would retry each injected error: they are off, as the hook of s3fs and gcsfs sits above
            # botocore's and gcsfs's. csvpublish's RetryPolicy does the retrying.
            self.service_client = BlobServiceClient.from_connection_string(
                self.connection_string, transport=FaultyTransport(), retry_total=0
            )

    return FaultyAzure(**{k: v for k, v in options.items() if k != "skip_instance_cache"})


def azure_error(status: int, code: str | None, message: str = "the service said no") -> BaseException:
    """The exception azure-storage-blob raises for a Put Blob the service answers ``status`` with ``code``.

    Built by the real client, from a canned HTTP response: the same class, status and error code
    as a service's answer.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport, RequestsTransportResponse
    from azure.storage.blob import BlobClient

    class Canned(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            response = requests.Response()
            response.status_code, response.reason, response.url = status, "Error", request.url
            response.headers["Content-Type"] = "application/xml"
            if code:
                response.headers["x-ms-error-code"] = code
                body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
                response._content = f"<?xml version='1.0' encoding='utf-8'?>{body}".encode()
            else:
                response._content = b""
            return RequestsTransportResponse(request, response)

    client = BlobClient("http://127.0.0.1:9/devstoreaccount1", "container", "key", transport=Canned(), retry_total=0)
    try:
        client.upload_blob(b"x", overwrite=False)
    except Exception as exc:
        return exc
    raise AssertionError(f"azure-storage-blob raised nothing for {status} {code}")


# --- GCS --------------------------------------------------------------------------------------------


def _gcs_simple_upload(data: Any) -> tuple[str, int]:
    """The object name and the data size of a gcsfs one-request upload (a multipart/related body)."""
    raw = bytes(data)
    _, described, rest = raw.split(b"\n\n", 2)
    name = json.loads(described.split(b"\n--==0==", 1)[0])["name"]
    return str(name), len(rest) - len(b"\n--==0==--")


def gcsfs_error(status: int, message: str = "the service said no") -> BaseException:
    """What gcsfs raises for an HTTP status: ``gcsfs.retry.validate_response``'s own exception."""
    from gcsfs.retry import validate_response

    body = json.dumps({"error": {"code": status, "message": message}}).encode()
    try:
        validate_response(status, body, "/b/bucket/o/key")
    except Exception as exc:
        return exc
    raise AssertionError(f"gcsfs raised nothing for {status}")


def faulty_gcs(faults: Faults, **options: Any) -> Any:
    """A gcsfs filesystem whose JSON API requests pass through ``faults`` first."""
    import gcsfs
    from fsspec.asyn import sync_wrapper

    uploads: dict[str, str] = {}
    """The object name of each resumable upload, by its session URL."""

    class FaultyGCS(gcsfs.GCSFileSystem):  # type: ignore[misc]
        cachable = False

        async def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            resumable = kwargs.get("uploadType") == "resumable"
            key = self._check(method, path, args, kwargs)
            out = await super()._call(method, path, *args, **kwargs)
            if resumable:  # remember which object this upload session writes
                headers = out[0]
                uploads[str(headers["Location"])] = key
            return out

        def _check(self, method: str, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            key = ""
            if path in uploads:  # a chunk of a resumable upload; the last one (a known size) commits it
                key = uploads[path]
                span = str((kwargs.get("headers") or {}).get("Content-Range", ""))
                size = int((kwargs.get("headers") or {}).get("Content-Length") or 0)
                faults.check("request", path=f"{method} {key}")
                if method == "POST" and not span.startswith("bytes */"):
                    faults.check("upload", size, key)
                if method == "POST" and not span.endswith("/*"):
                    faults.check("commit", path=key)
                return key
            if kwargs.get("uploadType") == "resumable":
                key = unquote(path.split("?name=", 1)[1])
            elif kwargs.get("uploadType") == "multipart":
                key, size = _gcs_simple_upload(kwargs["data"])
                faults.check("request", path=f"{method} {key}")
                op = _op_for_path(key)
                faults.check(op, size if op == "upload" else 0, key)
                return key
            elif "rewriteTo" in path:
                key = str(args[3])
            elif len(args) > 1:
                key = str(args[1])
            faults.check("request", path=f"{method} {key}")
            if "rewriteTo" in path:
                faults.check("copy", path=key)
            elif method == "GET" and path == "b/{}/o":
                faults.check("list", path=str(kwargs.get("prefix", "")))
            elif method == "DELETE" and path == "b/{}/o/{}":
                faults.check("delete", path=key)
            return key

        # the base class's blocking twin (GCSFile's chunks use it) is bound to the base coroutine
        call = sync_wrapper(_call)

    return FaultyGCS(**{k: v for k, v in options.items() if k != "skip_instance_cache"})
