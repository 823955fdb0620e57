"""The publish flow: reserve a version, stream it to its archive, commit it with its manifest, promote it.

Round trips of an uncontended publish that fits in one part, each line's requests sent at once
(docs/guarantees.md)::

    1 begin      create .csvpublish/<name>_<version>.lock; list the control folder; check the
                 bucket; read the latest's tag and its manifest
    2            list that second's archives (after the reservation exists)
      stream     rows -> CSV -> gzip, in memory up to a part             (pipeline.run, one pass)
    3 commit     PUT the archive (if absent) + its manifest; probe conditional writes (once per
                 process); take the lease unless they are known to be enforced
    4 promote    copy the archive over the latest (compare-and-swap where enforced) + release the
                 reservation                                              (promotion.Promoter)
    5 describe   PUT the latest manifest (compare-and-swap where enforced)
    (lease only) read the latest under the lease before 4; release the lease after 5

then keep= pruning and, if others left anything in the control folder, cleanup().
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from csvpublish import pipeline, schema
from csvpublish._version import library_version
from csvpublish.changes import ChangeSummary
from csvpublish.compression import DEFAULT_LEVEL, GzipCompressor
from csvpublish.dialect import Dialect
from csvpublish.errors import InputError, MissingInputError, SnapshotRejectedError
from csvpublish.manifest import CONTENT_TYPE as MANIFEST_TYPE
from csvpublish.manifest import Manifest, utc_iso
from csvpublish.pipeline import Progress, StreamStats
from csvpublish.results import PublishResult
from csvpublish.storage import PART_SIZE, Writer, conditions
from csvpublish.storage.translate import translate

from .catalog import Catalog, LatestSeen
from .common import Target, quietly
from .keyed import Keyed, KeyedPublish
from .lease import Held, Leases, Marker, Reservation
from .maintenance import Maintenance
from .promotion import Alongside, Promoter


async def _nothing() -> None:
    return None


async def _manifest_only(read: Awaitable[Manifest | None]) -> LatestSeen:
    """The latest as a backend without tags shows it: its manifest alone."""
    return LatestSeen(None, None, await read, None)


logger = logging.getLogger("csvpublish")


@dataclass(frozen=True)
class PublishOptions:
    """How a publish writes and which snapshots it refuses (the :class:`Publisher` options)."""

    compression: bool = True
    keep: int | None = None
    skip_unchanged: bool = False
    min_records: int | None = None
    escape_formulas: bool = False
    compression_level: int = DEFAULT_LEVEL
    compression_backend: str | None = None
    dialect: Dialect = field(default_factory=Dialect)
    key: tuple[str, ...] | None = None
    """Key columns: record what changed since the previous latest, in a key file beside the archive."""
    unique_key: bool = False
    """Refuse a snapshot in which a key is on more than one row."""
    on_schema_change: schema.SchemaPolicy = "refuse"

    def compressor(self) -> GzipCompressor | None:
        return GzipCompressor(self.compression_level, self.compression_backend) if self.compression else None


@dataclass(frozen=True)
class Source:
    """What one publish reads: records (with optional headers) or an existing CSV file."""

    records: Any = None
    csv_file: Path | None = None
    headers: Sequence[str] | None = None
    local_path: str | os.PathLike[str] | None = None
    progress: Progress | None = None

    @classmethod
    def of_file(cls, path: Path, progress: Progress | None) -> Source:
        """An existing CSV file; :class:`InputError` or :class:`SnapshotRejectedError` when it cannot be one."""
        if not path.is_file():
            if path.exists():
                raise InputError(f"{path} is not a file; give the path of a CSV file")
            raise MissingInputError(f"{path}: no such CSV file; export it first or fix the path")
        if path.stat().st_size == 0:
            raise SnapshotRejectedError(f"{path} is empty (0 bytes); refusing to publish it over the current latest")
        return cls(csv_file=path, progress=progress)


@dataclass(frozen=True)
class _Archived:
    """The outcome of streaming and committing one archive."""

    manifest: Manifest
    unchanged: bool = False
    """``skip_unchanged`` found these bytes already latest: nothing was written, ``manifest`` is the latest's."""
    enforced: bool = False
    """The service enforces conditional copies and writes: the latest is replaced by compare-and-swap alone."""
    held: Held | None = None
    """The latest's lease, taken while the archive was committed (unless conditions were known to hold)."""
    changes: ChangeSummary | None = None
    """A keyed publish: what changed since the previous latest (None when unknown)."""


class PublishFlow:
    """One publish of one target."""

    def __init__(self, target: Target, options: PublishOptions) -> None:
        self.target = target
        self.options = options
        self.leases = Leases(target)
        self.catalog = Catalog(target)

    async def run(self, source: Source) -> PublishResult:
        st, layout = self.target.storage, self.target.layout
        reservation, seen = await self._begin(datetime.now(timezone.utc))
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await self.leases.release(reservation)

        try:
            archived = await self._archive(reservation, source, seen)
            if archived.unchanged:
                return self.target.result(
                    archived.manifest, skipped=True, latest_updated=False, local_path=source.local_path
                )
            manifest, changes = archived.manifest, archived.changes
            updated = await self._promote(archived, seen, release)
            logger.info(
                "published %s: %s records, %d bytes, sha256 %s",
                st.uri(layout.latest) if updated else st.uri(manifest.archive),
                manifest.record_count,
                manifest.size,
                manifest.sha256[:12],
            )
        finally:
            await release()
        maintenance = Maintenance(self.target)
        pruned = await maintenance.prune(self.options.keep) if self.options.keep else []
        if reservation.others:  # every interrupted publish leaves its reservation or a lock there until cleaned
            await quietly(maintenance.cleanup(), "cleanup after publish")
        return self.target.result(
            manifest, latest_updated=updated, pruned=pruned, local_path=source.local_path, changes=changes
        )

    async def _begin(self, started: datetime) -> tuple[Reservation, LatestSeen | None]:
        """Reserve the version, check the bucket and read the latest, all at once."""
        st, catalog = self.target.storage, self.catalog
        if conditions.known(st) is not False and st.capabilities.conditional_copy:  # a swap starts from this view
            look: Awaitable[LatestSeen | None] = catalog.latest_seen()
        elif self.options.skip_unchanged or self.options.key is not None or self.options.on_schema_change == "refuse":
            look = _manifest_only(catalog.latest_manifest(quiet=True))
        else:
            look = _nothing()
        checked, reserved, seen = await asyncio.gather(
            st.check(), self.leases.reserve(started), look, return_exceptions=True
        )
        if isinstance(reserved, BaseException):
            raise checked if isinstance(checked, BaseException) else reserved
        for failed in (checked, seen):
            if isinstance(failed, BaseException):
                await self.leases.release(reserved)
                raise failed
        assert not isinstance(seen, BaseException)
        return reserved, seen

    async def _promote(self, archived: _Archived, seen: LatestSeen | None, release: Alongside) -> bool:
        """Replace the latest: by compare-and-swap where enforced, else under the lease."""
        promoter = Promoter(self.target)
        if not archived.enforced:
            return await promoter.promote(archived.manifest, check_order=True, held=archived.held, alongside=release)
        held = archived.held

        async def alongside() -> None:
            await release()
            if held is not None:  # taken while the probe ran: not needed after all
                await self.leases.release_latest(held)

        return await promoter.swap(archived.manifest, seen, alongside)

    async def _archive(self, reservation: Reservation, source: Source, seen: LatestSeen | None) -> _Archived:
        """Stream the source into the reserved archive, then commit it with its manifest (and key file)."""
        st, layout = self.target.storage, self.target.layout
        archive = layout.archive(reservation.version)
        writer = await asyncio.to_thread(
            st.blocking,
            st.uri(archive),
            lambda: st.open_writer(
                archive,
                content_type=layout.content_type,
                exclusive=True,
                part_size=PART_SIZE,
                cache_control=self.target.cache.archive,
            ),
        )
        current = seen.manifest if seen is not None else None
        key = self.options.key
        tracker = None if key is None else KeyedPublish(self.target, key, self.options.dialect.delimiter)
        try:
            if tracker is not None:
                tracker.start(current)  # the previous key file arrives while the rows stream
            return await self._stream(writer, reservation, source, current, tracker)
        finally:
            if tracker is not None:
                await tracker.close()

    async def _stream(
        self,
        writer: Writer,
        reservation: Reservation,
        source: Source,
        current: Manifest | None,
        tracker: KeyedPublish | None,
    ) -> _Archived:
        st, layout = self.target.storage, self.target.layout
        compressor = self.options.compressor()
        stats = await pipeline.run(
            source=source.records,
            csv_file=source.csv_file,
            headers=source.headers,
            escape_formulas=self.options.escape_formulas,
            local_path=None if source.local_path is None else os.fspath(source.local_path),
            commit_local=False,  # committed below, beside the archive: the two waits overlap
            sink=writer,
            compressor=compressor,
            progress=source.progress,
            dialect=self.options.dialect,
            key=self.options.key,
            check_columns=self._schema_guard(current),
        )
        local, keyed = stats.pending_local, None
        try:
            manifest = self._manifest(reservation.version, stats, compressor)
            reason = self._refusal(stats)
            if reason is None and self.options.skip_unchanged and current and current.sha256 == stats.sha256:
                await asyncio.to_thread(writer.discard)
                await _commit_local(local)
                logger.info("%s unchanged (sha256 %s); nothing written", st.uri(layout.latest), stats.sha256[:12])
                return _Archived(current, unchanged=True)
            if reason is None and tracker is not None and stats.keys is not None:
                keyed = await tracker.write(reservation.version, stats.keys)
                manifest = replace(manifest, keys=keyed.keys, changes=keyed.changes)
                reason = self._duplicates(keyed)
            if reason is not None:
                await _commit_local(local)  # the local CSV is an export of the rows, refused or not
                raise SnapshotRejectedError(f"{reason}; the current latest is untouched")
        except BaseException:
            await asyncio.to_thread(writer.discard)
            if keyed is not None:
                await asyncio.to_thread(keyed.writer.discard)
            if local is not None:
                local.discard()
            raise
        archived = await self._commit(writer, local, manifest, reservation, keyed.writer if keyed else None)
        return replace(archived, changes=keyed.summary if keyed else None)

    def _duplicates(self, keyed: Keyed) -> str | None:
        """Why ``unique_key=True`` refuses the snapshot, or None."""
        if not self.options.unique_key or not keyed.duplicate_keys:
            return None
        shown = ", ".join(map(repr, keyed.duplicate_examples))
        return (
            f"unique_key=True and {keyed.duplicate_keys} key(s) of {list(self.options.key or ())} are on more than "
            f"one row (such as {shown})"
        )

    def _manifest(self, version: str, stats: StreamStats, compressor: GzipCompressor | None) -> Manifest:
        layout = self.target.layout
        return Manifest(
            name=self.target.name,
            version=version,
            created_at=utc_iso(datetime.now(timezone.utc)),
            archive=layout.archive(version),
            compression="gzip" if self.options.compression else None,
            content_type=layout.content_type,
            size=stats.size,
            sha256=stats.sha256,
            csv_size=stats.csv_size,
            csv_sha256=stats.csv_sha256,
            record_count=stats.record_count,
            columns=stats.columns,
            library=library_version(),
            compressor=f"{compressor.backend}-{compressor.level}" if compressor else None,
            column_types=stats.column_types,
            dialect=stats.dialect.to_dict(),
        )

    def _schema_guard(self, current: Manifest | None) -> Callable[[Sequence[str]], None]:
        """The check of the new columns against the latest's, which raises :class:`SchemaChangedError`."""
        if self.options.on_schema_change == "allow" or current is None:
            return _no_check
        return schema.guard(current.columns, current.version)

    def _refusal(self, stats: StreamStats) -> str | None:
        """Why the guards refuse this snapshot, or None."""
        if stats.csv_size == 0:
            return "the CSV is empty (0 bytes)"
        minimum = self.options.min_records
        if minimum is not None and stats.record_count is not None and stats.record_count < minimum:
            return f"the snapshot has {stats.record_count} records, fewer than min_records={minimum}"
        return None

    async def _commit(
        self, writer: Writer, local: Writer | None, manifest: Manifest, reservation: Reservation, keys: Writer | None
    ) -> _Archived:
        """Commit the archive, its manifest, its descriptor and the local CSV at once, with the probe and the lease.

        The reservation keeps the version out of listings until both the
        archive and its manifest are there. Any failure takes them all back.
        """
        st, archive = self.target.storage, manifest.archive
        known = conditions.known(st)
        held: Held | None = None

        async def lease() -> None:
            nonlocal held
            if known is not True:  # the lease is needed unless the conditions are known to be enforced
                held = await self.leases.acquire(Marker.new(manifest.version))

        # the archive's commit runs once: a failed commit has discarded the upload, and repeating it could not help
        outcome = await asyncio.gather(
            asyncio.to_thread(st.blocking, st.uri(archive), writer.commit, retry=False),
            _commit_local(local),
            st.write_bytes(
                self.target.layout.archive_manifest(manifest.version),
                manifest.to_json(),
                content_type=MANIFEST_TYPE,
                cache_control=self.target.cache.archive,
            ),
            st.enforces_conditions(self.target.layout.reservation(manifest.version), reservation.marker),
            lease(),
            _nothing() if keys is None else asyncio.to_thread(st.blocking, keys.name, keys.commit, retry=False),
            self.target.write_descriptor(manifest, latest=False),
            return_exceptions=True,
        )
        failed = [o for o in outcome if isinstance(o, BaseException)]
        if failed:
            await asyncio.to_thread(writer.discard)  # a no-op after a commit
            if local is not None:
                local.discard()  # a no-op after a commit: the temp file is gone
            if not isinstance(outcome[0], BaseException):  # no version without its manifest and its local CSV
                await quietly(st.delete(archive))
            await quietly(st.delete(self.target.layout.archive_manifest(manifest.version)))
            if keys is not None:
                await asyncio.to_thread(keys.discard)
                if not isinstance(outcome[5], BaseException):
                    await quietly(st.delete(self.target.layout.keys(manifest.version)))
            await quietly(st.delete(self.target.layout.archive_descriptor(manifest.version)))
            if held is not None:
                await self.leases.release_latest(held)
            raise failed[0]
        return _Archived(manifest, enforced=outcome[3] is True, held=held)


def _no_check(columns: Sequence[str]) -> None:
    return None


async def _commit_local(local: Writer | None) -> None:
    """Commit the local CSV (fsync, then rename) in a worker thread."""
    if local is None:
        return
    try:
        await asyncio.to_thread(local.commit)
    except OSError as exc:
        raise translate(exc, f"the local CSV {local.name}") from exc
