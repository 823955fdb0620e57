"""Promotion: make an archived version the latest, and never leave the pair disagreeing or going back in time.

The latest is a server-side copy of its archive, then its manifest. Where the
backend sends conditional copies (:attr:`~csvpublish.storage.Capabilities.conditional_copy`)
both are compare-and-swaps against what the promoter read: a copy over the
latest only if it still has the tag that was read, a manifest only if it
still has its tag. Where the service enforces them (probed by the publish,
:meth:`~csvpublish.Storage.enforces_conditions`) that alone keeps promotions
in order (:meth:`Promoter.swap`); elsewhere promotions take the lease
(:meth:`Promoter.promote`). A promotion that fails after the copy puts the
previous latest back; one that a kill cut short is finished by whoever next
takes the lease, so the latest never moves back in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timezone

from csvpublish.errors import ConflictError, StorageNotFoundError
from csvpublish.manifest import CONTENT_TYPE as MANIFEST_TYPE
from csvpublish.manifest import Manifest, utc_iso
from csvpublish.naming import Layout

from .catalog import Catalog, LatestSeen
from .common import Target, quietly
from .lease import Held, Leases, Marker

logger = logging.getLogger("csvpublish")

SWAP_TRIES = 20
"""Compare-and-swaps lost in a row before a promotion gives up (each loss means another publisher moved on)."""

Alongside = Callable[[], Awaitable[None]]
"""A step run at the same time as the copy over the latest (releasing the reservation)."""


class Promoter:
    """Replaces the latest of one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.catalog = Catalog(target)
        self.leases = Leases(target)
        self.conditional = target.storage.capabilities.conditional_copy

    async def promote(
        self, manifest: Manifest, *, check_order: bool, held: Held | None = None, alongside: Alongside | None = None
    ) -> bool:
        """Under the lease (taken here unless ``held``), copy the archive over the latest, then its manifest.

        Returns False when a version that started later is already the latest
        (with ``check_order``; a restore promotes whatever it is given).
        ``alongside`` runs at the same time as the copy.
        """
        if held is None:
            held = await self.leases.acquire(Marker.new(manifest.version, restore=not check_order))
        try:
            if held.broken is not None:
                await self.finish(held.broken)
            return await self._replace_latest(manifest, check_order=check_order, alongside=alongside)
        finally:
            await self.leases.release_latest(held)

    async def swap(
        self, manifest: Manifest, seen: LatestSeen | None = None, alongside: Alongside | None = None
    ) -> bool:
        """Replace the latest by compare-and-swap alone, where the service enforces the conditions.

        ``seen`` is what the publisher read of the latest before it streamed (a stale
        view only costs a lost swap and a second look); ``alongside`` runs with the copy.
        """
        return await self._replace_latest(manifest, check_order=True, seen=seen, alongside=alongside)

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
        # the lease is taken while the archive is committed: a holder killed then has no archive to promote
        if manifest is None or not await self.target.storage.exists(manifest.archive):
            return
        if holder.restore:
            manifest = replace(manifest, restored_at=utc_iso(datetime.now(timezone.utc)))
        logger.warning("finishing the interrupted promotion of version %s", manifest.version)
        await self._replace_latest(manifest, check_order=not holder.restore)

    # --- one replacement of the latest -----------------------------------------------------

    async def _see(self, layout: Layout) -> LatestSeen:
        """The latest as it is now: its tags where the backend has them, else its manifest alone."""
        if self.conditional:
            return await self.catalog.latest_seen(layout)
        current = await self.catalog.latest_manifest(quiet=True)
        # a latest without a manifest (the seed pipeline's) cannot be put back, so it is never removed either
        exists = current is not None or await self.target.storage.exists(layout.latest)
        return LatestSeen("" if exists else None, None, current, None)

    async def _replace_latest(
        self,
        manifest: Manifest,
        *,
        check_order: bool,
        seen: LatestSeen | None = None,
        alongside: Alongside | None = None,
    ) -> bool:
        """Copy ``manifest``'s archive over the latest, then write the latest manifest.

        On failure the previous latest is put back, so the latest and its
        manifest still agree.
        """
        st = self.target.storage
        layout = self.target.layout_of(manifest)
        seen = seen or await self._see(layout)
        for _ in range(SWAP_TRIES):
            if check_order and seen.version is not None and seen.version > manifest.version:
                logger.warning(
                    "%s: version %s started later and is already latest; %s stays an archive only",
                    st.uri(layout.latest),
                    seen.version,
                    manifest.version,
                )
                if alongside is not None:
                    await alongside()
                await quietly(self._describe(seen, layout), "describing the latest")
                return False
            steps = [self._copy(manifest, layout, seen)] + ([alongside()] if alongside is not None else [])
            alongside = None
            copied, *_ = await asyncio.gather(*steps, return_exceptions=True)
            if not isinstance(copied, FileExistsError):
                break
            seen = await self._see(layout)  # lost a compare-and-swap: another promotion moved the latest
        else:
            raise ConflictError(
                f"{st.uri(layout.latest)}: the latest kept changing; {manifest.version} was not promoted"
            )
        if isinstance(copied, BaseException):
            raise copied
        try:
            await self._write_manifest(manifest, layout, seen)
        except BaseException as exc:
            if isinstance(exc, Exception) and await self._landed(manifest):
                return True  # the manifest landed and only its acknowledgement was lost
            if seen.manifest is not None or seen.tag is None:
                await quietly(self._put_back(manifest, layout, seen), "putting the previous latest back")
            raise
        old = self.target.layout_of(seen.manifest).latest if seen.manifest is not None else layout.latest
        if old != layout.latest:
            # the other format's latest is no longer described by any manifest: never leave it stale
            logger.warning("compression or delimiter changed: removing the stale %s", st.uri(old))
            await quietly(st.delete(old), f"removing the stale {old}")
        return True

    async def _copy(self, manifest: Manifest, layout: Layout, seen: LatestSeen | None) -> None:
        """The latest's bytes: a server-side copy of the archive, with the manifest's metadata on it.

        With ``seen`` on a backend that sends conditions: only if the latest is still what was seen.
        """
        conditional = self.conditional and seen is not None
        await self.target.storage.copy(
            manifest.archive,
            layout.latest,
            content_type=manifest.content_type,
            metadata=manifest.object_metadata(),
            size=manifest.size,
            if_match=seen.tag if conditional and seen is not None else None,
            if_absent=conditional and seen is not None and seen.tag is None,
            cache_control=self.target.cache.latest,  # never the archive's: the copy replaces its headers
        )

    async def _write_manifest(self, manifest: Manifest, layout: Layout, seen: LatestSeen) -> None:
        """The latest manifest, by compare-and-swap where the backend sends conditions.

        Another promotion may have copied over ours meanwhile: then its manifest is the one to stay.
        """
        st, body, cache = self.target.storage, manifest.to_json(), self.target.cache.latest
        tag = seen.manifest_tag
        for _ in range(SWAP_TRIES):
            if not self.conditional:
                write = st.write_bytes(layout.latest_manifest, body, content_type=MANIFEST_TYPE, cache_control=cache)
                await self._with_descriptor(write, manifest)
                return
            try:
                write = st.write_bytes(
                    layout.latest_manifest,
                    body,
                    content_type=MANIFEST_TYPE,
                    if_match=tag,
                    exclusive=tag is None,
                    cache_control=cache,
                )
                await self._with_descriptor(write, manifest)
                return
            except (FileExistsError, StorageNotFoundError):
                now = await self.catalog.latest_seen(layout)
                if now.object_version != manifest.version:  # a later promotion replaced the latest after our copy:
                    later = now.manifest  # its manifest follows it; our descriptor, written meanwhile, must not stay
                    if later is not None and later.version == now.object_version:
                        await quietly(self.target.write_descriptor(later, latest=True), "describing the latest")
                    return
                tag = now.manifest_tag
        raise ConflictError(f"{st.uri(layout.latest_manifest)} kept changing; {manifest.version} was not described")

    async def _with_descriptor(self, write: Awaitable[None], manifest: Manifest) -> None:
        """The latest manifest's ``write`` and, at the same time, the latest's Data Package descriptor.

        The descriptor is written again with each try of the manifest; one that
        lost to a later promotion writes that one's. Its failure is logged, not
        raised: the latest and its manifest agree, and the next publish writes it.
        """
        described = quietly(self.target.write_descriptor(manifest, latest=True), "writing the latest's descriptor")
        written, _ = await asyncio.gather(write, described, return_exceptions=True)
        if isinstance(written, BaseException):
            raise written

    async def _describe(self, seen: LatestSeen, layout: Layout) -> None:
        """If the latest names a version its manifest does not (a promotion cut short), write that one's manifest.

        Conditional on the manifest still being what was seen, so it never replaces a newer one.
        """
        if not self.conditional or seen.object_version is None or seen.manifest is None:
            return
        if seen.object_version == seen.manifest.version:
            return
        manifest = await self.catalog.manifest_if_valid(seen.object_version)
        if manifest is None:
            return
        logger.warning("the latest is version %s: writing its manifest, cut short before", manifest.version)
        write = self.target.storage.write_bytes(
            layout.latest_manifest,
            manifest.to_json(),
            content_type=MANIFEST_TYPE,
            if_match=seen.manifest_tag,
            cache_control=self.target.cache.latest,
        )
        await self._with_descriptor(write, manifest)

    async def _landed(self, manifest: Manifest) -> bool:
        try:
            landed = await self.catalog.latest_manifest(quiet=True)
        except Exception:
            return False
        return landed is not None and landed.to_json() == manifest.to_json()

    async def _put_back(self, manifest: Manifest, layout: Layout, seen: LatestSeen) -> None:
        """After a failed promotion, copy the previous version back over the latest (or remove a first one).

        Where the backend sends conditions, only while the latest is still ours.
        """
        st, previous = self.target.storage, seen.manifest
        mine = await st.state(layout.latest) if self.conditional else None
        if self.conditional and (mine is None or mine.metadata.get("version") != manifest.version):
            return
        if previous is None:
            await st.delete(layout.latest)
        elif self.target.layout_of(previous).latest == layout.latest:
            back = LatestSeen(mine.tag, None, None, None) if mine else None  # only while it is still ours
            await self._copy(previous, layout, back)
        # the descriptor may have landed beside the manifest that failed
        back_too = self.target.write_descriptor(previous, latest=True) if previous else st.delete(layout.descriptor)
        await quietly(back_too, "putting the descriptor back")
