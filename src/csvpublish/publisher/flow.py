"""The publish flow: reserve a version, stream it to its archive, commit, write its manifest, promote it.

::

    reserve      .csvpublish/<name>_<version>.lock        (lease.Leases.reserve)
    stream       rows -> CSV -> gzip -> archive upload     (pipeline.run, one pass)
    commit       the archive appears whole, if absent       (Writer.commit, beside the local CSV's)
    manifest     timestamped/<name>_<version>.manifest.json
    promote      copy to the latest + its manifest, under the lease (promotion.Promoter)
    release      the reservation; then keep= pruning and, if others left anything, cleanup()
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from csvpublish import pipeline
from csvpublish._version import library_version
from csvpublish.compression import DEFAULT_LEVEL, GzipCompressor
from csvpublish.dialect import Dialect
from csvpublish.errors import SnapshotRejectedError
from csvpublish.manifest import Manifest, utc_iso
from csvpublish.pipeline import Progress, StreamStats
from csvpublish.results import PublishResult
from csvpublish.storage import PART_SIZE, Writer
from csvpublish.storage.translate import translate

from .catalog import Catalog
from .common import Target, quietly
from .lease import Leases, Reservation
from .maintenance import Maintenance
from .promotion import Promoter

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


@dataclass(frozen=True)
class _Archived:
    """The outcome of streaming and committing one archive."""

    manifest: Manifest
    unchanged: bool = False
    """``skip_unchanged`` found these bytes already latest: nothing was written, ``manifest`` is the latest's."""


class PublishFlow:
    """One publish of one target."""

    def __init__(self, target: Target, options: PublishOptions) -> None:
        self.target = target
        self.options = options
        self.leases = Leases(target)
        self.catalog = Catalog(target)

    async def run(self, source: Source) -> PublishResult:
        st, layout = self.target.storage, self.target.layout
        await st.check()
        reservation = await self.leases.reserve(datetime.now(timezone.utc))
        try:
            archived = await self._archive(reservation, source)
            if archived.unchanged:
                return self.target.result(
                    archived.manifest, skipped=True, latest_updated=False, local_path=source.local_path
                )
            manifest = archived.manifest
            updated = await Promoter(self.target).promote(manifest, check_order=True)
            logger.info(
                "published %s: %s records, %d bytes, sha256 %s",
                st.uri(layout.latest) if updated else st.uri(manifest.archive),
                manifest.record_count,
                manifest.size,
                manifest.sha256[:12],
            )
        finally:
            await self.leases.release(reservation)
        maintenance = Maintenance(self.target)
        pruned = await maintenance.prune(self.options.keep) if self.options.keep else []
        if reservation.others:  # every interrupted publish leaves its reservation or a lock there until cleaned
            await quietly(maintenance.cleanup(), "cleanup after publish")
        return self.target.result(manifest, latest_updated=updated, pruned=pruned, local_path=source.local_path)

    async def _archive(self, reservation: Reservation, source: Source) -> _Archived:
        """Stream the source into the reserved archive, then commit it and write its manifest."""
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
        )
        local = stats.pending_local
        try:
            manifest = self._manifest(reservation.version, stats, compressor)
            reason = self._refusal(stats)
            current = await self._unchanged(stats) if reason is None else None
            if current is not None:
                await asyncio.to_thread(writer.discard)
                await _commit_local(local)
                logger.info("%s unchanged (sha256 %s); nothing written", st.uri(layout.latest), stats.sha256[:12])
                return _Archived(current, unchanged=True)
            if reason is not None:
                await _commit_local(local)  # the local CSV is an export of the rows, refused or not
                raise SnapshotRejectedError(f"{reason}; the current latest is untouched")
            await self._commit(writer, local, archive)
        except BaseException:
            await asyncio.to_thread(writer.discard)  # a no-op after a commit
            if local is not None:
                local.discard()  # a no-op after a commit: the temp file is gone
            raise
        await self._write_manifest(manifest)
        return _Archived(manifest)

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

    def _refusal(self, stats: StreamStats) -> str | None:
        """Why the guards refuse this snapshot, or None."""
        if stats.csv_size == 0:
            return "the CSV is empty (0 bytes)"
        minimum = self.options.min_records
        if minimum is not None and stats.record_count is not None and stats.record_count < minimum:
            return f"the snapshot has {stats.record_count} records, fewer than min_records={minimum}"
        return None

    async def _unchanged(self, stats: StreamStats) -> Manifest | None:
        """With ``skip_unchanged``, the latest's manifest when it already has these bytes."""
        if not self.options.skip_unchanged:
            return None
        current = await self.catalog.latest_manifest(quiet=True)
        return current if current is not None and current.sha256 == stats.sha256 else None

    async def _commit(self, writer: Writer, local: Writer | None, archive: str) -> None:
        """Commit the archive and the local CSV at the same time; a failed local commit takes the archive back."""
        st = self.target.storage
        # once only: a failed commit has discarded the upload, and repeating it could not bring it back
        archive_done, local_done = await asyncio.gather(
            asyncio.to_thread(st.blocking, st.uri(archive), writer.commit, retry=False),
            _commit_local(local),
            return_exceptions=True,
        )
        if isinstance(archive_done, BaseException):
            raise archive_done
        if isinstance(local_done, BaseException):
            await quietly(st.delete(archive))  # no manifest yet: not a version, nobody reads it
            raise local_done

    async def _write_manifest(self, manifest: Manifest) -> None:
        """The archive's manifest: from here on, the archive is a version."""
        st, rel = self.target.storage, self.target.layout.archive_manifest(manifest.version)
        try:
            await st.write_bytes(
                rel, manifest.to_json(), content_type="application/json", cache_control=self.target.cache.archive
            )
        except BaseException:
            # an archive without its manifest is no version; the manifest may have landed unacknowledged
            await quietly(st.delete(rel))
            await quietly(st.delete(manifest.archive))
            raise


async def _commit_local(local: Writer | None) -> None:
    """Commit the local CSV (fsync, then rename) in a worker thread."""
    if local is None:
        return
    try:
        await asyncio.to_thread(local.commit)
    except OSError as exc:
        raise translate(exc, f"the local CSV {local.name}") from exc
