"""``Publisher``: export, upload once, copy to latest, manifest; and versions, verify, restore, prune, cleanup.

>>> import asyncio
>>> publisher = Publisher("memory://doc-publisher", name="books")
>>> result = asyncio.run(publisher.publish([{"Barcode": "1", "Title": "Dune"}]))
>>> result.latest_uri, result.record_count
('memory://doc-publisher/books_latest.csv.gz', 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import pipeline
from ._sync import run_sync
from .compression import DEFAULT_LEVEL, GzipCompressor
from .errors import (
    ConflictError,
    InputError,
    IntegrityError,
    MissingInputError,
    SnapshotRejectedError,
    StorageError,
    StorageNotFoundError,
    VersionNotFoundError,
)
from .manifest import Manifest, utc_iso
from .naming import ARCHIVE_DIR, CONTROL_DIR, Layout, next_version, validate_name, version_time
from .pipeline import Progress
from .retry import RetryPolicy
from .rows import count_records
from .storage import PART_SIZE, Entry, Storage, Writer
from .storage.translate import translate

logger = logging.getLogger("csvpublish")

_HOST = socket.gethostname()
_NOT_GZIP = "not a complete gzip stream"


def library_version() -> str:
    from ._version import library_version as version

    return version()


@dataclass(frozen=True)
class PublishResult:
    """What a publish did and where the data is."""

    latest_uri: str
    """Display URI of the latest object (``s3://bucket/prefix/books_latest.csv.gz``)."""
    archive_uri: str
    """Display URI of the timestamped archive holding the same bytes."""
    version: str
    """Identifier of the archived version (``20261126_053708`` or ``20261126_053708_000001``)."""
    record_count: int | None
    """Data rows published; None when unknown."""
    size: int
    """Bytes stored (compressed size when compressed)."""
    sha256: str
    """sha256 of the stored bytes."""
    compression: str | None
    """``"gzip"`` or None."""
    csv_sha256: str = ""
    columns: list[str] = field(default_factory=list)
    manifest_uri: str = ""
    skipped: bool = False
    """True when ``skip_unchanged`` found the same bytes already latest: nothing was written."""
    latest_updated: bool = True
    """False when a publish that started later had already replaced the latest."""
    pruned: list[str] = field(default_factory=list)
    """Versions deleted by ``keep=`` after this publish."""
    local_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class VersionInfo:
    """One archived version, as listed by :meth:`Publisher.versions`."""

    version: str
    timestamp: datetime
    uri: str
    path: str
    size: int
    record_count: int | None
    compression: str | None
    is_latest: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["timestamp"] = utc_iso(self.timestamp)
        return out


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :meth:`Publisher.verify`."""

    ok: bool
    target: str
    """``"latest"`` or the version identifier checked."""
    uri: str
    version: str | None
    """The archived version the checked object came from, per its manifest."""
    sha256: str | None
    expected_sha256: str | None
    record_count: int | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things worth knowing that are not problems, such as a promotion in progress."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class CleanupReport:
    """What :meth:`Publisher.cleanup` removed."""

    removed: list[str] = field(default_factory=list)
    aborted_uploads: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"removed": self.removed, "aborted_uploads": self.aborted_uploads}


class Publisher:
    """Publish CSV snapshots of one name to one destination.

    Layout for ``name="books"`` (compressed)::

        <destination>/books_latest.csv.gz                      same bytes as the newest archive
        <destination>/books_latest.manifest.json
        <destination>/timestamped/books_<YYYYmmdd_HHMMSS>.csv.gz
        <destination>/timestamped/books_<YYYYmmdd_HHMMSS>.manifest.json

    Args:
        destination: a URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``),
            a local folder, or a :class:`Storage`.
        name: the snapshot's name; required, one path segment.
        compression: store ``.csv.gz`` (deterministic gzip) or plain ``.csv``.
        storage_options: options for the fsspec filesystem (endpoint, credentials).
        keep: after a successful publish, delete archives older than the newest ``keep``.
        skip_unchanged: write nothing when the new bytes equal the current latest's.
        min_records: refuse a snapshot with fewer data rows.
        escape_formulas: prefix cells starting with ``= + - @`` tab or CR with ``'``.
        compression_level: gzip level (isal 0-3, zlib 0-9); default 1.
        compression_backend: ``"isal"``, ``"zlib-ng"`` or ``"zlib"``; default the fastest installed.
        lock_timeout: seconds to wait for another publisher to finish replacing the latest.
        stale_after: age after which another machine's unfinished publish counts as dead.

    Example:
        >>> publisher = Publisher("/tmp/books-out", name="books")
        >>> # result = await publisher.publish(rows)           # async
        >>> # result = publisher.publish_sync(rows)            # blocking
    """

    def __init__(
        self,
        destination: str | os.PathLike[str] | Storage,
        *,
        name: str,
        compression: bool = True,
        storage_options: dict[str, Any] | None = None,
        keep: int | None = None,
        skip_unchanged: bool = False,
        min_records: int | None = None,
        escape_formulas: bool = False,
        compression_level: int = DEFAULT_LEVEL,
        compression_backend: str | None = None,
        retry: RetryPolicy | None = None,
        lock_timeout: float = 120.0,
        stale_after: timedelta = timedelta(hours=12),
    ) -> None:
        self.name = validate_name(name)
        if keep is not None and (not isinstance(keep, int) or keep < 1):
            raise InputError(f"keep={keep!r}: keep at least 1 archived version")
        if min_records is not None and min_records < 0:
            raise InputError(f"min_records={min_records!r} must be 0 or more")
        if isinstance(destination, Storage):
            if storage_options:
                raise InputError("storage_options go to Storage(...) when you pass a Storage")
            self.storage = destination
        else:
            self.storage = Storage(destination, retry=retry, **(storage_options or {}))
        self.compression = compression
        self.keep = keep
        self.skip_unchanged = skip_unchanged
        self.min_records = min_records
        self.escape_formulas = escape_formulas
        self.compression_level = compression_level
        self.compression_backend = compression_backend
        GzipCompressor(compression_level, compression_backend)  # fail early on a bad backend
        self.lock_timeout = lock_timeout
        self.stale_after = stale_after
        self.layout = Layout(self.name, compression)

    def __repr__(self) -> str:
        return f"Publisher({self.storage.uri()!r}, name={self.name!r}, compression={self.compression})"

    # --- publishing ------------------------------------------------------------------

    async def publish(
        self,
        source: Any,
        *,
        headers: Sequence[str] | None = None,
        local_path: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> PublishResult:
        """Export ``source`` to CSV and publish it, in one pass.

        Takes every source :func:`export_csv_to_file` takes. With ``local_path``
        the plain CSV is also written there (atomically).

        Raises:
            InputError: the source or a row is unusable.
            SnapshotRejectedError: a guard refused the snapshot.
            StorageError: the storage failed; the previous latest is untouched.
        """
        return await self._publish(source=source, headers=headers, local_path=local_path, progress=progress)

    async def publish_file(
        self, csv_path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> PublishResult:
        """Publish an existing CSV file, reading it once.

        Raises:
            MissingInputError: ``csv_path`` does not exist.
            SnapshotRejectedError: the file is empty, or has fewer than ``min_records`` rows.
        """
        path = Path(csv_path)
        if not path.is_file():
            if path.exists():
                raise InputError(f"{path} is not a file; give the path of a CSV file")
            raise MissingInputError(f"{path}: no such CSV file; export it first or fix the path")
        if path.stat().st_size == 0:
            raise SnapshotRejectedError(f"{path} is empty (0 bytes); refusing to publish it over the current latest")
        return await self._publish(csv_file=path, progress=progress)

    async def _publish(
        self,
        *,
        source: Any = None,
        csv_file: Path | None = None,
        headers: Sequence[str] | None = None,
        local_path: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> PublishResult:
        st, layout = self.storage, self.layout
        await st.check()
        started = datetime.now(timezone.utc)
        version, others = await self._reserve(started)
        archive = layout.archive(version)
        try:
            writer = await asyncio.to_thread(
                st.blocking,
                st.uri(archive),
                lambda: st.open_writer(archive, content_type=layout.content_type, exclusive=True, part_size=PART_SIZE),
            )
            compressor = GzipCompressor(self.compression_level, self.compression_backend) if self.compression else None
            stats = await pipeline.run(
                source=source,
                csv_file=csv_file,
                headers=headers,
                escape_formulas=self.escape_formulas,
                local_path=None if local_path is None else os.fspath(local_path),
                commit_local=False,  # committed below, beside the archive: the two waits overlap
                sink=writer,
                compressor=compressor,
                progress=progress,
            )
            local = stats.pending_local
            try:
                manifest = Manifest(
                    name=self.name,
                    version=version,
                    created_at=utc_iso(datetime.now(timezone.utc)),
                    archive=archive,
                    compression="gzip" if self.compression else None,
                    content_type=layout.content_type,
                    size=stats.size,
                    sha256=stats.sha256,
                    csv_size=stats.csv_size,
                    csv_sha256=stats.csv_sha256,
                    record_count=stats.record_count,
                    columns=stats.columns,
                    library=library_version(),
                    compressor=f"{compressor.backend}-{compressor.level}" if compressor else None,
                )
                reason = self._refusal(stats)
                current = await self._latest_manifest(quiet=True) if self.skip_unchanged and reason is None else None
                if current is not None and current.sha256 == stats.sha256:
                    await asyncio.to_thread(writer.discard)
                    await _commit_local(local)
                    logger.info("%s unchanged (sha256 %s); nothing written", st.uri(layout.latest), stats.sha256[:12])
                    return self._result(current, skipped=True, latest_updated=False, local_path=local_path)
                if reason is not None:
                    await _commit_local(local)  # the local CSV is an export of the rows, refused or not
                    raise SnapshotRejectedError(f"{reason}; the current latest is untouched")
                # once only: a failed commit has discarded the upload, and repeating it could not bring it back
                archive_done, local_done = await asyncio.gather(
                    asyncio.to_thread(st.blocking, st.uri(archive), writer.commit, retry=False),
                    _commit_local(local),
                    return_exceptions=True,
                )
                if isinstance(archive_done, BaseException):
                    raise archive_done
                if isinstance(local_done, BaseException):
                    await _quietly(st.delete(archive))  # no manifest yet: not a version, nobody reads it
                    raise local_done
            except BaseException:
                await asyncio.to_thread(writer.discard)  # a no-op after a commit
                if local is not None:
                    local.discard()  # a no-op after a commit: the temp file is gone
                raise
            try:
                await st.write_bytes(
                    layout.archive_manifest(version), manifest.to_json(), content_type="application/json"
                )
            except BaseException:
                # an archive without its manifest is no version; the manifest may have landed unacknowledged
                await _quietly(st.delete(layout.archive_manifest(version)))
                await _quietly(st.delete(archive))
                raise
            updated = await self._promote(manifest, check_order=True)
            logger.info(
                "published %s: %s records, %d bytes, sha256 %s",
                st.uri(layout.latest) if updated else st.uri(archive),
                stats.record_count,
                stats.size,
                stats.sha256[:12],
            )
        finally:
            await _quietly(st.delete(layout.reservation(version)))
        pruned = await self.prune(self.keep) if self.keep else []
        if others:  # every interrupted publish leaves its reservation or a lock there until cleaned
            await _quietly(self.cleanup(), "cleanup after publish")
        return self._result(manifest, latest_updated=updated, pruned=pruned, local_path=local_path)

    def _refusal(self, stats: pipeline.StreamStats) -> str | None:
        if stats.csv_size == 0:
            return "the CSV is empty (0 bytes)"
        if self.min_records is not None and stats.record_count is not None and stats.record_count < self.min_records:
            return f"the snapshot has {stats.record_count} records, fewer than min_records={self.min_records}"
        return None

    def _result(self, manifest: Manifest, **kwargs: Any) -> PublishResult:
        st = self.storage
        layout = Layout(self.name, manifest.compression is not None)
        local = kwargs.pop("local_path", None)
        return PublishResult(
            latest_uri=st.uri(layout.latest),
            archive_uri=st.uri(manifest.archive),
            version=manifest.version,
            record_count=manifest.record_count,
            size=manifest.size,
            sha256=manifest.sha256,
            compression=manifest.compression,
            csv_sha256=manifest.csv_sha256,
            columns=list(manifest.columns),
            manifest_uri=st.uri(layout.archive_manifest(manifest.version)),
            local_path=str(Path(local).absolute()) if local is not None else None,
            **kwargs,
        )

    # --- reservation, lock and promotion -------------------------------------------------

    def _marker(self, version: str | None, *, restore: bool = False) -> bytes:
        """The body of a reservation or lock: who holds it, since when, and for which version."""
        marker: dict[str, Any] = {
            "pid": os.getpid(),
            "host": _HOST,
            "version": version,
            "started_at": utc_iso(datetime.now(timezone.utc)),
            "token": uuid.uuid4().hex,
        }
        if restore:
            marker["restore"] = True
        return json.dumps(marker).encode()

    async def _reserve(self, started: datetime) -> tuple[str, bool]:
        """Claim a fresh version identifier with a conditional create of its lock.

        Also tells whether the control folder held anything else (other
        publishes in flight, or leftovers of interrupted ones).
        """
        st, layout = self.storage, self.layout
        for _ in range(100):
            archives, control = await asyncio.gather(st.list(ARCHIVE_DIR), st.list(CONTROL_DIR))
            taken = {v for e in archives if (v := _version_of(layout, e.basename))}
            taken |= {v for e in control if (v := layout.parse_reservation(e.basename))}
            version = next_version(started, taken)
            marker = self._marker(version)
            try:
                await st.write_bytes(layout.reservation(version), marker, exclusive=True)
            except FileExistsError:
                if not await self._holds(layout.reservation(version), marker):
                    continue
            if await st.exists(layout.archive(version)):  # written by someone who skipped the lock
                await st.delete(layout.reservation(version))
                started = started + timedelta(seconds=1)
                continue
            mine = _basename(layout.reservation(version))
            return version, any(entry.basename != mine for entry in control)
        raise ConflictError(f"{st.uri(ARCHIVE_DIR)}: could not reserve a version name; too many publishers at once")

    async def _holds(self, rel: str, marker: bytes) -> bool:
        """True when ``rel`` holds ``marker``: a retried conditional create whose first attempt landed."""
        holder = await self._read_marker(rel)
        return holder is not None and holder.get("token") == json.loads(marker)["token"]

    @contextlib.asynccontextmanager
    async def _latest_lock(self, marker: bytes) -> AsyncIterator[dict[str, Any] | None]:
        """Hold the lease on replacing the latest (a conditional create of a lock object).

        Yields the marker of a dead holder whose lock was broken on the way, if
        any: its promotion may have stopped between its copy and its manifest.
        """
        st, path = self.storage, self.layout.latest_lock
        deadline = time.monotonic() + self.lock_timeout
        wait = 0.05
        broken: dict[str, Any] | None = None
        token = json.loads(marker)["token"]
        while True:
            try:
                await st.write_bytes(path, marker, exclusive=True)
                break
            except FileExistsError:
                pass
            holder = await self._read_marker(path)
            if holder is None:  # released in the meantime
                continue
            if holder.get("token") == token:  # a retried create whose first attempt landed
                break
            if self._is_dead(holder, lease=True) and await self._break_lock(holder):
                broken = holder
                continue
            if time.monotonic() > deadline:
                raise ConflictError(
                    f"{st.uri(path)} is held by another publisher (pid {holder.get('pid')} on {holder.get('host')}); "
                    "try again later, or delete the lock if that publisher is gone"
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)
        try:
            yield broken
        finally:
            await _quietly(self._release(path, marker), "releasing the lock")

    async def _release(self, rel: str, marker: bytes) -> None:
        if await self._holds(rel, marker):
            await self.storage.delete(rel)

    async def _break_lock(self, holder: dict[str, Any]) -> bool:
        """Delete the lock of a dead ``holder``; True when this call deleted it.

        Whoever breaks it first creates a claim named after the dead holder's
        token, so two publishers that find the same dead lock cannot both
        delete it (the second would delete the first one's new lock).
        """
        st, path = self.storage, self.layout.latest_lock
        claim = self.layout.lock_claim(str(holder.get("token") or "unreadable"))
        try:
            await st.write_bytes(claim, self._marker(None), exclusive=True)
        except FileExistsError:
            claimer = await self._read_marker(claim)
            if claimer is not None and self._is_dead(claimer, lease=True):
                await st.delete(claim)  # its breaker died too
            return False
        try:
            current = await self._read_marker(path)
            if current is None or current.get("token") != holder.get("token"):
                return False
            logger.warning(
                "breaking the stale lock %s of pid %s on %s", st.uri(path), holder.get("pid"), holder.get("host")
            )
            await st.delete(path)
            return True
        finally:
            await _quietly(st.delete(claim))

    async def _read_marker(self, rel: str) -> dict[str, Any] | None:
        """The marker at ``rel``; None when there is none, ``{}`` when it is unreadable."""
        try:
            data = json.loads(await self.storage.read_bytes(rel))
        except (StorageNotFoundError, FileNotFoundError):
            return None
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _is_dead(self, marker: dict[str, Any], *, lease: bool = False) -> bool:
        """True when the process behind a marker is gone (same host) or the marker is too old."""
        if marker.get("host") == _HOST and isinstance(marker.get("pid"), int):
            if not _pid_alive(marker["pid"]):
                return True
            if marker["pid"] == os.getpid():
                return False
        try:
            started = datetime.fromisoformat(str(marker.get("started_at")).replace("Z", "+00:00"))
        except ValueError:
            return True
        limit = timedelta(seconds=max(self.lock_timeout * 5, 600)) if lease else self.stale_after
        return datetime.now(timezone.utc) - started > limit

    async def _promote(self, manifest: Manifest, *, check_order: bool) -> bool:
        """Under the lease, copy the archive over the latest and write the latest manifest.

        Returns False when a version that started later is already the latest.
        """
        async with self._latest_lock(self._marker(manifest.version, restore=not check_order)) as interrupted:
            if interrupted is not None:
                await self._finish_promotion(interrupted)
            return await self._replace_latest(manifest, check_order=check_order)

    async def _finish_promotion(self, holder: dict[str, Any]) -> None:
        """Redo the promotion a dead lock holder had begun, so the latest never moves back from it.

        It may have copied its archive over the latest and died before the
        latest manifest: finishing it makes the pair agree again, and the
        order check then compares against that version.
        """
        version = holder.get("version")
        if not isinstance(version, str) or self.layout.parse_manifest(f"{self.name}_{version}.manifest.json") is None:
            return
        try:
            manifest = Manifest.from_json(await self.storage.read_bytes(self.layout.archive_manifest(version)))
        except (StorageNotFoundError, FileNotFoundError, IntegrityError):
            return
        restore = bool(holder.get("restore"))
        if restore:
            manifest = replace(manifest, restored_at=utc_iso(datetime.now(timezone.utc)))
        logger.warning("finishing the interrupted promotion of version %s", version)
        await self._replace_latest(manifest, check_order=not restore)

    async def _replace_latest(self, manifest: Manifest, *, check_order: bool) -> bool:
        """Copy ``manifest``'s archive over the latest, then write the latest manifest (lease held).

        On failure the previous latest is put back, so the latest and its
        manifest still agree.
        """
        st = self.storage
        layout = Layout(self.name, manifest.compression is not None)
        current = await self._latest_manifest(quiet=True)
        if check_order and current is not None and current.version > manifest.version:
            logger.warning(
                "%s: version %s started later and is already latest; %s stays an archive only",
                st.uri(layout.latest),
                current.version,
                manifest.version,
            )
            return False
        # a latest without a manifest (the seed pipeline's) cannot be put back, so it is never removed either
        first = current is None and not await st.exists(layout.latest)
        try:
            await st.copy(
                manifest.archive, layout.latest, content_type=manifest.content_type, metadata=manifest.object_metadata()
            )
            await st.write_bytes(layout.latest_manifest, manifest.to_json(), content_type="application/json")
        except BaseException as exc:
            if isinstance(exc, Exception) and await self._manifest_is(manifest):
                return True  # the manifest landed and only its acknowledgement was lost
            if current is not None or first:
                await _quietly(self._put_back(layout, current), "putting the previous latest back")
            raise
        other = Layout(self.name, manifest.compression is None).latest
        if current is not None and current.compression != manifest.compression:
            # the other format's latest is no longer described by any manifest: never leave it stale
            logger.warning("compression changed: removing the stale %s", st.uri(other))
            await _quietly(st.delete(other), f"removing the stale {other}")
        return True

    async def _manifest_is(self, manifest: Manifest) -> bool:
        try:
            landed = await self._latest_manifest(quiet=True)
        except Exception:
            return False
        return landed is not None and landed.to_json() == manifest.to_json()

    async def _put_back(self, layout: Layout, previous: Manifest | None) -> None:
        """After a failed promotion, copy the previous version back over the latest (or remove a first one)."""
        st = self.storage
        if previous is None:
            await st.delete(layout.latest)
        elif Layout(self.name, previous.compression is not None).latest == layout.latest:
            await st.copy(
                previous.archive, layout.latest, content_type=previous.content_type, metadata=previous.object_metadata()
            )

    # --- reading the published state -----------------------------------------------------

    async def _latest_manifest(self, *, quiet: bool = False) -> Manifest | None:
        st = self.storage
        try:
            raw = await st.read_bytes(self.layout.latest_manifest)
        except (StorageNotFoundError, FileNotFoundError):
            return None
        try:
            return Manifest.from_json(raw, st.uri(self.layout.latest_manifest))
        except IntegrityError:
            if quiet:
                logger.warning("%s is not a valid manifest; ignoring it", st.uri(self.layout.latest_manifest))
                return None
            raise

    async def latest(self) -> Manifest | None:
        """The manifest of the current latest, or None when nothing is published."""
        return await self._latest_manifest()

    async def versions(self) -> list[VersionInfo]:
        """The archived versions, newest first.

        Archives of a publish still in flight, or left by a killed one, are not
        versions and are not listed. Archives written before manifests existed
        (by the seed pipeline) are listed with an unknown record count.
        """
        await self.storage.check(create=False)
        return await self._versions(describe=True)

    async def _versions(self, *, describe: bool) -> list[VersionInfo]:
        """The versions from two listings; ``describe`` adds record counts and ``is_latest`` (a read per version)."""
        st, layout = self.storage, self.layout
        archives, control = await asyncio.gather(st.list(ARCHIVE_DIR), st.list(CONTROL_DIR))
        manifests = {v for e in archives if (v := layout.parse_manifest(e.basename))}
        reserved = {v for e in control if (v := layout.parse_reservation(e.basename))}
        found: list[tuple[str, bool, Entry]] = []
        for entry in archives:
            parsed = layout.parse_archive(entry.basename)
            if parsed is None:
                continue
            version, compressed = parsed
            if version in reserved and version not in manifests:
                continue
            found.append((version, compressed, entry))
        latest = await self._latest_manifest(quiet=True) if describe else None
        semaphore = asyncio.Semaphore(16)

        async def info(version: str, compressed: bool, entry: Entry) -> VersionInfo:
            count: int | None = None
            if describe and version in manifests:
                async with semaphore:
                    with contextlib.suppress(Exception):
                        count = Manifest.from_json(await st.read_bytes(layout.archive_manifest(version))).record_count
            return VersionInfo(
                version=version,
                timestamp=version_time(version),
                uri=st.uri(entry.path),
                path=entry.path,
                size=entry.size,
                record_count=count,
                compression="gzip" if compressed else None,
                is_latest=latest is not None and latest.archive == entry.path,
            )

        infos = await asyncio.gather(*(info(*item) for item in found))
        return sorted(infos, key=lambda i: (i.version, i.compression or ""), reverse=True)

    async def _find_version(self, version: str | VersionInfo) -> VersionInfo:
        await self.storage.check(create=False)
        wanted = version.version if isinstance(version, VersionInfo) else str(version)
        for suffix in (".csv.gz", ".csv"):  # accept a file name too
            if wanted.startswith(f"{self.name}_") and wanted.endswith(suffix):
                wanted = wanted[len(self.name) + 1 : -len(suffix)]
        matches = [v for v in await self._versions(describe=False) if v.version == wanted]
        if isinstance(version, VersionInfo):
            matches = [v for v in matches if v.path == version.path] or matches
        if not matches:
            raise VersionNotFoundError(
                f"no archived version {wanted!r} of {self.name!r} in {self.storage.uri()}; list them with versions"
            )
        return matches[0]

    # --- verify ---------------------------------------------------------------------------

    async def verify(self, version: str | VersionInfo | None = None, *, strict: bool = False) -> VerifyReport:
        """Re-hash the latest (or an archived version) and check it against its manifest.

        For the latest, also checks that it equals the archive it came from.
        Returns a report; with ``strict=True`` raises :class:`IntegrityError` when
        it is not ok.
        """
        st = self.storage
        await st.check(create=False)
        problems: list[str] = []
        if version is None:
            target = "latest"
            manifest = await self._latest_manifest(quiet=False)
            if manifest is None:
                raise VersionNotFoundError(f"nothing published as {self.name!r} in {st.uri()}; publish first")
            rel = Layout(self.name, manifest.compression is not None).latest
        else:
            info = await self._find_version(version)
            target, rel = info.version, info.path
            try:
                manifest = Manifest.from_json(await st.read_bytes(self.layout.archive_manifest(info.version)))
            except (StorageNotFoundError, FileNotFoundError):
                raise IntegrityError(f"{st.uri(rel)} has no manifest; restore() can rebuild it") from None
        notes: list[str] = []
        try:
            measured = await self._measure(rel, manifest.compression is not None)
        except (StorageNotFoundError, FileNotFoundError):
            problems.append(f"{st.uri(rel)} is missing")
            measured = None
        if version is None and measured is not None and measured[1] != manifest.sha256:
            promoted = await self._promotion_under_way(measured[0], measured[1])
            if promoted is not None:
                notes.append(
                    f"the latest is version {promoted.version} but its manifest still names {manifest.version}: "
                    "a publish is replacing it, or one was interrupted (the next publish or cleanup() finishes it)"
                )
                manifest = promoted
        if measured is not None:
            size, sha, csv_sha, records = measured
            if size != manifest.size:
                problems.append(f"size is {size} bytes, the manifest says {manifest.size}")
            if sha != manifest.sha256:
                problems.append(f"sha256 is {sha}, the manifest says {manifest.sha256}")
            if csv_sha == _NOT_GZIP:
                problems.append("the stored bytes are not a complete gzip stream")
            elif csv_sha is not None and csv_sha != manifest.csv_sha256:
                problems.append(f"uncompressed sha256 is {csv_sha}, the manifest says {manifest.csv_sha256}")
            if records is not None and manifest.record_count is not None and records != manifest.record_count:
                problems.append(f"holds {records} records, the manifest says {manifest.record_count}")
        if version is None:
            problems += await self._check_source_archive(manifest)
        report = VerifyReport(
            ok=not problems,
            target=target,
            uri=st.uri(rel),
            version=manifest.version,
            sha256=measured[1] if measured else None,
            expected_sha256=manifest.sha256,
            record_count=manifest.record_count,
            problems=problems,
            notes=notes,
        )
        if strict and problems:
            raise IntegrityError(f"{report.uri}: " + "; ".join(problems))
        return report

    async def _promotion_under_way(self, size: int, sha256: str) -> Manifest | None:
        """The manifest of the version the lease holder is promoting, if the latest already holds its bytes.

        Between the copy and the latest manifest (a window of one request, or
        left open by a killed publisher until the next publish or cleanup) the
        latest and its manifest disagree; the lock names the version copied.
        """
        holder = await self._read_marker(self.layout.latest_lock)
        version = holder.get("version") if holder else None
        if not isinstance(version, str) or self.layout.parse_manifest(f"{self.name}_{version}.manifest.json") is None:
            return None
        try:
            manifest = Manifest.from_json(await self.storage.read_bytes(self.layout.archive_manifest(version)))
        except (StorageNotFoundError, FileNotFoundError, IntegrityError):
            return None
        return manifest if (manifest.size, manifest.sha256) == (size, sha256) else None

    async def _check_source_archive(self, manifest: Manifest) -> list[str]:
        st = self.storage
        try:
            archived = Manifest.from_json(await st.read_bytes(self.layout.archive_manifest(manifest.version)))
        except (StorageNotFoundError, FileNotFoundError):
            return [f"the manifest of its archive {manifest.version} is missing"]
        except IntegrityError as exc:
            return [str(exc)]
        problems = []
        if archived.sha256 != manifest.sha256:
            problems.append(f"it differs from its archive {manifest.version} (sha256 {archived.sha256})")
        try:
            size = int((await st.info(manifest.archive)).get("size") or 0)
            if size != archived.size:
                problems.append(f"its archive {st.uri(manifest.archive)} has {size} bytes, expected {archived.size}")
        except (StorageNotFoundError, FileNotFoundError):
            problems.append(f"its archive {st.uri(manifest.archive)} is missing")
        return problems

    async def _measure(self, rel: str, compressed: bool) -> tuple[int, str, str | None, int | None]:
        """Stream ``rel``: stored size and sha256, and uncompressed sha256 and record count."""
        import hashlib

        st = self.storage

        def read() -> tuple[int, str, str | None, int | None]:
            stored, plain = hashlib.sha256(), hashlib.sha256()
            inflate = zlib.decompressobj(wbits=31) if compressed else None
            size, lines, in_quotes, last, broken = 0, 0, False, b"", False
            with st.open_reader(rel) as handle:
                while chunk := handle.read(PART_SIZE):
                    size += len(chunk)
                    stored.update(chunk)
                    data = chunk
                    if inflate is not None and not broken:
                        try:
                            data = inflate.decompress(chunk)
                        except zlib.error:
                            broken, data = True, b""
                    if not broken:
                        plain.update(data)
                        n, in_quotes = count_records(data, in_quotes)
                        lines += n
                        last = data[-1:] or last
            if inflate is not None and not broken and not inflate.eof:
                broken = True
            if broken:
                return size, stored.hexdigest(), _NOT_GZIP, None
            if last and last != b"\n":
                lines += 1
            return size, stored.hexdigest(), plain.hexdigest(), max(lines - 1, 0)

        return await asyncio.to_thread(st.blocking, st.uri(rel), read)

    # --- restore, prune, cleanup ------------------------------------------------------------

    async def restore(self, version: str | VersionInfo) -> PublishResult:
        """Make an archived version the latest again (a copy plus its manifest).

        ``version`` is an entry of :meth:`versions` or its identifier. An archive
        without a manifest (written by the seed pipeline) gets one first.
        """
        st = self.storage
        info = await self._find_version(version)
        try:
            manifest = Manifest.from_json(await st.read_bytes(self.layout.archive_manifest(info.version)))
        except (StorageNotFoundError, FileNotFoundError):
            manifest = await self._rebuild_manifest(info)
        restored = replace(manifest, restored_at=utc_iso(datetime.now(timezone.utc)))
        await self._promote(restored, check_order=False)
        logger.info(
            "restored %s as the latest %s", info.uri, st.uri(Layout(self.name, info.compression is not None).latest)
        )
        return self._result(restored, latest_updated=True)

    async def _rebuild_manifest(self, info: VersionInfo) -> Manifest:
        st = self.storage
        compressed = info.compression is not None
        size, sha, csv_sha, records = await self._measure(info.path, compressed)
        if csv_sha is None or records is None:
            raise IntegrityError(f"{info.uri} is not a readable {'gzip ' if compressed else ''}CSV; cannot restore it")
        layout = Layout(self.name, compressed)
        manifest = Manifest(
            name=self.name,
            version=info.version,
            created_at=utc_iso(datetime.now(timezone.utc)),
            archive=info.path,
            compression="gzip" if compressed else None,
            content_type=layout.content_type,
            size=size,
            sha256=sha,
            csv_size=-1,
            csv_sha256=csv_sha,
            record_count=records,
            columns=[],
            library=library_version(),
        )
        await st.write_bytes(layout.archive_manifest(info.version), manifest.to_json(), content_type="application/json")
        return manifest

    async def prune(self, keep: int) -> list[str]:
        """Delete archives older than the newest ``keep``; never the one the latest came from.

        Versions whose publish is still in flight are kept too. Returns the
        deleted version identifiers.
        """
        if not isinstance(keep, int) or keep < 1:
            raise InputError(f"keep={keep!r}: keep at least 1 archived version")
        st, layout = self.storage, self.layout
        latest = await self._latest_manifest(quiet=True)
        in_flight = {v for e in await st.list(CONTROL_DIR) if (v := layout.parse_reservation(e.basename))}
        deleted = []
        for info in (await self.versions())[keep:]:
            if (latest is not None and info.path == latest.archive) or info.version in in_flight:
                continue
            await st.delete(info.path)
            await st.delete(self.layout.archive_manifest(info.version))
            deleted.append(info.version)
            logger.info("pruned %s", info.uri)
        return deleted

    async def cleanup(self) -> CleanupReport:
        """Remove what interrupted publishes of this name left behind.

        That is: reservations, locks and lock claims of processes that are gone
        (same machine) or older than ``stale_after``; archives they committed
        without a manifest; manifests whose archive is gone; incomplete
        multipart uploads under ``timestamped/``; hidden temp files of local
        writes. A promotion cut short between its copy and its manifest is
        finished. Publishes in flight are left alone. A publish runs it when it
        finds another publish's reservation or lock, which every interrupted
        publish leaves behind.
        """
        await self.storage.check(create=False)
        st, layout = self.storage, self.layout
        removed: list[str] = []
        aborted: list[str] = []
        # Uploads are listed before the reservations: an upload listed here belongs to a publish
        # whose reservation is either in the listing below (alive) or gone with its process.
        uploads = await st.incomplete_uploads(f"{ARCHIVE_DIR}/{self.name}_")
        archives, control, top = await asyncio.gather(st.list(ARCHIVE_DIR), st.list(CONTROL_DIR), st.list(""))
        present = {e.basename for e in archives}
        live: set[str] = set()
        dead: set[str] = set()
        for entry in control:
            version = layout.parse_reservation(entry.basename)
            if version is None:
                continue
            marker = await self._read_marker(entry.path)
            if marker is not None:
                (dead if self._is_dead(marker) else live).add(version)
        for entry in archives:
            parsed = layout.parse_archive(entry.basename)
            # committed by a dead publish before its manifest: not a version
            if parsed and parsed[0] in dead and _basename(layout.archive_manifest(parsed[0])) not in present:
                await st.delete(entry.path)
                removed.append(st.uri(entry.path))
            version = layout.parse_manifest(entry.basename)
            # a manifest whose archive is gone (a prune or a failed publish cut short)
            if version is not None and version not in live and not await self._has_archive(version, present):
                await st.delete(entry.path)
                removed.append(st.uri(entry.path))
        for key, upload_id, _initiated in uploads:
            parsed = layout.parse_archive(key.rsplit("/", 1)[-1])
            if parsed is None or parsed[0] in live:
                continue
            try:
                await st.abort_upload(key, upload_id)
            except StorageError as exc:  # completed or aborted since it was listed
                logger.info("could not abort the upload of %s: %s", st.uri(key), exc)
                continue
            aborted.append(st.uri(key))
        for entry in [*archives, *top, *control]:
            if layout.is_temp_of(entry.basename) and self._temp_is_dead(entry):
                await st.delete(entry.path)
                removed.append(st.uri(entry.path))
        for entry in control:
            version = layout.parse_reservation(entry.basename)
            if version is not None and version in dead:
                await st.delete(entry.path)
                removed.append(st.uri(entry.path))
            elif layout.is_lock_claim(entry.basename):
                marker = await self._read_marker(entry.path)
                if marker is not None and self._is_dead(marker, lease=True):
                    await st.delete(entry.path)
                    removed.append(st.uri(entry.path))
            elif entry.basename == _basename(layout.latest_lock):
                marker = await self._read_marker(entry.path)
                if marker is not None and self._is_dead(marker, lease=True):
                    # taking the lease breaks the dead lock and finishes its promotion
                    async with self._latest_lock(self._marker(None)) as interrupted:
                        if interrupted is not None:
                            await self._finish_promotion(interrupted)
                            removed.append(st.uri(entry.path))
        if removed or aborted:
            logger.info("cleanup of %s: removed %d leftovers, aborted %d uploads", st.uri(), len(removed), len(aborted))
        return CleanupReport(removed=removed, aborted_uploads=aborted)

    async def _has_archive(self, version: str, present: set[str]) -> bool:
        names = [_basename(Layout(self.name, compressed).archive(version)) for compressed in (True, False)]
        if any(name in present for name in names):
            return True
        # a listing is not a snapshot: ask again before calling it gone
        checks = [self.storage.exists(Layout(self.name, compressed).archive(version)) for compressed in (True, False)]
        return any(await asyncio.gather(*checks))

    def _temp_is_dead(self, entry: Entry) -> bool:
        # temp names end with .<pid>-<random>.tmp (see storage.temp_name)
        token = entry.basename.rsplit(".", 2)[-2] if entry.basename.count(".") >= 2 else ""
        pid_text = token.split("-", 1)[0]
        if self.storage.is_local and pid_text.isdigit():
            pid = int(pid_text)
            return pid != os.getpid() and not _pid_alive(pid)
        if entry.modified is None:
            return False
        return datetime.now(timezone.utc) - entry.modified.astimezone(timezone.utc) > self.stale_after

    # --- blocking twins ----------------------------------------------------------------------

    def publish_sync(self, source: Any, **kwargs: Any) -> PublishResult:
        """Blocking :meth:`publish`, for scripts without an event loop."""
        return run_sync(self.publish(source, **kwargs))

    def publish_file_sync(self, csv_path: str | os.PathLike[str], **kwargs: Any) -> PublishResult:
        """Blocking :meth:`publish_file`."""
        return run_sync(self.publish_file(csv_path, **kwargs))

    def versions_sync(self) -> list[VersionInfo]:
        """Blocking :meth:`versions`."""
        return run_sync(self.versions())

    def verify_sync(self, version: str | VersionInfo | None = None, *, strict: bool = False) -> VerifyReport:
        """Blocking :meth:`verify`."""
        return run_sync(self.verify(version, strict=strict))

    def restore_sync(self, version: str | VersionInfo) -> PublishResult:
        """Blocking :meth:`restore`."""
        return run_sync(self.restore(version))

    def prune_sync(self, keep: int) -> list[str]:
        """Blocking :meth:`prune`."""
        return run_sync(self.prune(keep))

    def cleanup_sync(self) -> CleanupReport:
        """Blocking :meth:`cleanup`."""
        return run_sync(self.cleanup())


def _basename(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def _version_of(layout: Layout, basename: str) -> str | None:
    parsed = layout.parse_archive(basename)
    return parsed[0] if parsed else layout.parse_manifest(basename)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _commit_local(local: Writer | None) -> None:
    """Commit the local CSV (fsync, then rename) in a worker thread."""
    if local is None:
        return
    try:
        await asyncio.to_thread(local.commit)
    except OSError as exc:
        raise translate(exc, f"the local CSV {local.name}") from exc


async def _quietly(coro: Any, what: str = "cleanup") -> None:
    """Await a best-effort step; log, never raise, its failure."""
    try:
        await coro
    except Exception as exc:  # a cleanup step must not hide the real outcome
        logger.warning("%s failed: %s", what, exc)
