"""A partitioned publish: many workers write one snapshot, the store assembles it, the coordinator promotes it.

::

    begin     reserve the version, check the bucket, read the latest (as PublishFlow); start the upload
    workers   PartitionWriter.write(i, partition) -> PartReceipt               (csvpublish.partitions)
    commit    check the receipts and the guards; assemble the object from the parts (one request on
              S3 and Azure, a compose tree on GCS); read it once for its real sha256s (Digester, on a
              worker if the engine says so); commit its manifest beside the probe and the lease; promote
    abort     every part and staged object goes; the reservation is released

The reservation is held from ``begin`` to the end, so a coordinator that dies
leaves what ``cleanup()`` already knows: an unfinished upload (or staged parts)
of a dead publish, or an archive without a manifest. The latest never changes
before the commit, and never to anything but a whole, verified snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone

from csvpublish._sync import run_sync
from csvpublish.errors import InputError, IntegrityError, SnapshotRejectedError
from csvpublish.manifest import Manifest
from csvpublish.partitions import Digest, Digester, PartitionWriter, PartReceipt, Place
from csvpublish.pipeline import StreamStats
from csvpublish.results import PublishResult
from csvpublish.storage import Writer
from csvpublish.storage.backend import WriteOptions
from csvpublish.storage.parts import PartedUpload, Parts

from .catalog import LatestSeen
from .common import quietly
from .flow import PublishFlow, _Archived
from .lease import Reservation
from .maintenance import Maintenance

logger = logging.getLogger("csvpublish")

DigestRunner = Callable[[Digester], Awaitable[Digest]]
"""Runs the one read of the assembled object somewhere (a worker thread here, a Dask worker, ...)."""


async def _here(digester: Digester) -> Digest:
    return await asyncio.to_thread(digester)


class _Assembled(Writer):
    """The archive, already assembled by the store: its commit has nothing left to do."""

    def commit(self) -> None:
        return None

    def discard(self) -> None:
        return None


class PartitionedPublish:
    """One snapshot written by many workers; made by :meth:`Publisher.begin_partitioned`.

    Hand :attr:`writer` (picklable) to the workers, collect one :class:`PartReceipt`
    per partition, then :meth:`commit` them, or :meth:`abort`.
    """

    def __init__(
        self, flow: PublishFlow, reservation: Reservation, seen: LatestSeen | None, upload: PartedUpload,
        writer: PartitionWriter,
    ) -> None:  # fmt: skip
        self.flow = flow
        self.reservation = reservation
        self.seen = seen
        self.upload = upload
        self.writer = writer
        """Give it to the workers: ``writer.write_sync(index, partition) -> PartReceipt``."""
        self.timings: dict[str, float] = {}
        """Seconds the coordinator spent in ``assemble``, ``digest`` and ``promote`` (after :meth:`commit`)."""
        self._open = True

    @classmethod
    async def begin(cls, flow: PublishFlow, partitions: int, headers: Sequence[str] | None) -> PartitionedPublish:
        """Reserve the version and start the upload of its archive for ``partitions`` partitions."""
        st, layout, options = flow.target.storage, flow.target.layout, flow.options
        parts = Parts(st)  # refuses a destination that cannot assemble parts, before anything is written
        if options.key is not None:
            raise InputError("key= is not supported by a partitioned publish yet: publish in one process to count it")
        reservation, seen = await flow._begin(datetime.now(timezone.utc))
        try:
            if headers is not None:  # the schema guard, before any worker starts
                flow._schema_guard(seen.manifest if seen is not None else None)([str(h) for h in headers])
            cache = flow.target.cache.archive
            write = WriteOptions(content_type=layout.content_type, exclusive=True, cache_control=cache)
            upload = await parts.begin(layout.archive(reservation.version), write, partitions)
        except BaseException:
            await flow.leases.release(reservation)
            raise
        writer = PartitionWriter(
            Place.of(st), upload, partitions, tuple(str(h) for h in headers) if headers is not None else None,
            options.dialect, options.escape_formulas, options.compression, options.compression_level,
            options.compression_backend,
        )  # fmt: skip
        return cls(flow, reservation, seen, upload, writer)

    @property
    def version(self) -> str:
        return self.reservation.version

    async def abort(self) -> None:
        """Drop the upload and release the version; the destination is as it was. Safe to call twice."""
        if not self._open:
            return
        self._open = False
        try:
            await quietly(Parts(self.flow.target.storage).abort(self.upload), "abort of the partitioned upload")
        finally:
            await self.flow.leases.release(self.reservation)

    async def commit(self, receipts: Sequence[PartReceipt], *, digest: DigestRunner | None = None) -> PublishResult:
        """Assemble the archive from the receipts' parts, check it, write its manifest and promote it.

        Raises:
            InputError: a partition's receipt is missing, repeated, or has other columns.
            SnapshotRejectedError: the guards refused the snapshot (empty, fewer than ``min_records``, other columns).
            IntegrityError: the assembled object is not what the receipts describe.
        """
        if not self._open:
            raise InputError("this partitioned publish is finished already (committed or aborted)")
        try:
            archived = await self._archive(self._check(receipts), digest or _here)
        except BaseException:
            await self.abort()
            raise
        return await self._finish(archived)

    def _check(self, receipts: Sequence[PartReceipt]) -> list[PartReceipt]:
        ordered = sorted(receipts, key=lambda r: r.index)
        if [r.index for r in ordered] != list(range(self.writer.partitions)):
            raise InputError(f"give one receipt for each of the {self.writer.partitions} partitions, 0 to n-1")
        columns = ordered[0].columns
        for receipt in ordered:
            if receipt.csv_size and receipt.columns != columns:
                raise InputError(
                    f"partition {receipt.index} has the columns {list(receipt.columns)}, partition 0 {list(columns)}"
                )
        self.flow._schema_guard(self.seen.manifest if self.seen is not None else None)(list(columns))
        if sum(r.csv_size for r in ordered) == 0:
            raise SnapshotRejectedError("the CSV is empty (0 bytes); the current latest is untouched")
        minimum, records = self.flow.options.min_records, _records(ordered)
        if minimum is not None and records is not None and records < minimum:
            raise SnapshotRejectedError(
                f"the snapshot has {records} records, fewer than min_records={minimum}; the current latest is untouched"
            )
        return ordered

    async def _archive(self, receipts: list[PartReceipt], digest: DigestRunner) -> _Archived:
        """Assemble and measure the archive, then commit its manifest (with the probe and the lease)."""
        st, layout, flow = self.flow.target.storage, self.flow.target.layout, self.flow
        archive = layout.archive(self.version)
        started = time.monotonic()
        await Parts(st).assemble(self.upload, [r.pieces for r in receipts])
        assembled = time.monotonic()
        self.timings["assemble"] = assembled - started
        try:
            digester = Digester(
                Place.of(st), archive, flow.options.compression, flow.options.dialect.header,
                tuple(r.size for r in receipts),
            )  # fmt: skip
            measured = await digest(digester)
            self.timings["digest"] = time.monotonic() - assembled
            _compare(measured, receipts, st.uri(archive))
            manifest = self._manifest(receipts, measured)
            current = self.seen.manifest if self.seen is not None else None
            if flow.options.skip_unchanged and current is not None and current.sha256 == measured.sha256:
                await st.delete(archive)
                return _Archived(current, unchanged=True)
        except BaseException:
            await quietly(st.delete(archive))
            raise
        return await flow._commit(_Assembled(), None, manifest, self.reservation, None)

    def _manifest(self, receipts: list[PartReceipt], measured: Digest) -> Manifest:
        first = receipts[0]
        types = next((list(r.column_types) for r in receipts if r.column_types is not None), None)
        stats = StreamStats(
            record_count=_records(receipts),
            columns=list(first.columns),
            csv_size=measured.csv_size,
            csv_sha256=measured.csv_sha256,
            size=measured.size,
            sha256=measured.sha256,
            column_types=types,
            dialect=self.flow.options.dialect,
        )
        offsets, at = [], 0
        for receipt in receipts:
            offsets.append(receipt.describe(at))
            at += receipt.size
        return replace(self.flow._manifest(self.version, stats, self.flow.options.compressor()), parts=offsets)

    async def _finish(self, archived: _Archived) -> PublishResult:
        """Promote (unless unchanged), release the version, then ``keep=`` and ``cleanup()`` as any publish."""
        target, started = self.flow.target, time.monotonic()
        self._open = False
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await self.flow.leases.release(self.reservation)

        try:
            if archived.unchanged:
                return target.result(archived.manifest, skipped=True, latest_updated=False)
            updated = await self.flow._promote(archived, self.seen, release)
        finally:
            await release()
        self.timings["promote"] = time.monotonic() - started
        manifest = archived.manifest
        logger.info("published %s from %d partitions", target.storage.uri(manifest.archive), self.writer.partitions)
        maintenance = Maintenance(target)
        pruned = await maintenance.prune(self.flow.options.keep) if self.flow.options.keep else []
        if self.reservation.others:
            await quietly(maintenance.cleanup(), "cleanup after publish")
        return target.result(manifest, latest_updated=updated, pruned=pruned)

    # --- blocking twins ----------------------------------------------------------------

    def commit_sync(self, receipts: Sequence[PartReceipt], *, digest: DigestRunner | None = None) -> PublishResult:
        """Blocking :meth:`commit`."""
        return run_sync(self.commit(receipts, digest=digest))

    def abort_sync(self) -> None:
        """Blocking :meth:`abort`."""
        run_sync(self.abort())


def _records(receipts: Sequence[PartReceipt]) -> int | None:
    counts = [r.records for r in receipts]
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


def _compare(measured: Digest, receipts: list[PartReceipt], where: str) -> None:
    """Raise :class:`IntegrityError` where the assembled object differs from what the workers uploaded."""
    problems = []
    if measured.size != sum(r.size for r in receipts):
        problems.append(f"{measured.size} bytes, the partitions uploaded {sum(r.size for r in receipts)}")
    if measured.csv_size != sum(r.csv_size for r in receipts):
        problems.append(f"{measured.csv_size} CSV bytes, the partitions wrote {sum(r.csv_size for r in receipts)}")
    wrong = [r.index for r, h in zip(receipts, measured.part_sha256, strict=False) if h != r.sha256]
    if wrong or len(measured.part_sha256) != len(receipts):
        problems.append(f"the bytes of partitions {wrong} differ from what their workers uploaded")
    if problems:
        raise IntegrityError(f"{where} as assembled has " + "; ".join(problems) + "; nothing was published")
