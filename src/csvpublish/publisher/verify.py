"""Verify: re-read a stored version and compare it with its manifest. Reads only."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from csvpublish.compression import Gunzip
from csvpublish.dialect import Dialect
from csvpublish.errors import IntegrityError, StorageNotFoundError, VersionNotFoundError
from csvpublish.manifest import Manifest
from csvpublish.results import VerifyReport, VersionInfo
from csvpublish.rows import RecordCounter
from csvpublish.storage import PART_SIZE, Storage

from .catalog import Catalog
from .common import Target
from .lease import Leases

HASHING_QUEUE = 16
"""Chunks and pieces waiting for the hashing thread (each at most a read block or a :data:`PIECE`)."""
PIECE = 1 << 20
"""Most CSV bytes one piece of a decompressed chunk holds: memory stays bounded however well the data compressed."""


@dataclass(frozen=True)
class Measurement:
    """What one read of a stored object found."""

    size: int
    sha256: str
    csv_sha256: str | None
    """sha256 of the CSV (after gunzip); None when the bytes are not a complete gzip stream."""
    records: int | None
    """Data records of the CSV; None when it could not be read."""
    csv_size: int | None = None
    """Bytes of the CSV (after gunzip); None when it could not be read."""


class Digest:
    """Hashes a stored object fed chunk by chunk, and gives back the CSV it holds: the one engine of every check.

    >>> digest = Digest(compressed=False)
    >>> b"".join(digest.feed(b"a\\r\\n1\\r\\n")), digest.measurement().records
    (b'a\\r\\n1\\r\\n', 1)
    """

    def __init__(
        self, *, compressed: bool, header: bool = True, count: bool = True, hash_on: Executor | None = None
    ) -> None:
        self.stored, self.plain = hashlib.sha256(), hashlib.sha256()
        self.hash_on = hash_on
        """A one-thread executor that hashes while this thread inflates; None: hash here."""
        self._hashing: deque[Future[None]] = deque()
        self.counter = RecordCounter(header=header) if count else None
        """Counts the CSV's records; None when the caller knows them already (``records`` is then None)."""
        self.inflate = Gunzip() if compressed else None  # one gzip member, or one per partition
        self.size = self.csv_size = 0
        self.broken = False
        """The stored bytes are not a gzip stream: no CSV comes out of them any more."""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Hash ``chunk`` as stored; return its CSV bytes, in pieces of at most :data:`PIECE` (consume them all)."""
        self.size += len(chunk)
        self._hash(self.stored, chunk)
        return self._csv(chunk)

    def _hash(self, hasher: Any, data: bytes) -> None:
        if self.hash_on is None:
            hasher.update(data)
            return
        self._hashing.append(self.hash_on.submit(hasher.update, data))  # one thread: in order
        if len(self._hashing) > HASHING_QUEUE:
            self._hashing.popleft().result()

    def _csv(self, data: bytes) -> Iterator[bytes]:
        inflate = self.inflate
        if inflate is None:
            self._count(data)
            yield data
            return
        if self.broken:
            return
        try:
            for piece in inflate.pieces(data, PIECE):
                self._count(piece)
                yield piece
        except inflate.errors:
            self.broken = True

    def _count(self, piece: bytes) -> None:
        self.csv_size += len(piece)
        self._hash(self.plain, piece)
        if self.counter is not None:
            self.counter.feed(piece)

    def measurement(self) -> Measurement:
        """What was fed, once it has all been."""
        while self._hashing:
            self._hashing.popleft().result()
        if self.broken or (self.inflate is not None and (not self.inflate.complete or self.size == 0)):
            return Measurement(self.size, self.stored.hexdigest(), None, None)
        records = self.counter.records if self.counter is not None else None
        return Measurement(self.size, self.stored.hexdigest(), self.plain.hexdigest(), records, self.csv_size)


def read_measured(
    storage: Storage, rel: str, *, compressed: bool, header: bool = True, count: bool = True,
    block: int = PART_SIZE, each: Callable[[bytes], object] | None = None,
) -> Measurement:  # fmt: skip
    """Stream ``rel`` once, blocking: the next block downloads (and goes to ``each``) while this one
    inflates, and a third thread hashes."""
    with storage.open_reader(rel) as handle, ThreadPoolExecutor(1) as ahead, ThreadPoolExecutor(1) as hashing:
        digest = Digest(compressed=compressed, header=header, count=count, hash_on=hashing)

        def fetch() -> bytes:
            chunk: bytes = handle.read(block)
            if each is not None:
                each(chunk)
            return chunk

        pending = ahead.submit(fetch)
        while chunk := pending.result():
            pending = ahead.submit(fetch)
            for _ in digest.feed(chunk):
                pass
        return digest.measurement()


async def measure(storage: Storage, rel: str, compressed: bool, *, header: bool = True) -> Measurement:
    """Stream ``rel`` once: stored size and sha256, and the CSV's sha256 and record count."""
    read = functools.partial(read_measured, storage, rel, compressed=compressed, header=header)
    return await asyncio.to_thread(storage.blocking, storage.uri(rel), read)


class Verifier:
    """Checks the latest or an archived version of one target against its manifest."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.catalog = Catalog(target)
        self.leases = Leases(target)

    async def verify(self, version: str | VersionInfo | None, *, strict: bool) -> VerifyReport:
        """Re-hash the latest (``version=None``) or an archived version; see :meth:`Publisher.verify`."""
        st = self.target.storage
        await st.check(create=False)
        target, rel, manifest = await self.resolve(version)
        problems: list[str] = []
        notes: list[str] = []
        try:
            header = Dialect.from_dict(manifest.dialect).header
            measured: Measurement | None = await measure(st, rel, manifest.compression is not None, header=header)
        except (StorageNotFoundError, FileNotFoundError):
            problems.append(f"{st.uri(rel)} is missing")
            measured = None
        if version is None and measured is not None and measured.sha256 != manifest.sha256:
            promoted = await self.promotion_under_way(measured, manifest.version)
            if promoted is not None:
                notes.append(promotion_note(promoted, manifest))
                manifest = promoted
        if measured is not None:
            problems += compare(measured, manifest)
        if version is None:
            problems += await self._check_source_archive(manifest)
        report = VerifyReport(
            ok=not problems,
            target=target,
            uri=st.uri(rel),
            version=manifest.version,
            sha256=measured.sha256 if measured else None,
            expected_sha256=manifest.sha256,
            record_count=manifest.record_count,
            problems=problems,
            notes=notes,
        )
        if strict and problems:
            raise IntegrityError(f"{report.uri}: " + "; ".join(problems))
        return report

    async def resolve(self, version: str | VersionInfo | None) -> tuple[str, str, Manifest]:
        """What is checked: its name in the report, its path, and the manifest it must match."""
        st = self.target.storage
        if version is None:
            manifest = await self.catalog.latest_manifest(quiet=False)
            if manifest is None:
                raise VersionNotFoundError(f"nothing published as {self.target.name!r} in {st.uri()}; publish first")
            return "latest", self.target.layout_of(manifest).latest, manifest
        info = await self.catalog.find(version)
        try:
            return info.version, info.path, await self.catalog.manifest(info.version)
        except (StorageNotFoundError, FileNotFoundError):
            raise IntegrityError(f"{st.uri(info.path)} has no manifest; restore() can rebuild it") from None

    async def promotion_under_way(self, measured: Measurement, named: str) -> Manifest | None:
        """The manifest of the version the lease holder is promoting, if the latest already holds its bytes.

        Between the copy and the latest manifest (a window of one request, or
        left open by a killed publisher until the next publish or cleanup) the
        latest and its manifest disagree; the lock, or the latest's own metadata,
        names the version copied.
        """
        st, layout = self.target.storage, self.target.layout
        holder = await self.leases.read(layout.latest_lock)
        candidates = [holder.version if holder else None]
        if st.capabilities.user_metadata:  # a compare-and-swap takes no lease: the latest names its own version
            with contextlib.suppress(StorageNotFoundError, FileNotFoundError):
                candidates.append((await st.metadata(layout.latest)).get("version"))
        for version in candidates:
            if version == named:  # the manifest names this version already: its disagreement is a fault
                continue
            manifest = await self.catalog.manifest_if_valid(version)
            if manifest is not None and (manifest.size, manifest.sha256) == (measured.size, measured.sha256):
                return manifest
        return None

    async def _check_source_archive(self, manifest: Manifest) -> list[str]:
        """Problems of the archive the latest came from: its manifest must agree, its size must match."""
        st = self.target.storage
        try:
            archived = await self.catalog.manifest(manifest.version)
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


def promotion_note(promoted: Manifest, named: Manifest) -> str:
    """What to say of a latest that holds ``promoted`` while its manifest still names ``named``."""
    return (
        f"the latest is version {promoted.version} but its manifest still names {named.version}: "
        "a publish is replacing it, or one was interrupted (the next publish or cleanup() finishes it)"
    )


def compare(measured: Measurement, manifest: Manifest) -> list[str]:
    """Where a measurement disagrees with a manifest, one sentence each."""
    problems = []
    if measured.size != manifest.size:
        problems.append(f"size is {measured.size} bytes, the manifest says {manifest.size}")
    if measured.sha256 != manifest.sha256:
        problems.append(f"sha256 is {measured.sha256}, the manifest says {manifest.sha256}")
    if measured.csv_sha256 is None:
        problems.append("the stored bytes are not a complete gzip stream")
    elif measured.csv_sha256 != manifest.csv_sha256:
        problems.append(f"uncompressed sha256 is {measured.csv_sha256}, the manifest says {manifest.csv_sha256}")
    elif measured.csv_size is not None and manifest.csv_size >= 0 and measured.csv_size != manifest.csv_size:
        problems.append(f"uncompressed size is {measured.csv_size} bytes, the manifest says {manifest.csv_size}")
    if measured.records is not None and manifest.record_count is not None and measured.records != manifest.record_count:
        problems.append(f"holds {measured.records} records, the manifest says {manifest.record_count}")
    return problems
