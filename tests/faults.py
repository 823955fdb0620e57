r"""Fault injection for faults a real server will not produce on demand.

Each class is the real filesystem (local folder, memory, s3fs talking to the
moto server) with one hook in front of its operations; nothing else is
replaced. A rule fails one kind of operation:

* ``upload``: writing snapshot data (temp files locally, PutObject/UploadPart on S3);
  ``after_bytes`` fails once that many bytes went through;
* ``commit``: making an upload visible (link/rename locally, CompleteMultipartUpload);
* ``copy``: the copy to the latest; ``manifest``: writing a manifest;
* ``list``: listing a folder; ``lock``: writing a lock or reservation;
* ``delete``: deleting an object; ``request`` (S3 only): any S3 API call.

``where`` narrows a rule to paths matching that regular expression
(``"timestamped/"``, ``r"_latest\.manifest"``, ``r"latest\.lock$"``). The error
may be any callable: the crash test passes one that SIGKILLs the process at that
very step.
"""

from __future__ import annotations

import re
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
