"""Azure uploads in blocks: staged one request each, then one Put Block List (or one Put Blob under a block).

The writer of :class:`~csvpublish.storage.azure.AzureBackend`, in a module of its own for length.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import uuid
from typing import Any

from fsspec.asyn import sync

from .azure import ERRORS, AzureBackend, content_settings
from .backend import RunBlocking, WriteOptions
from .buffered import PartBuffer, PartedWriter
from .parts import PartedUpload, PartsWriter, Piece

logger = logging.getLogger("csvpublish")


class AzureWriter(PartedWriter):
    """Blocks staged one request each, so each is retried on its own, then one Put Block List.

    Data under ``part_size`` goes up in one Put Blob at commit. Either way the
    blob appears only on commit, created conditionally (``If-None-Match: *``)
    when exclusive; ``discard`` deletes the staged blocks.
    """

    errors = ERRORS

    def __init__(
        self, backend: AzureBackend, full: str, options: WriteOptions, part_size: int, run: RunBlocking
    ) -> None:
        self.backend = backend
        self.fs = backend.fs
        self.full = full
        self.run = run
        self.options = options
        self.part_size = part_size
        self.pending = PartBuffer()
        self.blocks: builtins.list[str] = []
        self.md5 = hashlib.md5(usedforsecurity=False)  # stored as the blob's Content-MD5, as Put Blob does
        self.finished = False

    def _call(self, method: str, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        client = self.backend.blob(self.full)
        return self.run(self.name, lambda: sync(self.fs.loop, getattr(client, method), *args, **kwargs), retry=retry)

    def write(self, data: bytes) -> None:
        """Buffer ``data``; stage a block once ``part_size`` bytes are waiting."""
        if not data:
            return
        self.pending.add(data)
        self.md5.update(data)
        if self.pending.size >= self.part_size:
            self._send_part(self.pending.take())

    def _started(self) -> bool:
        return bool(self.blocks)

    def _send_part(self, body: bytes) -> None:
        block_id = uuid.uuid4().hex  # fixed length, as Azure wants for every block of a blob
        self._call("stage_block", block_id, body, length=len(body))
        self.blocks.append(block_id)

    def _forget(self) -> None:
        self.backend.forget(self.full)

    def _settings(self) -> Any:
        return content_settings(self.options.content_type, self.md5.digest(), cache_control=self.options.cache_control)

    def _put(self, body: bytes) -> None:
        try:
            self._call("upload_blob", body, overwrite=not self.options.exclusive, content_settings=self._settings())
        except FileExistsError:
            # a retried conditional Put Blob whose first attempt landed: the blob is ours
            if not self._holds(lambda found: bytes(found.content_settings.content_md5 or b"") == self.md5.digest()):
                raise

    def _assemble(self) -> None:
        from azure.storage.blob import BlobBlock

        headers = {"If-None-Match": "*"} if self.options.exclusive else {}
        blocks = [BlobBlock(block_id=block) for block in self.blocks]
        try:
            self._call("commit_block_list", blocks, content_settings=self._settings(), headers=headers)
        except FileExistsError:
            # a retried conditional Put Block List whose first attempt landed: the blob is ours
            committed = self._call("get_block_list", "committed", retry=False)[0]
            if [block.id for block in committed] != self.blocks:
                raise

    def _holds(self, mine: Any) -> bool:
        try:
            return bool(mine(self._call("get_blob_properties", retry=False)))
        except Exception:
            return False

    def discard(self) -> None:
        self.pending.clear()
        if self.finished or not self.blocks:
            return
        self.blocks = []
        try:
            self.run(self.name, lambda: sync(self.fs.loop, self.backend.drop_uncommitted, self.full))
        except Exception as exc:  # best effort: cleanup() removes what is left
            logger.warning("could not drop the staged blocks of %s: %s", self.name, type(exc).__name__)


class AzurePartsWriter(PartsWriter):
    """A partition's blocks, staged on the blob under ids fixed by their part numbers (a retry stages them again)."""

    def __init__(self, backend: AzureBackend, upload: PartedUpload, index: int, run: RunBlocking) -> None:
        super().__init__(upload, index, run)
        self.backend = backend

    def send(self, number: int, nth: int, body: bytes) -> Piece:
        block_id = f"part-{number:010d}"  # one length for every block of the blob, as Azure wants
        client = self.backend.blob(self.upload.path)
        fs = self.backend.fs
        self.run(self.name, lambda: sync(fs.loop, client.stage_block, block_id, body, length=len(body)))
        return Piece(number, len(body), block_id)


async def commit_blocks(client: Any, upload: PartedUpload, pieces: builtins.list[tuple[Piece, ...]]) -> None:
    """One Put Block List of every partition's blocks, in order (``If-None-Match: *`` when exclusive)."""
    from azure.storage.blob import BlobBlock

    blocks = [BlobBlock(block_id=piece.tag) for partition in pieces for piece in partition]
    options = upload.options
    headers = {"If-None-Match": "*"} if options.exclusive else {}
    settings = content_settings(options.content_type, cache_control=options.cache_control)
    await client.commit_block_list(blocks, content_settings=settings, headers=headers)
