"""Maintenance: restore a version, prune old ones, and clean up what interrupted publishes left behind."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from datetime import datetime, timezone

from csvpublish._version import library_version
from csvpublish.errors import InputError, IntegrityError, StorageError, StorageNotFoundError
from csvpublish.manifest import CONTENT_TYPE as MANIFEST_TYPE
from csvpublish.manifest import Manifest, utc_iso
from csvpublish.naming import ARCHIVE_DIR, CONTROL_DIR, Layout
from csvpublish.results import CleanupReport, PublishResult, VersionInfo
from csvpublish.storage import Entry

from .catalog import Catalog, Listing
from .common import Target, basename, pid_alive
from .lease import Leases
from .promotion import Promoter
from .verify import measure

logger = logging.getLogger("csvpublish")


class Maintenance:
    """Restore, prune and cleanup for one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.layout = target.layout
        self.catalog = Catalog(target)
        self.leases = Leases(target)
        self.promoter = Promoter(target)

    # --- restore and prune -------------------------------------------------------------

    async def restore(self, version: str | VersionInfo) -> PublishResult:
        """Make an archived version the latest again; an archive without a manifest gets one first."""
        st = self.target.storage
        info = await self.catalog.find(version)
        try:
            manifest = await self.catalog.manifest(info.version)
        except (StorageNotFoundError, FileNotFoundError):
            manifest = await self._rebuild_manifest(info)
        restored = replace(manifest, restored_at=utc_iso(datetime.now(timezone.utc)))
        await self.promoter.promote(restored, check_order=False)
        logger.info("restored %s as the latest %s", info.uri, st.uri(self.target.layout_of(restored).latest))
        return self.target.result(restored, latest_updated=True)

    async def _rebuild_manifest(self, info: VersionInfo) -> Manifest:
        """A manifest for an archive written without one (by the seed pipeline), from one read of it."""
        st = self.target.storage
        compressed = info.compression is not None
        measured = await measure(st, info.path, compressed)
        if measured.csv_sha256 is None or measured.records is None:
            raise IntegrityError(f"{info.uri} is not a readable {'gzip ' if compressed else ''}CSV; cannot restore it")
        parsed = self.layout.parse_archive(basename(info.path))
        layout = Layout.of(self.target.name, parsed) if parsed else Layout(self.target.name, compressed)
        manifest = Manifest(
            name=self.target.name,
            version=info.version,
            created_at=utc_iso(datetime.now(timezone.utc)),
            archive=info.path,
            compression="gzip" if compressed else None,
            content_type=layout.content_type,
            size=measured.size,
            sha256=measured.sha256,
            csv_size=-1,
            csv_sha256=measured.csv_sha256,
            record_count=measured.records,
            columns=[],
            library=library_version(),
        )
        write = st.write_bytes(
            layout.archive_manifest(info.version),
            manifest.to_json(),
            content_type=MANIFEST_TYPE,
            cache_control=self.target.cache.archive,
        )
        await asyncio.gather(write, self.target.write_descriptor(manifest, latest=False))
        return manifest

    async def prune(self, keep: int) -> list[str]:
        """Delete archives older than the newest ``keep``; never the latest's, never one in flight."""
        if not isinstance(keep, int) or keep < 1:
            raise InputError(f"keep={keep!r}: keep at least 1 archived version")
        st = self.target.storage
        latest = await self.catalog.latest_manifest(quiet=True)
        in_flight = self.catalog.reserved(await st.list(CONTROL_DIR))
        await st.check(create=False)
        deleted = []
        for info in (await self.catalog.versions(describe=True))[keep:]:
            if (latest is not None and info.path == latest.archive) or info.version in in_flight:
                continue
            await st.delete(info.path)
            await asyncio.gather(
                st.delete(self.layout.archive_manifest(info.version)),
                st.delete(self.layout.archive_descriptor(info.version)),
                st.delete(self.layout.keys(info.version)),
            )
            deleted.append(info.version)
            logger.info("pruned %s", info.uri)
        return deleted

    # --- cleanup -------------------------------------------------------------------------

    async def cleanup(self) -> CleanupReport:
        """Remove what interrupted publishes of this name left behind; see :meth:`Publisher.cleanup`."""
        st = self.target.storage
        await st.check(create=False)
        # Uploads are listed before the reservations: an upload listed here belongs to a publish
        # whose reservation is either in the listing below (alive) or gone with its process.
        uploads = await st.incomplete_uploads(f"{ARCHIVE_DIR}/{self.target.name}_")
        listing, top = await asyncio.gather(self.catalog.listing(), st.list(""))
        live, dead = await self._reservations(listing)
        present = {e.basename for e in listing.archives}
        removed: list[str] = []
        for entry in listing.archives:
            if (
                self._is_dead_archive(entry, dead, present)
                or self._is_orphan_keys(entry, live, present)
                or await self._is_orphan_manifest(entry, live, present)
            ):
                removed.append(await self._remove(entry))
        aborted = [uri for key, upload_id, _ in uploads if (uri := await self._abort(key, upload_id, live))]
        for entry in [*listing.archives, *top, *listing.control]:
            if self.layout.is_temp_of(entry.basename) and self._temp_is_dead(entry):
                removed.append(await self._remove(entry))
        for entry in listing.control:
            if await self._is_dead_control(entry, dead):
                removed.append(await self._remove(entry))
            elif entry.basename == basename(self.layout.latest_lock) and await self._finishes_dead_lease(entry):
                removed.append(st.uri(entry.path))
        if removed or aborted:
            logger.info("cleanup of %s: removed %d leftovers, aborted %d uploads", st.uri(), len(removed), len(aborted))
        return CleanupReport(removed=removed, aborted_uploads=aborted)

    async def _remove(self, entry: Entry) -> str:
        await self.target.storage.delete(entry.path)
        return self.target.storage.uri(entry.path)

    async def _reservations(self, listing: Listing) -> tuple[set[str], set[str]]:
        """The reserved versions whose publish is alive, and those whose publish is dead."""
        live: set[str] = set()
        dead: set[str] = set()
        for entry in listing.control:
            version = self.layout.parse_reservation(entry.basename)
            marker = await self.leases.read(entry.path) if version is not None else None
            if version is not None and marker is not None:
                (dead if marker.is_dead(self.target.stale_after) else live).add(version)
        return live, dead

    def _is_dead_archive(self, entry: Entry, dead: set[str], present: set[str]) -> bool:
        """An archive (or its descriptor) a dead publish committed before its manifest: not a version."""
        parsed = self.layout.parse_archive(entry.basename)
        version = parsed.version if parsed else self.layout.parse_descriptor(entry.basename)
        return bool(version and version in dead and basename(self.layout.archive_manifest(version)) not in present)

    def _is_orphan_keys(self, entry: Entry, live: set[str], present: set[str]) -> bool:
        """A key file without its version's manifest (a killed or failed publish, a prune cut short)."""
        version = self.layout.parse_keys(entry.basename)
        return (
            version is not None
            and version not in live
            and basename(self.layout.archive_manifest(version)) not in present
        )

    async def _is_orphan_manifest(self, entry: Entry, live: set[str], present: set[str]) -> bool:
        """A manifest or a descriptor whose archive is gone (a prune or a failed publish cut short)."""
        version = self.layout.parse_manifest(entry.basename) or self.layout.parse_descriptor(entry.basename)
        return version is not None and version not in live and not await self._has_archive(version, present)

    async def _has_archive(self, version: str, present: set[str]) -> bool:
        layouts = self.layout.variants()
        if any(basename(layout.archive(version)) in present for layout in layouts):
            return True
        # a listing is not a snapshot: ask again before calling it gone
        return any(await asyncio.gather(*(self.target.storage.exists(layout.archive(version)) for layout in layouts)))

    async def _abort(self, key: str, upload_id: str, live: set[str]) -> str | None:
        """Abort an unfinished upload of an archive whose publish is not alive; its URI when aborted."""
        st = self.target.storage
        parsed = self.layout.parse_archive(basename(key))
        version = parsed.version if parsed is not None else self.layout.parse_keys(basename(key))
        if version is None or version in live:
            return None
        try:
            await st.abort_upload(key, upload_id)
        except StorageError as exc:  # completed or aborted since it was listed
            logger.info("could not abort the upload of %s: %s", st.uri(key), exc)
            return None
        return st.uri(key)

    def _temp_is_dead(self, entry: Entry) -> bool:
        """A temp file of a local write whose writer is gone, or one older than ``stale_after``."""
        # temp names end with .<pid>-<random>.tmp (see storage.backend.temp_name)
        token = entry.basename.rsplit(".", 2)[-2] if entry.basename.count(".") >= 2 else ""
        pid_text = token.split("-", 1)[0]
        if self.target.storage.capabilities.writer_pids and pid_text.isdigit():
            pid = int(pid_text)
            return pid != os.getpid() and not pid_alive(pid)
        if entry.modified is None:
            return False
        return datetime.now(timezone.utc) - entry.modified.astimezone(timezone.utc) > self.target.stale_after

    async def _is_dead_control(self, entry: Entry, dead: set[str]) -> bool:
        """A dead publish's reservation, or the claim of a lock breaker that died."""
        version = self.layout.parse_reservation(entry.basename)
        if version is not None:
            return version in dead
        if not self.layout.is_lock_claim(entry.basename):
            return False
        marker = await self.leases.read(entry.path)
        return marker is not None and marker.is_dead(self.leases.lease_limit)

    async def _finishes_dead_lease(self, entry: Entry) -> bool:
        """A dead holder's lease: taking it breaks the lock and finishes the promotion. True when it did."""
        marker = await self.leases.read(entry.path)
        if marker is None or not marker.is_dead(self.leases.lease_limit):
            return False
        return await self.promoter.finish_interrupted()
