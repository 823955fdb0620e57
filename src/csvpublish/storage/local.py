"""A folder on this machine: temp file, fsync, then rename (or a hard link for an exclusive create)."""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import shutil
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from csvpublish.errors import InputError

from .backend import Backend, Capabilities, RunBlocking, Upload, WriteOptions, Writer, committing, temp_name
from .parts import STAGED, STAGING_SUFFIX, PartedUpload, PartsWriter, Piece, staging_of

logger = logging.getLogger("csvpublish")


class LocalBackend(Backend):
    """``file://`` and plain paths."""

    capabilities = Capabilities(server_side_copy=True, writer_pids=True, parallel_parts=True)

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

    # --- parts from several processes: files of a staging folder, concatenated --------------

    async def begin_parts(self, full: str, options: WriteOptions) -> str:
        await asyncio.to_thread(os.makedirs, staging_of(full), exist_ok=True)
        return STAGED

    def parts_writer(self, upload: PartedUpload, index: int, run: RunBlocking) -> PartsWriter:
        return LocalPartsWriter(self, upload, index, run)

    async def assemble(self, upload: PartedUpload, pieces: builtins.list[tuple[Piece, ...]]) -> None:
        def concatenate() -> None:
            with committing(LocalWriter(self.fs, upload.path, upload.options.exclusive)) as writer:
                for piece in (p for partition in pieces for p in partition):
                    with open(piece.tag, "rb") as part:
                        shutil.copyfileobj(part, writer.handle, 2**20)
            shutil.rmtree(upload.staging, ignore_errors=True)

        await asyncio.to_thread(concatenate)

    async def abort_parts(self, upload: PartedUpload) -> None:
        await asyncio.to_thread(shutil.rmtree, upload.staging, True)

    async def incomplete_uploads(self, full_prefix: str) -> builtins.list[Upload]:
        folder, _, start = full_prefix.rpartition("/")

        def staged() -> builtins.list[Upload]:
            try:
                names = os.listdir(folder or ".")
            except FileNotFoundError:
                return []
            return [
                Upload(f"{folder}/{name.removesuffix(STAGING_SUFFIX)}", STAGED)
                for name in sorted(names)
                if name.startswith(start) and name.endswith(STAGING_SUFFIX) and os.path.isdir(f"{folder}/{name}")
            ]

        return await asyncio.to_thread(staged)

    async def abort_upload(self, upload: Upload) -> None:
        await asyncio.to_thread(shutil.rmtree, staging_of(upload.path), True)


class LocalPartsWriter(PartsWriter):
    """Each part a file of the staging folder, written as any local file (temp, fsync, rename)."""

    def __init__(self, backend: LocalBackend, upload: PartedUpload, index: int, run: RunBlocking) -> None:
        super().__init__(upload, index, run)
        self.fs = backend.fs

    def send(self, number: int, nth: int, body: bytes) -> Piece:
        path = f"{self.upload.staging}/{number:06d}"

        def put() -> None:
            with committing(LocalWriter(self.fs, path, exclusive=False)) as writer:  # a retry rewrites the same
                writer.write(body)

        self.run(self.name, put)
        return Piece(number, len(body), path, staged=True)


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
