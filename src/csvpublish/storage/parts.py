"""One object from many processes: each uploads its partition as parts, then the service assembles them.

::

    coordinator        Parts.begin()      S3 CreateMultipartUpload; a staging folder elsewhere
    each worker        Parts.writer()     its partition's parts, numbered from its own block of numbers
    coordinator        Parts.assemble()   S3 CompleteMultipartUpload, GCS compose, Azure Put Block List,
                                          a local concatenation; then the staging folder is removed

What travels between them is small and picklable: a :class:`PartedUpload` to the
workers, a tuple of :class:`Piece` back. Part numbers are fixed by the partition's
index and its order of parts, so a partition written twice (a retried task)
uploads the same parts again, harmlessly. Where a backend stages parts as objects,
they live in ``<archive>.parts/``, a folder no listing of versions reads; a
publish that dies leaves it to ``cleanup()``, which finds it with the backend's
:meth:`~csvpublish.storage.backend.Backend.incomplete_uploads`. Backends say they can do
this with :attr:`~csvpublish.storage.backend.Capabilities.parallel_parts`.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING

from csvpublish.errors import InputError

from .backend import PART_SIZE, RunBlocking, WriteOptions, Writer
from .buffered import PartBuffer

if TYPE_CHECKING:
    from .core import Storage

STAGED = "staged parts"
"""The upload id of parts staged as objects in ``<archive>.parts/`` (GCS, a local folder, S3's heads)."""
STAGING_SUFFIX = ".parts"
GROWTH_STEPS = 8
"""Within one partition the part size grows by ``part_size`` every ``stride // GROWTH_STEPS`` parts."""


def staging_of(full: str) -> str:
    """The folder that holds the staged parts of the object ``full``.

    >>> staging_of("bucket/meta/timestamped/books_20261126_053708.csv.gz")
    'bucket/meta/timestamped/books_20261126_053708.csv.gz.parts'
    """
    return full + STAGING_SUFFIX


@dataclass(frozen=True)
class PartedUpload:
    """One object being assembled from parts: what each worker needs to add its own."""

    path: str
    """The full path of the object."""
    upload_id: str
    """S3's multipart upload id; :data:`STAGED` where parts are objects or blocks."""
    options: WriteOptions
    stride: int
    """Part numbers reserved for each partition: partition ``i`` numbers from ``1 + i * stride``."""
    part_size: int = PART_SIZE

    @property
    def staging(self) -> str:
        return staging_of(self.path)

    def number(self, index: int, nth: int) -> int:
        """The part number of partition ``index``'s ``nth`` part (from 0)."""
        return 1 + index * self.stride + nth

    def target(self, nth: int) -> int:
        """Bytes to gather for a partition's ``nth`` part: it grows, so ``stride`` parts hold ~4.5 x stride parts."""
        return self.part_size * (1 + nth // max(1, self.stride // GROWTH_STEPS))


@dataclass(frozen=True)
class Piece:
    """One part a worker uploaded."""

    number: int
    size: int
    tag: str
    """The part's ETag (S3), block id (Azure) or staged object's full path."""
    staged: bool = False
    """An object in the staging folder rather than a part of the upload."""


class PartsWriter(Writer):
    """A partition's bytes as parts: gathered to :meth:`PartedUpload.target` bytes, each sent by :meth:`send`.

    With ``min_part`` (S3: 5 MiB) the last full part is held back until more
    data comes, so every part but a partition's only one is at least that big;
    memory is two parts.
    """

    min_part = 0

    def __init__(self, upload: PartedUpload, index: int, run: RunBlocking) -> None:
        self.upload = upload
        self.index = index
        self.run = run
        self.pending = PartBuffer()
        self.ready: bytes | None = None
        self.pieces: builtins.list[Piece] = []

    def send(self, number: int, nth: int, body: bytes) -> Piece:
        """Upload one part (blocking, through ``run``)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.pending.add(data)
        if self.pending.size >= self.upload.target(len(self.pieces) + (self.ready is not None)):
            body = self.pending.take()
            if not self.min_part:
                self._send(body)
                return
            if self.ready is not None:
                self._send(self.ready)
            self.ready = body

    def _send(self, body: bytes) -> None:
        nth = len(self.pieces)
        if nth >= self.upload.stride:
            raise InputError(
                f"partition {self.index} needs more than the {self.upload.stride} parts each partition has; "
                "split the data into more, smaller partitions"
            )
        self.pieces.append(self.send(self.upload.number(self.index, nth), nth, body))

    def finish(self) -> tuple[Piece, ...]:
        """Send what is left (the last part, of any size) and return the partition's pieces in order."""
        last = (self.ready or b"") + self.pending.take()
        self.ready = None
        if last:
            self._send(last)
        return tuple(self.pieces)

    def commit(self) -> None:
        raise NotImplementedError("a partition's parts are assembled by the coordinator: call finish()")

    def discard(self) -> None:
        """Drop what is buffered; parts already sent go with the whole upload's abort."""
        self.ready = None
        self.pending.clear()


class Parts:
    """The partitioned upload of one :class:`~csvpublish.Storage` (paths relative to its root)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.backend = storage.backend
        if not storage.capabilities.parallel_parts:
            raise InputError(
                f"{storage.uri()} cannot assemble one object from parts uploaded by several processes "
                "(memory:// lives in one process); publish to a folder, S3, GCS or Azure"
            )

    async def begin(self, rel: str, options: WriteOptions, partitions: int) -> PartedUpload:
        """Start the upload of ``rel`` for ``partitions`` partitions (S3's CreateMultipartUpload)."""
        if partitions < 1 or partitions > self.backend.max_parts:
            raise InputError(f"{partitions} partitions: give 1 to {self.backend.max_parts} on {self.storage.uri()}")
        full, st = self.storage.path(rel), self.storage
        upload_id = await st.retrying(st.uri(rel), lambda: self.backend.begin_parts(full, options))
        return PartedUpload(full, upload_id, options, stride=self.backend.max_parts // partitions)

    def writer(self, upload: PartedUpload, index: int) -> PartsWriter:
        """The blocking writer of partition ``index``'s parts (on a worker)."""
        writer = self.backend.parts_writer(upload, index, self.storage.blocking)
        writer.name = self.backend.display_uri(upload.path)
        writer.errors = self.backend.errors
        return writer

    async def assemble(self, upload: PartedUpload, pieces: builtins.list[tuple[Piece, ...]]) -> None:
        """Make the object from every partition's pieces, in order, once; then drop the staging folder."""
        try:
            await self.backend.assemble(upload, pieces)
        except Exception as exc:
            raise self.storage.translate(exc, self.backend.display_uri(upload.path)) from exc

    async def abort(self, upload: PartedUpload) -> None:
        """Abort the upload: its parts and staging folder go, the object never appears."""
        what = self.backend.display_uri(upload.path)
        await self.storage.retrying(what, lambda: self.backend.abort_parts(upload))
