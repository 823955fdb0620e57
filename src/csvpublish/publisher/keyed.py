"""Keyed publishes and diffs: the I/O around :mod:`csvpublish.changes`.

A keyed publish fetches the previous latest's key file into a temporary file while its
rows stream (no round trip of its own), then in one pass writes its own key file and
merge-joins it with that one; the key file is committed beside the archive's manifest.
:func:`diff` streams two versions' key files side by side.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from csvpublish.changes import (
    ChangeSummary,
    Encoder,
    KeyCollector,
    KeyFile,
    Record,
    Tally,
    encoded,
    header_bytes,
    merge,
)
from csvpublish.errors import InputError, IntegrityError, VersionNotFoundError
from csvpublish.manifest import Manifest
from csvpublish.results import VersionInfo
from csvpublish.storage import PART_SIZE, Writer

from .catalog import Catalog
from .common import Target

logger = logging.getLogger("csvpublish")

KEYS_TYPE = "application/gzip"
_READ_BYTES = 2**20
"""Key-file bytes read at a time: a diff holds about this much of each file, inflated, whatever its rows."""


def mismatch(manifest: Manifest, key: Sequence[str], delimiter: str | None) -> str | None:
    """Why ``manifest``'s version has no key file to compare by ``key`` (None: it has one)."""
    keys = manifest.keys
    if keys is None:
        return f"version {manifest.version} has no key file (published without key=, or by an older csvpublish)"
    if list(keys.get("columns", [])) != list(key):
        return f"version {manifest.version} is keyed by {keys.get('columns')}, not {list(key)}"
    if delimiter is not None and keys.get("delimiter") != delimiter:
        return f"version {manifest.version} was written with the delimiter {keys.get('delimiter')!r}"
    return None


def _chunks(handle: IO[bytes], expected: str | None, where: str) -> Iterator[bytes]:
    """A stored key file's bytes; :class:`IntegrityError` at the end when they do not have ``expected`` sha256."""
    digest = hashlib.sha256()
    while chunk := handle.read(_READ_BYTES):
        digest.update(chunk)
        yield chunk
    if expected is not None and digest.hexdigest() != expected:
        raise IntegrityError(f"{where} does not match the sha256 its manifest records")


def _records(handle: IO[bytes], manifest: Manifest, where: str) -> Iterator[Record]:
    assert manifest.keys is not None
    yield from KeyFile(_chunks(handle, manifest.keys.get("sha256"), where), where)


@dataclass(frozen=True)
class Keyed:
    """A keyed publish's key file, written and not yet committed, and what it found."""

    writer: Writer
    keys: dict[str, Any]
    """The manifest's ``keys``."""
    changes: dict[str, Any]
    """The manifest's ``changes``."""
    summary: ChangeSummary | None
    duplicate_keys: int
    duplicate_examples: list[str]


class KeyedPublish:
    """The key-file side of one keyed publish."""

    def __init__(self, target: Target, key: tuple[str, ...], delimiter: str) -> None:
        self.target = target
        self.key = key
        self.delimiter = delimiter
        self.previous: Manifest | None = None
        self.reason: str | None = None
        self._fetch: asyncio.Task[IO[bytes]] | None = None

    def start(self, previous: Manifest | None) -> None:
        """Begin fetching the previous latest's key file, when it has one of this key."""
        self.previous = previous
        self.reason = None if previous is None else mismatch(previous, self.key, self.delimiter)
        if previous is not None and self.reason is None:
            self._fetch = asyncio.create_task(asyncio.to_thread(self._download, previous))

    def _download(self, manifest: Manifest) -> IO[bytes]:
        st, rel = self.target.storage, str((manifest.keys or {}).get("file"))
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()

        def copy() -> None:
            spool.seek(0)
            spool.truncate()
            with st.open_reader(rel) as handle:
                for chunk in _chunks(handle, (manifest.keys or {}).get("sha256"), st.uri(rel)):
                    spool.write(chunk)

        try:
            st.blocking(st.uri(rel), copy)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    async def _previous_file(self) -> IO[bytes] | None:
        if self._fetch is None:
            return None
        try:
            return await self._fetch
        except Exception as exc:  # a damaged or missing old key file makes the changes unknown, not the publish fail
            logger.warning("the previous latest's key file cannot be read (%s); changes are unknown", exc)
            self.reason = f"the key file of version {self.previous and self.previous.version} cannot be read ({exc})"
            return None

    async def write(self, version: str, collector: KeyCollector) -> Keyed:
        """Write this version's key file (uncommitted) and compare it with the previous latest's."""
        st, rel = self.target.storage, self.target.layout.keys(version)
        old = await self._previous_file()
        writer = await asyncio.to_thread(
            st.blocking,
            st.uri(rel),
            lambda: st.open_writer(
                rel,
                content_type=KEYS_TYPE,
                exclusive=True,
                part_size=PART_SIZE,
                cache_control=self.target.cache.archive,
            ),
        )
        encoder = Encoder(header_bytes(self.key, self.delimiter, collector.rows), writer.write)

        def run() -> Tally:
            assert self.previous is None or old is not None or self.reason is not None
            olds: Any = () if old is None else _records(old, self.previous, "the previous key file")  # type: ignore[arg-type]
            return merge(olds, encoded(collector.records(), encoder))

        try:
            tally = await asyncio.to_thread(st.blocking, st.uri(rel), run, retry=False)
        except BaseException:
            await asyncio.to_thread(writer.discard)
            raise
        return self._outcome(writer, encoder, collector.rows, tally, version)

    def _outcome(self, writer: Writer, encoder: Encoder, rows: int, tally: Tally, version: str) -> Keyed:
        rel = self.target.layout.keys(version)
        distinct = tally.added + tally.changed + tally.unchanged
        keys = {
            "file": rel,
            "sha256": encoder.sha256,
            "size": encoder.size,
            "columns": list(self.key),
            "delimiter": self.delimiter,
            "rows": rows,
            "distinct_keys": distinct,
            "duplicate_keys": tally.duplicate_keys,
        }
        previous = self.previous.version if self.previous is not None else None
        summary = None if self.reason is not None else ChangeSummary.of(tally, self.key, previous, version)
        changes = summary.to_dict() if summary is not None else {"previous_version": previous, "unknown": self.reason}
        return Keyed(writer, keys, changes, summary, tally.duplicate_keys, tally.examples["duplicate"])

    async def close(self) -> None:
        """Drop the fetched key file (and stop a fetch still running)."""
        if self._fetch is None:
            return
        if not self._fetch.done():
            self._fetch.cancel()
        try:
            spool = await self._fetch
        except BaseException:  # cancelled or failed: nothing to close
            return
        spool.close()


async def _resolve(catalog: Catalog, version: str | VersionInfo) -> Manifest:
    if version == "latest":
        found = await catalog.latest_manifest()
        if found is None:
            raise VersionNotFoundError(
                f"nothing is published as {catalog.target.name!r} in {catalog.target.storage.uri()}"
            )
        return found
    wanted = version.version if isinstance(version, VersionInfo) else version
    manifest = await catalog.manifest_if_valid(wanted)
    if manifest is None:
        raise VersionNotFoundError(
            f"no version {wanted!r} of {catalog.target.name!r} with a manifest in {catalog.target.storage.uri()}; "
            "list them with versions"
        )
    return manifest


async def diff(
    target: Target, old: str | VersionInfo, new: str | VersionInfo, key: tuple[str, ...] | None
) -> ChangeSummary:
    """Compare two versions by their key files; see :meth:`Publisher.diff`."""
    st, catalog = target.storage, Catalog(target)
    await st.check(create=False)
    before, after = await asyncio.gather(_resolve(catalog, old), _resolve(catalog, new))
    if key is None:
        key = tuple((after.keys or before.keys or {}).get("columns") or ())
    for manifest in (before, after):
        reason = mismatch(manifest, key, None)
        if reason is not None:
            raise InputError(
                f"cannot compare by key: {reason}. diff reads key files, never the CSVs: publish with "
                f"Publisher(key={list(key) if key else '...'}) to record them"
            )
    if (before.keys or {}).get("delimiter") != (after.keys or {}).get("delimiter"):
        raise InputError(f"versions {before.version} and {after.version} use different delimiters: their rows differ")

    def run() -> Tally:
        rel_old, rel_new = str((before.keys or {})["file"]), str((after.keys or {})["file"])
        with st.open_reader(rel_old) as a, st.open_reader(rel_new) as b:
            return merge(_records(a, before, st.uri(rel_old)), _records(b, after, st.uri(rel_new)))

    tally = await asyncio.to_thread(st.blocking, st.uri(), run)
    return ChangeSummary.of(tally, key, before.version, after.version)
