"""Verified reads: download the latest or a version, or iterate its rows. Reads and lists only.

Every byte is hashed as it streams, by the :class:`~.verify.Digest` that
``verify()`` uses, and checked against the manifest once the last one has
passed: a download appears at its path only when it matched, and an iteration of
rows raises :class:`IntegrityError` after the last row when the bytes did not.
A latest whose manifest still names the previous version (a promotion in
progress) is checked against the manifest of the version it holds, found as
``verify()`` finds it. Nothing here writes to the store: no lock, no
reservation, no temp object; read and list permissions are enough.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from csvpublish._sync import run_sync
from csvpublish.datapackage import descriptor_json
from csvpublish.dialect import Dialect
from csvpublish.errors import InputError, IntegrityError
from csvpublish.manifest import Manifest
from csvpublish.results import DownloadResult, VersionInfo
from csvpublish.storage import PART_SIZE, Storage, Writer, committing
from csvpublish.storage.local import local_writer

from .common import Target
from .verify import Digest, Measurement, Verifier, compare, promotion_note

Row = list[str]


class Sink(Protocol):
    """A writable binary stream, such as ``sys.stdout.buffer``."""

    def write(self, data: bytes, /) -> object: ...


DownloadTo = str | os.PathLike[str] | Sink
"""Where a download goes: a local path (written atomically) or a binary stream (written as it streams)."""


@dataclass(frozen=True)
class Plan:
    """What one read reads: the object, the manifest it must match, and whether it is the latest."""

    rel: str
    uri: str
    manifest: Manifest
    latest: bool

    @property
    def dialect(self) -> Dialect:
        return Dialect.from_dict(self.manifest.dialect)

    @property
    def compressed(self) -> bool:
        return self.manifest.compression is not None


def chunks(storage: Storage, plan: Plan) -> Generator[bytes, None, None]:
    """The stored bytes of ``plan``'s object, blocking, each request retried (a failed read leaves the offset)."""
    handle = storage.blocking(plan.uri, lambda: storage.open_reader(plan.rel))
    with handle:
        while chunk := storage.blocking(plan.uri, lambda: handle.read(PART_SIZE)):
            yield chunk


def stream_to(storage: Storage, plan: Plan, write: Callable[[bytes], object], *, decompress: bool) -> Measurement:
    """Stream the object to ``write`` (as stored, or its CSV), hashing it: blocking, for a worker thread."""
    digest = Digest(compressed=plan.compressed, header=plan.dialect.header)
    for chunk in chunks(storage, plan):
        pieces = digest.feed(chunk)
        if not decompress:
            write(chunk)
        for piece in pieces:  # every piece is consumed: the CSV is hashed too
            if decompress:
                write(piece)
    return digest.measurement()


def record_end(text: str, in_quotes: bool) -> tuple[int | None, bool]:
    """Where the last whole record of ``text`` ends (after a line end outside quotes), and the quote state at its end.

    ``in_quotes`` is the state ``text`` starts in. A doubled quote toggles the
    state twice, so the parity rule is exact for RFC 4180 CSV.

    >>> record_end('a,"b\\nc"\\r\\n1,"x\\n', False)
    (9, True)
    >>> record_end('y', True)
    (None, True)
    """
    segments = text.split('"')
    at_end = in_quotes ^ (len(segments) % 2 == 0)
    offset = len(text)
    for i in range(len(segments) - 1, -1, -1):
        offset -= len(segments[i])
        if (i % 2 == 0) != in_quotes:  # outside quotes
            found = segments[i].rfind("\n")
            if found >= 0:
                return offset + found + 1, at_end
        offset -= 1  # the quote before this segment
    return None, at_end


class RowStream:
    """The rows of one stored object, pulled batch by batch (blocking): the one engine of ``read`` and ``read_sync``.

    Memory stays bounded: a chunk of :data:`~csvpublish.storage.PART_SIZE` stored
    bytes, CSV pieces of at most :data:`~.verify.PIECE` bytes, and the rows of one piece.
    """

    def __init__(self, storage: Storage, plan: Plan) -> None:
        dialect = plan.dialect
        self.plan = plan
        self.digest = Digest(compressed=plan.compressed, header=dialect.header)
        self.decoder = codecs.getincrementaldecoder("utf-8-sig" if dialect.bom else "utf-8")()
        self.delimiter = dialect.delimiter
        self.header = dialect.header
        self.chunks = chunks(storage, plan)
        self.pieces: Iterator[bytes] = iter(())
        self.pending: list[str] = []
        """Text of a record not yet whole."""
        self.in_quotes = False
        self.done = False

    def next_batch(self) -> list[Row] | None:
        """The next rows (the header row skipped); None after the last."""
        while not self.done:
            piece = next(self.pieces, None)
            if piece is None:
                chunk = next(self.chunks, None)
                if chunk is None:
                    self.done = True
                    return self._parse("".join([*self.pending, self._decode(b"", final=True)]))
                self.pieces = self.digest.feed(chunk)
                continue
            text = self._decode(piece)
            cut, self.in_quotes = record_end(text, self.in_quotes)
            if cut is None:
                self.pending.append(text)
                continue
            whole = "".join([*self.pending, text[:cut]])
            self.pending = [text[cut:]]
            return self._parse(whole)
        return None

    def _decode(self, data: bytes, *, final: bool = False) -> str:
        try:
            return self.decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise IntegrityError(f"{self.plan.uri} is not UTF-8 text ({exc.reason}); it is damaged") from None

    def _parse(self, text: str) -> list[Row]:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        if self.header and rows:
            self.header = False
            del rows[0]
        return rows

    def close(self) -> None:
        self.chunks.close()

    def measurement(self) -> Measurement:
        """What the stored bytes were, once :meth:`next_batch` returned None."""
        return self.digest.measurement()


class Reading:
    """Verified reads of one target: manifests, downloads and rows."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.verifier = Verifier(target)

    async def plan(self, version: str | VersionInfo | None) -> Plan:
        """The object to read and the manifest it must match (the latest's, or the version's)."""
        st = self.target.storage
        await st.check(create=False)
        _, rel, manifest = await self.verifier.resolve(version)
        return Plan(rel, st.uri(rel), manifest, latest=version is None)

    async def manifest(self, version: str | VersionInfo | None) -> Manifest:
        """The manifest of the latest or of ``version``."""
        return (await self.plan(version)).manifest

    async def settle(self, plan: Plan, measured: Measurement) -> tuple[Manifest, list[str]]:
        """The manifest the bytes read matched, and notes; :class:`IntegrityError` when they match none."""
        manifest, notes = plan.manifest, []
        if plan.latest and measured.sha256 != manifest.sha256:
            promoted = await self.verifier.promotion_under_way(measured, manifest.version)
            if promoted is not None:
                notes.append(promotion_note(promoted, manifest))
                manifest = promoted
        problems = compare(measured, manifest)
        if problems:
            raise IntegrityError(f"{plan.uri}: " + "; ".join(problems))
        return manifest, notes

    async def download(
        self, to: DownloadTo, version: str | VersionInfo | None, *, decompress: bool, datapackage: bool = False
    ) -> DownloadResult:
        """See :meth:`Publisher.download`."""
        if datapackage and not isinstance(to, (str, os.PathLike)):
            raise InputError("datapackage=True describes a downloaded file: give a path, not a stream")
        plan = await self.plan(version)
        path: str | None = None
        writer: Writer | None = None
        write: Callable[[bytes], object]
        if isinstance(to, (str, os.PathLike)):
            path = os.path.abspath(to)
            writer = await asyncio.to_thread(local_writer, path)  # a hidden temp file beside the path
            write = writer.write
        else:
            write = to.write
        try:
            measured = await asyncio.to_thread(stream_to, self.target.storage, plan, write, decompress=decompress)
            manifest, notes = await self.settle(plan, measured)
            if writer is not None:
                await asyncio.to_thread(writer.commit)  # fsync, then rename over the path
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        plain = decompress and plan.compressed
        descriptor = None
        if datapackage and path is not None:
            descriptor = await asyncio.to_thread(self._describe, manifest, path, plain)
        return DownloadResult(
            path=path,
            uri=plan.uri,
            version=manifest.version,
            size=manifest.csv_size if plain else manifest.size,
            sha256=manifest.csv_sha256 if plain else manifest.sha256,
            decompressed=plain,
            record_count=manifest.record_count,
            manifest=manifest,
            notes=notes,
            descriptor=descriptor,
        )

    def _describe(self, manifest: Manifest, path: str, plain: bool) -> str:
        """Write the Data Package descriptor of the file at ``path`` beside it (atomically); its path."""
        written = replace(manifest, size=manifest.csv_size, sha256=manifest.csv_sha256, compression=None)
        folder, name = os.path.split(path)
        target = os.path.join(folder, name.split(".", 1)[0] + ".datapackage.json")
        body = descriptor_json(written if plain else manifest, name, primary_key=self.target.primary_key)
        with committing(local_writer(target)) as writer:
            writer.write(body)
        return target

    async def rows(self, version: str | VersionInfo | None) -> AsyncIterator[Row]:
        """See :meth:`Publisher.read`: the engine's batches pulled in a worker thread."""
        plan = await self.plan(version)
        stream = RowStream(self.target.storage, plan)
        try:
            while (batch := await asyncio.to_thread(stream.next_batch)) is not None:
                for row in batch:
                    yield row
            measured = await asyncio.to_thread(stream.measurement)
        finally:
            await asyncio.to_thread(stream.close)
        await self._check_rows(plan, measured)

    def rows_sync(self, version: str | VersionInfo | None) -> Iterator[Row]:
        """See :meth:`Publisher.read_sync`: the same engine's batches pulled on this thread."""
        plan = run_sync(self.plan(version))
        stream = RowStream(self.target.storage, plan)
        try:
            while (batch := stream.next_batch()) is not None:
                yield from batch
            measured = stream.measurement()
        finally:
            stream.close()
        run_sync(self._check_rows(plan, measured))

    async def _check_rows(self, plan: Plan, measured: Measurement) -> None:
        manifest, _ = await self.settle(plan, measured)
        if Dialect.from_dict(manifest.dialect) != plan.dialect:
            raise IntegrityError(
                f"{plan.uri} became version {manifest.version}, written in another CSV dialect, while it was read; "
                "read it again"
            )
