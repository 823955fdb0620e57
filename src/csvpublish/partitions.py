"""The worker's side of a partitioned publish: one partition to CSV, to one gzip member, to parts.

:class:`PartitionWriter` is small and picklable: the coordinator
(:meth:`Publisher.begin_partitioned <csvpublish.Publisher.begin_partitioned>`) makes it and any engine
(Dask, a process pool, threads) ships it to the workers. Each call formats one
partition with the single pass of :mod:`csvpublish.pipeline` (same formatter,
same deterministic gzip, same bounded memory), uploads it as parts numbered by
the partition's index, and returns a :class:`PartReceipt`. Only partition 0
writes the header (and the byte-order mark). A partition with no CSV bytes
(empty, after partition 0) stores nothing.

:class:`Digester` reads the assembled object once: the sha256 of the whole
object and of its CSV cannot be combined from the partitions' hashes, so they
are measured, on whichever machine runs it (Dask runs it on a worker).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fsspec.spec import AbstractFileSystem

from . import pipeline
from ._sync import run_sync
from .compression import GzipCompressor
from .dialect import Dialect
from .errors import IntegrityError
from .publisher.verify import read_measured
from .retry import RetryPolicy
from .storage import Storage
from .storage.parts import PartedUpload, Parts, Piece

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
READ_BLOCK = 16 * 2**20


@dataclass(frozen=True)
class Place:
    """A :class:`~csvpublish.Storage` as it travels to another process: its filesystem, root and retries."""

    fs: AbstractFileSystem
    root: str
    retry: RetryPolicy

    @classmethod
    def of(cls, storage: Storage) -> Place:
        return cls(storage.fs, storage.root, storage.retry)

    def open(self) -> Storage:
        return Storage(self.fs, self.root, retry=self.retry)


@dataclass(frozen=True)
class PartReceipt:
    """What one partition's worker uploaded: its pieces and the hashes of its bytes."""

    index: int
    pieces: tuple[Piece, ...]
    size: int
    """Stored bytes (its gzip member; 0 when it holds no CSV bytes)."""
    sha256: str
    csv_size: int
    csv_sha256: str
    records: int | None
    columns: tuple[str, ...]
    column_types: tuple[str | None, ...] | None = None

    def describe(self, offset: int) -> dict[str, Any]:
        """Its entry in the manifest's ``parts``."""
        return {
            "partition": self.index,
            "offset": offset,
            "size": self.size,
            "sha256": self.sha256,
            "csv_size": self.csv_size,
            "csv_sha256": self.csv_sha256,
            "record_count": self.records,
            "uploaded_parts": len(self.pieces),
        }


@dataclass(frozen=True)
class PartitionWriter:
    """Formats, compresses and uploads one partition on a worker; picklable.

    >>> # receipt = writer.write_sync(3, partition)    # a pandas DataFrame, a list of records, ...
    """

    place: Place
    upload: PartedUpload
    partitions: int
    headers: tuple[str, ...] | None = None
    dialect: Dialect = field(default_factory=Dialect)
    escape_formulas: bool = False
    compression: bool = True
    compression_level: int = 1
    compression_backend: str | None = None

    def write_sync(self, index: int, source: Any) -> PartReceipt:
        """Blocking :meth:`write`, for worker threads and processes."""
        return run_sync(self.write(index, source))

    async def write(self, index: int, source: Any) -> PartReceipt:
        """Publish partition ``index`` of ``source`` (any source :meth:`Publisher.publish` takes) as its parts."""
        if not 0 <= index < self.partitions:
            raise ValueError(f"partition {index} of {self.partitions}")
        if index > 0 and isinstance(source, (list, tuple)) and not source:
            return PartReceipt(index, (), 0, EMPTY_SHA256, 0, EMPTY_SHA256, 0, self.headers or ())
        st = self.place.open()
        sink = Parts(st).writer(self.upload, index)
        compressor = (
            GzipCompressor(self.compression_level, self.compression_backend) if self.compression else None
        )
        dialect = self.dialect if index == 0 else replace(self.dialect, header=False, bom=False)
        stats = await pipeline.run(
            source=source,
            headers=self.headers,
            escape_formulas=self.escape_formulas,
            sink=sink,
            compressor=compressor,
            dialect=dialect,
        )
        if stats.csv_size == 0:  # an empty partition stores nothing, not an empty gzip member
            sink.discard()
            return PartReceipt(index, (), 0, EMPTY_SHA256, 0, EMPTY_SHA256, stats.record_count, tuple(stats.columns))
        pieces = await asyncio.to_thread(sink.finish)
        types = tuple(stats.column_types) if stats.column_types is not None else None
        return PartReceipt(
            index, pieces, stats.size, stats.sha256, stats.csv_size, stats.csv_sha256,
            stats.record_count, tuple(stats.columns), types,
        )  # fmt: skip


@dataclass(frozen=True)
class Digest:
    """What one read of an assembled object measured."""

    size: int
    sha256: str
    csv_size: int
    csv_sha256: str
    part_sha256: tuple[str, ...]
    """The sha256 of each partition's bytes, cut at the sizes the receipts gave."""


@dataclass(frozen=True)
class Digester:
    """Reads an assembled object once for its real hashes; picklable, so an engine can run it on a worker."""

    place: Place
    rel: str
    compressed: bool
    header: bool
    sizes: tuple[int, ...]

    def __call__(self) -> Digest:
        st = self.place.open()
        return st.blocking(st.uri(self.rel), lambda: self._read(st))

    def _read(self, st: Storage) -> Digest:
        # No record count: once every partition's bytes hash as its worker's did, its receipt's count holds.
        bounds = _Bounds(self.sizes)
        m = read_measured(
            st, self.rel, compressed=self.compressed, header=self.header, count=False, block=READ_BLOCK,
            each=bounds.feed,
        )  # fmt: skip
        if m.csv_sha256 is None or m.csv_size is None:
            raise IntegrityError(f"{st.uri(self.rel)} is not a complete gzip stream")
        return Digest(m.size, m.sha256, m.csv_size, m.csv_sha256, bounds.hashes())


class _Bounds:
    """The sha256 of each stretch of a stream whose sizes are known."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = list(sizes)
        self.done: list[str] = []
        self.current = hashlib.sha256()
        self.left = self.sizes[0] if self.sizes else 0
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self.left == 0 and len(self.done) < len(self.sizes):
            self.done.append(self.current.hexdigest())
            self.current = hashlib.sha256()
            if len(self.done) < len(self.sizes):
                self.left = self.sizes[len(self.done)]

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and len(self.done) < len(self.sizes):
            take = view[: self.left]
            self.current.update(take)
            self.left -= len(take)
            view = view[len(take) :]
            self._skip_empty()

    def hashes(self) -> tuple[str, ...]:
        return tuple(self.done)
