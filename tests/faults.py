"""Fault injection for faults a real server will not produce on demand.

Each class is the real filesystem (local folder, memory, s3fs talking to the
moto server) with one hook in front of its operations; nothing else is
replaced. A rule fails one kind of operation:

* ``upload``: writing snapshot data (temp files locally, PutObject/UploadPart on S3);
  ``after_bytes`` fails once that many bytes went through;
* ``commit``: making an upload visible (link/rename locally, CompleteMultipartUpload);
* ``copy``: the copy to the latest; ``manifest``: writing a manifest;
* ``list``: listing a folder; ``lock``: writing a lock or reservation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem


@dataclass
class Rule:
    op: str
    error: Callable[[], BaseException]
    skip: int = 0
    times: int | None = 1
    after_bytes: int | None = None
    seen: int = 0
    fired: int = 0


class Faults:
    """The rules of one faulty filesystem, and a log of the operations it saw."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.calls: list[str] = []
        self.bytes = 0

    def fail(
        self,
        op: str,
        error: Callable[[], BaseException] = lambda: ConnectionResetError(104, "Connection reset by peer"),
        *,
        skip: int = 0,
        times: int | None = 1,
        after_bytes: int | None = None,
    ) -> Faults:
        self.rules.append(Rule(op, error, skip, times, after_bytes))
        return self

    def check(self, op: str, nbytes: int = 0) -> None:
        self.calls.append(op)
        if op == "upload":
            self.bytes += nbytes
        for rule in self.rules:
            if rule.op != op or (rule.times is not None and rule.fired >= rule.times):
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
    return "upload"


class _CountingFile:
    def __init__(self, inner: Any, faults: Faults, op: str) -> None:
        self._inner, self._faults, self._op = inner, faults, op

    def write(self, data: bytes) -> int:
        self._faults.check(self._op, len(data))
        return int(self._inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


class FaultyLocal(LocalFileSystem):
    cachable = False

    def __init__(self, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        handle = super()._open(path, mode, *args, **kwargs)
        if "w" in mode or "x" in mode:
            return _CountingFile(handle, self.faults, _op_for_path(path))
        return handle

    def link(self, src: str, dst: str, **kwargs: Any) -> None:
        self.faults.check("commit")
        super().link(src, dst, **kwargs)

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        self.faults.check("copy" if "_latest" in path2.rsplit("/", 1)[-1] and "manifest" not in path2 else "commit")
        super().mv(path1, path2, *args, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.faults.check("copy")
        super().cp_file(path1, path2, **kwargs)

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        self.faults.check("list")
        return super().ls(path, detail=detail, **kwargs)


class FaultyMemory(MemoryFileSystem):
    cachable = False

    def __init__(self, faults: Faults, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.faults = faults

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        handle = super()._open(path, mode, *args, **kwargs)
        if "w" in mode or "x" in mode:
            return _CountingFile(handle, self.faults, _op_for_path(path))
        return handle

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        self.faults.check(_op_for_path(path2) if _op_for_path(path2) != "upload" else "commit")
        super().mv(path1, path2, *args, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.faults.check("copy")
        super().cp_file(path1, path2, **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        self.faults.check("list")
        return super().ls(path, detail=detail, **kwargs)


def faulty_s3(faults: Faults, **options: Any) -> Any:
    """An s3fs filesystem whose S3 API calls pass through ``faults`` first."""
    import s3fs

    class FaultyS3(s3fs.S3FileSystem):  # type: ignore[misc]
        cachable = False

        async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
            key = str(kwargs.get("Key", ""))
            if method in {"put_object", "upload_part"}:
                body = kwargs.get("Body", b"")
                op = _op_for_path(key)
                faults.check(op, len(body) if op == "upload" and isinstance(body, (bytes, bytearray)) else 0)
            elif method == "complete_multipart_upload":
                faults.check("commit")
            elif method == "copy_object":
                faults.check("copy")
            elif method in {"list_objects_v2", "list_objects"}:
                faults.check("list")
            return await super()._call_s3(method, *akwarglist, **kwargs)

    return FaultyS3(**{k: v for k, v in options.items() if k != "skip_instance_cache"})
