"""``Publisher``: the facade over the publishing protocol, one module per job.

::

    flow.py          publish: reserve -> stream -> commit -> manifest -> promote
    lease.py         Marker, version reservations and the latest's lease
    promotion.py     replace the latest, finish an interrupted promotion, put the previous one back
    catalog.py       one listing, the versions, each version's manifest
    sharing.py       signed read URLs of the latest or a version
    verify.py        re-read a stored version and compare it with its manifest
    reading.py       verified reads: download, rows, manifests (reads and lists only)
    maintenance.py   restore, prune, cleanup (one helper per kind of leftover)
    keyed.py         key files of keyed publishes, and diff
    partitioned.py   one snapshot from many workers: begin -> parts -> assemble -> digest -> promote
    common.py        Target: the name and storage every step works on

>>> import asyncio
>>> publisher = Publisher("memory://doc-publisher", name="books")
>>> result = asyncio.run(publisher.publish([{"Barcode": "1", "Title": "Dune"}]))
>>> result.latest_uri, result.record_count
('memory://doc-publisher/books_latest.csv.gz', 1)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from csvpublish._sync import run_sync
from csvpublish.changes import ChangeSummary, key_columns
from csvpublish.compression import DEFAULT_LEVEL, GzipCompressor
from csvpublish.dialect import Dialect
from csvpublish.errors import InputError
from csvpublish.manifest import Manifest
from csvpublish.naming import Layout, validate_name
from csvpublish.pipeline import Progress
from csvpublish.results import CleanupReport, DownloadResult, PublishResult, VerifyReport, VersionInfo
from csvpublish.retry import RetryPolicy
from csvpublish.schema import SchemaPolicy, validate_policy
from csvpublish.storage import Storage

from .catalog import Catalog
from .common import ARCHIVE_CACHE_CONTROL, LATEST_CACHE_CONTROL, CachePolicy, Target
from .flow import PublishFlow, PublishOptions, Source
from .keyed import diff
from .maintenance import Maintenance
from .partitioned import PartitionedPublish
from .reading import DownloadTo, Reading
from .sharing import Sharer
from .verify import Verifier

__all__ = ["Publisher"]


class Publisher:
    """Publish CSV snapshots of one name to one destination.

    Layout for ``name="books"`` (compressed)::

        <destination>/books_latest.csv.gz                      same bytes as the newest archive
        <destination>/books_latest.manifest.json
        <destination>/books.datapackage.json                   its Frictionless Data Package descriptor
        <destination>/timestamped/books_<YYYYmmdd_HHMMSS>.csv.gz
        <destination>/timestamped/books_<YYYYmmdd_HHMMSS>.manifest.json
        <destination>/timestamped/books_<YYYYmmdd_HHMMSS>.datapackage.json

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
        retry: the retry policy of transient storage errors (ignored when ``destination`` is a :class:`Storage`).
        lock_timeout: seconds to wait for another publisher to finish replacing the latest.
        stale_after: age after which another machine's unfinished publish counts as dead.
        delimiter: ``","`` (default), ``"\\t"`` (publishes ``.tsv``), ``";"`` or ``"|"``.
        lineterminator: ``"\\r\\n"`` (default) or ``"\\n"``.
        header: write the header row (default True).
        bom: start the CSV with a UTF-8 byte-order mark, for Excel (default False).
            For :meth:`publish_file` the delimiter and header describe the file; its
            line ends and byte-order mark are read from it.
        archive_cache_control: the ``Cache-Control`` of each archive and its manifest, which
            never change (default ``public, max-age=31536000, immutable``); None sends none.
        on_schema_change: ``"refuse"`` (default): a snapshot whose columns differ from the
            latest's raises :class:`SchemaChangedError` and writes nothing; ``"allow"`` publishes it.
        latest_cache_control: the ``Cache-Control`` of the latest and its manifest (default
            ``no-cache``: a CDN asks the bucket before serving a copy); None sends none.
            Both are stored where the backend keeps headers (S3, GCS; see
            ``Storage.capabilities.cache_control``); a folder and ``memory://`` ignore them.
        key: a column (or list of columns) identifying a row: each publish records what changed since
            the previous latest (``PublishResult.changes``) in a key file beside its archive.
        unique_key: refuse (``SnapshotRejectedError``) a snapshot in which a key is on more than one row.

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
        delimiter: str = ",",
        lineterminator: str = "\r\n",
        header: bool = True,
        bom: bool = False,
        archive_cache_control: str | None = ARCHIVE_CACHE_CONTROL,
        latest_cache_control: str | None = LATEST_CACHE_CONTROL,
        key: str | Sequence[str] | None = None,
        unique_key: bool = False,
        on_schema_change: SchemaPolicy = "refuse",
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
        self.dialect = Dialect(delimiter=delimiter, lineterminator=lineterminator, header=header, bom=bom)
        self.layout = Layout(self.name, compression, self.dialect.extension)
        self.cache = CachePolicy(archive=archive_cache_control, latest=latest_cache_control)
        self.key = key_columns(key)
        self.unique_key = unique_key
        if unique_key and self.key is None:
            raise InputError("unique_key=True needs key= (the column or columns that must be unique)")
        self.on_schema_change = validate_policy(on_schema_change)

    def __repr__(self) -> str:
        return f"Publisher({self.storage.uri()!r}, name={self.name!r}, compression={self.compression})"

    def _target(self) -> Target:
        return Target(self.storage, self.name, self.layout, self.lock_timeout, self.stale_after, self.cache, self.key)

    def _flow(self) -> PublishFlow:
        options = PublishOptions(
            compression=self.compression,
            keep=self.keep,
            skip_unchanged=self.skip_unchanged,
            min_records=self.min_records,
            escape_formulas=self.escape_formulas,
            compression_level=self.compression_level,
            compression_backend=self.compression_backend,
            dialect=self.dialect,
            key=self.key,
            unique_key=self.unique_key,
            on_schema_change=self.on_schema_change,
        )
        return PublishFlow(self._target(), options)

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
            SnapshotRejectedError: a guard refused the snapshot (:class:`SchemaChangedError`: its columns).
            StorageError: the storage failed; the previous latest is untouched.
        """
        return await self._flow().run(Source(records=source, headers=headers, local_path=local_path, progress=progress))

    async def publish_file(
        self, csv_path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> PublishResult:
        """Publish an existing CSV file, reading it once.

        Raises:
            MissingInputError: ``csv_path`` does not exist.
            SnapshotRejectedError: the file is empty, or has fewer than ``min_records`` rows.
        """
        return await self._flow().run(Source.of_file(Path(csv_path), progress))

    async def begin_partitioned(
        self, partitions: int, *, headers: Sequence[str] | None = None
    ) -> PartitionedPublish:
        """Start a publish whose CSV many workers write, one partition each, assembled by the store.

        Hand the result's ``writer`` to the workers (``writer.write_sync(i, partition)``
        returns a receipt), then ``commit(receipts)`` or ``abort()``: the same CSV as
        publishing the partitions in index order in one process (one gzip member per
        partition). ``headers`` names the columns (needed when a partition may be
        empty). :func:`csvpublish.dask.publish_dask` does all of this for Dask.

        Raises:
            InputError: the destination cannot assemble parts (``memory://``), or ``partitions`` is out of range.
        """
        return await PartitionedPublish.begin(self._flow(), partitions, headers)

    def begin_partitioned_sync(
        self, partitions: int, *, headers: Sequence[str] | None = None
    ) -> PartitionedPublish:
        """Blocking :meth:`begin_partitioned`."""
        return run_sync(self.begin_partitioned(partitions, headers=headers))

    # --- reading the published state -------------------------------------------------

    async def latest(self) -> Manifest | None:
        """The manifest of the current latest, or None when nothing is published."""
        return await Catalog(self._target()).latest_manifest()

    async def versions(self) -> list[VersionInfo]:
        """The archived versions, newest first.

        Archives of a publish still in flight, or left by a killed one, are not
        versions and are not listed. Archives written before manifests existed
        (by the seed pipeline) are listed with an unknown record count.
        """
        await self.storage.check(create=False)
        return await Catalog(self._target()).versions(describe=True)

    async def verify(self, version: str | VersionInfo | None = None, *, strict: bool = False) -> VerifyReport:
        """Re-hash the latest (or an archived version) and check it against its manifest.

        For the latest, also checks that it equals the archive it came from.
        Returns a report; with ``strict=True`` raises :class:`IntegrityError` when
        it is not ok.
        """
        return await Verifier(self._target()).verify(version, strict=strict)

    async def share_url(self, version: str | VersionInfo | None = None, *, expires: int = 3600) -> str:
        """A URL that downloads the latest (or an archived version) without credentials for ``expires`` seconds.

        A presigned GET on S3 (SigV4, 7 days at most), a signed URL on GCS (with
        a service account's key, 7 days at most), a read-only SAS on Azure (with
        the account key). Anyone holding it can read the object until it expires:
        csvpublish never logs it. The latest's URL reads whatever is the latest
        when it is used.

        Raises:
            InputError: the destination cannot sign (a folder, ``memory://``), its
                credentials cannot (anonymous), or ``expires`` is out of range.
            VersionNotFoundError: no archived version is ``version``.
            StorageNotFoundError: nothing is published yet (for the latest).
        """
        return await Sharer(self._target()).share_url(version, expires=expires)

    async def download(
        self, path: DownloadTo, *, version: str | VersionInfo | None = None, decompress: bool = False,
        datapackage: bool = False,
    ) -> DownloadResult:  # fmt: skip
        """Write the latest (or ``version``) to ``path`` atomically, checked as it streams (see ``reading.py``).

        ``datapackage=True`` writes a Data Package descriptor of the file beside it (``books.datapackage.json``).
        """
        return await Reading(self._target()).download(path, version, decompress=decompress, datapackage=datapackage)

    def read(self, version: str | VersionInfo | None = None) -> AsyncIterator[list[str]]:
        """The data rows of the latest (or ``version``), streamed and checked; the header is the manifest's columns."""
        return Reading(self._target()).rows(version)

    async def read_manifest(self, version: str | VersionInfo | None = None) -> Manifest:
        """The manifest of the latest (or of ``version``); VersionNotFoundError when there is none."""
        return await Reading(self._target()).manifest(version)

    async def diff(
        self, old: str | VersionInfo, new: str | VersionInfo, *, key: str | Sequence[str] | None = None
    ) -> ChangeSummary:
        """What changed from version ``old`` to ``new`` (identifiers, :class:`VersionInfo` or ``"latest"``), by key.

        Streams both versions' key files (written by keyed publishes) in O(1) memory; ``key``
        defaults to the publisher's, else the versions' own.

        Raises VersionNotFoundError (no manifest), InputError (no key file of that key: published
        without ``key=``) or IntegrityError (a key file does not match its manifest).
        """
        return await diff(self._target(), old, new, key_columns(key) or self.key)

    # --- restore, prune, cleanup -------------------------------------------------------

    async def restore(self, version: str | VersionInfo) -> PublishResult:
        """Make an archived version the latest again (a copy plus its manifest).

        ``version`` is an entry of :meth:`versions` or its identifier. An archive
        without a manifest (written by the seed pipeline) gets one first. Its
        columns may differ from the latest's: a restore is explicit, so the
        schema guard does not refuse it (later publishes are checked against it).
        """
        return await Maintenance(self._target()).restore(version)

    async def prune(self, keep: int) -> list[str]:
        """Delete archives older than the newest ``keep``; never the one the latest came from.

        Versions whose publish is still in flight are kept too. Returns the
        deleted version identifiers.
        """
        return await Maintenance(self._target()).prune(keep)

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
        return await Maintenance(self._target()).cleanup()

    # --- blocking twins ----------------------------------------------------------------

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

    def download_sync(self, path: DownloadTo, **kwargs: Any) -> DownloadResult:
        """Blocking :meth:`download`."""
        return run_sync(self.download(path, **kwargs))

    def read_sync(self, version: str | VersionInfo | None = None) -> Iterator[list[str]]:
        """Blocking :meth:`read`: an iterator of the data rows, on the same engine."""
        return Reading(self._target()).rows_sync(version)

    def read_manifest_sync(self, version: str | VersionInfo | None = None) -> Manifest:
        """Blocking :meth:`read_manifest`."""
        return run_sync(self.read_manifest(version))

    def share_url_sync(self, version: str | VersionInfo | None = None, *, expires: int = 3600) -> str:
        """Blocking :meth:`share_url`."""
        return run_sync(self.share_url(version, expires=expires))

    def diff_sync(
        self, old: str | VersionInfo, new: str | VersionInfo, *, key: str | Sequence[str] | None = None
    ) -> ChangeSummary:
        """Blocking :meth:`diff`."""
        return run_sync(self.diff(old, new, key=key))

    def restore_sync(self, version: str | VersionInfo) -> PublishResult:
        """Blocking :meth:`restore`."""
        return run_sync(self.restore(version))

    def prune_sync(self, keep: int) -> list[str]:
        """Blocking :meth:`prune`."""
        return run_sync(self.prune(keep))

    def cleanup_sync(self) -> CleanupReport:
        """Blocking :meth:`cleanup`."""
        return run_sync(self.cleanup())
