"""A folder on this machine: temp file, fsync, then rename (or a hard link for an exclusive create)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from csvpublish.errors import InputError

from .backend import Backend, Capabilities, RunBlocking, WriteOptions, Writer, committing, temp_name

logger = logging.getLogger("csvpublish")


class LocalBackend(Backend):
    """``file://`` and plain paths."""

    capabilities = Capabilities(server_side_copy=True, writer_pids=True)

    def display_uri(self, full: str) -> str:
        return full

    async def ensure_folder(self, root: str, *, create: bool) -> bool:
        if create:
            await asyncio.to_thread(os.makedirs, root or ".", exist_ok=True)
            return True
        return await asyncio.to_thread(os.path.isdir, root or ".")

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        def write() -> None:
            with committing(LocalWriter(self.fs, full, options.exclusive)) as writer:
                writer.write(data)

        await asyncio.to_thread(write)

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        return LocalWriter(self.fs, full, options.exclusive)

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        await asyncio.to_thread(_copy, self.fs, src, dst)


class LocalWriter(Writer):
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
    writer = LocalWriter(LocalFileSystem(), full, exclusive)
    writer.name = full
    return writer


def _copy(fs: AbstractFileSystem, src: str, dst: str) -> None:
    """Copy to a temp file beside ``dst``, fsync it, rename it over ``dst``."""
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
