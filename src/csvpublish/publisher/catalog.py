"""The catalog: what is published under a name, from one listing, and each version's manifest read once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from csvpublish.errors import IntegrityError, StorageNotFoundError, VersionNotFoundError
from csvpublish.manifest import Manifest
from csvpublish.naming import ARCHIVE_DIR, CONTROL_DIR, Layout, version_time
from csvpublish.results import VersionInfo
from csvpublish.storage import Entry

from .common import Target

logger = logging.getLogger("csvpublish")

_DESCRIBE_AT_ONCE = 16
"""Manifests read at once when :meth:`Catalog.versions` adds record counts."""


@dataclass(frozen=True)
class LatestSeen:
    """The latest object and its manifest as one publisher read them, with the tags a compare-and-swap names."""

    tag: str | None
    """The latest object's tag; None when there is no latest."""
    object_version: str | None
    """The version the latest object's own metadata names (None for a latest written without it)."""
    manifest: Manifest | None
    """The latest manifest (None when absent or unreadable)."""
    manifest_tag: str | None
    """The latest manifest's tag; None when it does not exist."""

    @property
    def version(self) -> str | None:
        """The version the latest holds: its own metadata's, else its manifest's."""
        return self.object_version or (self.manifest.version if self.manifest else None)


@dataclass(frozen=True)
class Listing:
    """The archive folder and the control folder of a destination, listed together."""

    archives: list[Entry]
    control: list[Entry]


class Catalog:
    """Reads what is published for one name: listings, versions and manifests. Never writes."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.layout = target.layout

    async def listing(self) -> Listing:
        """``timestamped/`` and ``.csvpublish/``, listed at the same time."""
        st = self.target.storage
        archives, control = await asyncio.gather(st.list(ARCHIVE_DIR), st.list(CONTROL_DIR))
        return Listing(archives, control)

    def taken(self, listing: Listing) -> set[str]:
        """Every version identifier an archive, a manifest or a reservation uses."""
        layout = self.layout
        taken = set()
        for entry in listing.archives:
            parsed = layout.parse_archive(entry.basename)
            version = parsed.version if parsed else layout.parse_manifest(entry.basename)
            if version:
                taken.add(version)
        return taken | self.reserved(listing.control)

    def reserved(self, control: list[Entry]) -> set[str]:
        """The versions whose reservation is among ``control``: publishes in flight, or dead ones."""
        return {v for e in control if (v := self.layout.parse_reservation(e.basename))}

    # --- manifests ---------------------------------------------------------------------

    async def manifest(self, version: str) -> Manifest:
        """The manifest of an archived version.

        Raises:
            StorageNotFoundError: it has none.
            IntegrityError: it is not a valid manifest.
        """
        st, rel = self.target.storage, self.layout.archive_manifest(version)
        return Manifest.from_json(await st.read_bytes(rel), st.uri(rel))

    async def manifest_if_valid(self, version: object) -> Manifest | None:
        """The manifest of ``version`` if that is a version identifier with a readable manifest, else None."""
        name = f"{self.target.name}_{version}.manifest.json"
        if not isinstance(version, str) or self.layout.parse_manifest(name) is None:
            return None
        try:
            return await self.manifest(version)
        except (StorageNotFoundError, FileNotFoundError, IntegrityError):
            return None

    async def latest_manifest(self, *, quiet: bool = False) -> Manifest | None:
        """The latest's manifest; None when nothing is published (or, ``quiet``, when it is unreadable)."""
        st, rel = self.target.storage, self.layout.latest_manifest
        try:
            # where the backend reads an object and its tag in one request, that one: not a look-up and a read
            raw = (await st.read_tagged(rel)).data if st.capabilities.conditional_copy else await st.read_bytes(rel)
        except (StorageNotFoundError, FileNotFoundError):
            return None
        try:
            return Manifest.from_json(raw, st.uri(rel))
        except IntegrityError:
            if quiet:
                logger.warning("%s is not a valid manifest; ignoring it", st.uri(rel))
                return None
            raise

    async def latest_seen(self, layout: Layout | None = None) -> LatestSeen:
        """The latest's tag and version and its manifest with its tag: two requests at once.

        For backends with :attr:`~csvpublish.storage.Capabilities.conditional_copy` only.
        """
        st, layout = self.target.storage, layout or self.layout

        async def manifest() -> tuple[Manifest | None, str | None]:
            try:
                tagged = await st.read_tagged(layout.latest_manifest)
            except (StorageNotFoundError, FileNotFoundError):
                return None, None
            try:
                return Manifest.from_json(tagged.data, st.uri(layout.latest_manifest)), tagged.tag
            except IntegrityError:
                logger.warning("%s is not a valid manifest; it will be replaced", st.uri(layout.latest_manifest))
                return None, tagged.tag

        state, (found, tag) = await asyncio.gather(st.state(layout.latest), manifest())
        if state is None:
            return LatestSeen(None, None, found, tag)
        return LatestSeen(state.tag, state.metadata.get("version") or None, found, tag)

    # --- versions ----------------------------------------------------------------------

    async def versions(self, *, describe: bool) -> list[VersionInfo]:
        """The versions, newest first; ``describe`` adds record counts and ``is_latest`` (a read per version).

        Archives of a publish still in flight, or left by a killed one, are not
        versions: their reservation is there and their manifest is not.
        """
        listing = await self.listing()
        layout = self.layout
        manifests = {v for e in listing.archives if (v := layout.parse_manifest(e.basename))}
        in_flight = self.reserved(listing.control) - manifests
        found: list[tuple[str, bool, Entry]] = []
        for entry in listing.archives:
            parsed = layout.parse_archive(entry.basename)
            if parsed is not None and parsed.version not in in_flight:
                found.append((parsed.version, parsed.compressed, entry))
        latest = await self.latest_manifest(quiet=True) if describe else None
        semaphore = asyncio.Semaphore(_DESCRIBE_AT_ONCE)

        async def info(version: str, compressed: bool, entry: Entry) -> VersionInfo:
            count: int | None = None
            if describe and version in manifests:
                async with semaphore:
                    with contextlib.suppress(Exception):
                        count = (await self.manifest(version)).record_count
            return VersionInfo(
                version=version,
                timestamp=version_time(version),
                uri=self.target.storage.uri(entry.path),
                path=entry.path,
                size=entry.size,
                record_count=count,
                compression="gzip" if compressed else None,
                is_latest=latest is not None and latest.archive == entry.path,
            )

        infos = await asyncio.gather(*(info(*item) for item in found))
        return sorted(infos, key=lambda i: (i.version, i.compression or ""), reverse=True)

    async def find(self, version: str | VersionInfo) -> VersionInfo:
        """The archived version named by an identifier, a file name or a :class:`VersionInfo`.

        Raises:
            VersionNotFoundError: there is none.
        """
        st, name = self.target.storage, self.target.name
        await st.check(create=False)
        wanted = version.version if isinstance(version, VersionInfo) else str(version)
        for suffix in (".csv.gz", ".csv"):  # accept a file name too
            if wanted.startswith(f"{name}_") and wanted.endswith(suffix):
                wanted = wanted[len(name) + 1 : -len(suffix)]
        matches = [v for v in await self.versions(describe=False) if v.version == wanted]
        if isinstance(version, VersionInfo):
            matches = [v for v in matches if v.path == version.path] or matches
        if not matches:
            raise VersionNotFoundError(
                f"no archived version {wanted!r} of {name!r} in {st.uri()}; list them with versions"
            )
        return matches[0]
