"""Promotion: make an archived version the latest, under the lease, and never leave the pair disagreeing.

The latest is a server-side copy of its archive, then its manifest. A
promotion that fails after the copy puts the previous latest back; one that a
kill cut short is finished by whoever next takes the lease, so the latest
never moves back in time.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone

from csvpublish.manifest import Manifest, utc_iso
from csvpublish.naming import Layout

from .catalog import Catalog
from .common import Target, quietly
from .lease import Leases, Marker

logger = logging.getLogger("csvpublish")


class Promoter:
    """Replaces the latest of one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.catalog = Catalog(target)
        self.leases = Leases(target)

    async def promote(self, manifest: Manifest, *, check_order: bool) -> bool:
        """Under the lease, copy the archive over the latest and write the latest manifest.

        Returns False when a version that started later is already the latest
        (with ``check_order``; a restore promotes whatever it is given).
        """
        async with self.leases.latest(Marker.new(manifest.version, restore=not check_order)) as interrupted:
            if interrupted is not None:
                await self.finish(interrupted)
            return await self._replace_latest(manifest, check_order=check_order)

    async def finish_interrupted(self) -> bool:
        """Take the lease to break a dead holder's lock and finish its promotion; True when there was one."""
        async with self.leases.latest(Marker.new(None)) as interrupted:
            if interrupted is None:
                return False
            await self.finish(interrupted)
            return True

    async def finish(self, holder: Marker) -> None:
        """Redo the promotion a dead lock holder had begun, so the latest never moves back from it.

        It may have copied its archive over the latest and died before the
        latest manifest: finishing it makes the pair agree again, and the
        order check then compares against that version.
        """
        manifest = await self.catalog.manifest_if_valid(holder.version)
        if manifest is None:
            return
        if holder.restore:
            manifest = replace(manifest, restored_at=utc_iso(datetime.now(timezone.utc)))
        logger.warning("finishing the interrupted promotion of version %s", manifest.version)
        await self._replace_latest(manifest, check_order=not holder.restore)

    async def _replace_latest(self, manifest: Manifest, *, check_order: bool) -> bool:
        """Copy ``manifest``'s archive over the latest, then write the latest manifest (lease held).

        On failure the previous latest is put back, so the latest and its
        manifest still agree.
        """
        st = self.target.storage
        layout = self.target.layout_of(manifest)
        current = await self.catalog.latest_manifest(quiet=True)
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
            await self._copy(manifest, layout)
            await st.write_bytes(
                layout.latest_manifest,
                manifest.to_json(),
                content_type="application/json",
                cache_control=self.target.cache.latest,
            )
        except BaseException as exc:
            if isinstance(exc, Exception) and await self._landed(manifest):
                return True  # the manifest landed and only its acknowledgement was lost
            if current is not None or first:
                await quietly(self._put_back(layout, current), "putting the previous latest back")
            raise
        old = self.target.layout_of(current).latest if current is not None else layout.latest
        if old != layout.latest:
            # the other format's latest is no longer described by any manifest: never leave it stale
            logger.warning("compression or delimiter changed: removing the stale %s", st.uri(old))
            await quietly(st.delete(old), f"removing the stale {old}")
        return True

    async def _copy(self, manifest: Manifest, layout: Layout) -> None:
        """The latest's bytes: a server-side copy of the archive, with the manifest's metadata on it."""
        await self.target.storage.copy(
            manifest.archive,
            layout.latest,
            content_type=manifest.content_type,
            metadata=manifest.object_metadata(),
            cache_control=self.target.cache.latest,  # never the archive's: the copy replaces its headers
        )

    async def _landed(self, manifest: Manifest) -> bool:
        try:
            landed = await self.catalog.latest_manifest(quiet=True)
        except Exception:
            return False
        return landed is not None and landed.to_json() == manifest.to_json()

    async def _put_back(self, layout: Layout, previous: Manifest | None) -> None:
        """After a failed promotion, copy the previous version back over the latest (or remove a first one)."""
        if previous is None:
            await self.target.storage.delete(layout.latest)
        elif self.target.layout_of(previous).latest == layout.latest:
            await self._copy(previous, layout)
