"""Any fsspec filesystem whose writes are visible while they happen: ``memory://`` and the rest.

A write goes to a hidden temp file beside the target and is moved into place
on commit; an exclusive commit checks and moves under a process-wide lock, which
makes it a conditional create for in-process filesystems such as ``memory://``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .backend import Backend, Capabilities, RunBlocking, WriteOptions, Writer, committing, temp_name

_move_lock = threading.Lock()


class FilesystemBackend(Backend):
    """The fallback for every protocol no other backend module claims.

    An exclusive create here is a check and a move under a lock of this
    process: other processes writing to the same filesystem are not held back.
    """

    capabilities = Capabilities(conditional_create=False)

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        def write() -> None:
            with committing(self.open_writer(full, options, len(data), None)) as writer:
                writer.write(data)

        await asyncio.to_thread(write)

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        return MoveWriter(self, full, options.exclusive)


class MemoryBackend(FilesystemBackend):
    """``memory://``: in this process only, so the process lock makes an exclusive create conditional."""

    capabilities = Capabilities(conditional_create=True, server_side_copy=True)

    def display_uri(self, full: str) -> str:
        # memory paths start with "/": show memory://a/b, not memory:///a/b
        return f"memory://{full.lstrip('/')}"


class MoveWriter(Writer):
    """Temp object then rename, for filesystems whose writes are visible while they happen."""

    def __init__(self, backend: Backend, full: str, exclusive: bool) -> None:
        self.fs = backend.fs
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
            with _move_lock:  # makes check-then-move atomic for in-process filesystems (memory://)
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
