"""Reservations and the latest's lease: conditional creates of small marker objects in ``.csvpublish/``.

A publish first reserves its version name (``.csvpublish/<name>_<version>.lock``,
created only if absent), so two publishes never share an archive name. It then
replaces the latest under a lease (``.csvpublish/<name>.latest.lock``): a lock
object whose marker says who holds it, since when, and which version it is
promoting. A dead holder's lock is broken by whoever first claims it
(``<lock>.<token>.break``, created only if absent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from csvpublish.errors import ConflictError, StorageNotFoundError
from csvpublish.manifest import utc_iso
from csvpublish.naming import ARCHIVE_DIR, CONTROL_DIR, next_version, version_id

from .catalog import Catalog, Listing
from .common import HOST, Target, basename, pid_alive, quietly

logger = logging.getLogger("csvpublish")

RESERVE_TRIES = 100
LEASE_POLL_FIRST, LEASE_POLL_MAX = 0.05, 1.0
"""Seconds between looks at a held lease: doubling from the first to the most."""


@dataclass(frozen=True)
class Marker:
    """The body of a reservation, a lock or a claim: who holds it, since when, for which version.

    >>> marker = Marker.new("20261126_053708")
    >>> Marker.parse(marker.to_json()) == marker
    True
    >>> Marker.parse(b"{broken").token is None
    True
    """

    token: str | None
    """Unique per marker: tells a retried create that landed from someone else's."""
    pid: int | None = None
    host: str | None = None
    version: str | None = None
    started_at: str | None = None
    restore: bool = False
    """The lease of a restore: the version it promotes may be older than the latest."""

    @classmethod
    def new(cls, version: str | None, *, restore: bool = False) -> Marker:
        return cls(
            token=uuid.uuid4().hex,
            pid=os.getpid(),
            host=HOST,
            version=version,
            started_at=utc_iso(datetime.now(timezone.utc)),
            restore=restore,
        )

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "pid": self.pid,
            "host": self.host,
            "version": self.version,
            "started_at": self.started_at,
            "token": self.token,
        }
        if self.restore:
            data["restore"] = True
        return json.dumps(data).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Marker:
        """The marker in ``raw``; one without a token (a dead holder) when it is unreadable."""
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(token=None)
        if not isinstance(data, dict):
            return cls(token=None)
        pid, token = data.get("pid"), data.get("token")
        return cls(
            token=token if isinstance(token, str) else None,
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            host=_text(data.get("host")),
            version=_text(data.get("version")),
            started_at=_text(data.get("started_at")),
            restore=bool(data.get("restore")),
        )

    def is_dead(self, limit: timedelta) -> bool:
        """True when the process behind it is gone (this machine) or it is older than ``limit``."""
        if self.host == HOST and self.pid is not None:
            if not pid_alive(self.pid):
                return True
            if self.pid == os.getpid():
                return False
        try:
            started = datetime.fromisoformat(str(self.started_at).replace("Z", "+00:00"))
        except ValueError:
            return True
        return datetime.now(timezone.utc) - started > limit


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Reservation:
    """A version name claimed for one publish."""

    version: str
    others: bool
    """The control folder held something else: other publishes in flight, or leftovers of dead ones."""
    marker: bytes = b""
    """The bytes of the reservation object (the probe of conditional writes rewrites them as they are)."""


@dataclass(frozen=True)
class Held:
    """The latest's lease, held."""

    marker: Marker
    broken: Marker | None
    """A dead holder's marker, when its lock was broken on the way: its promotion may be unfinished."""
    since: float
    """``time.monotonic()`` when it was taken."""


class Leases:
    """Reserves version names and holds the latest's lease for one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.layout = target.layout
        self.catalog = Catalog(target)

    @property
    def lease_limit(self) -> timedelta:
        """Age after which a lease holder counts as dead: well past anything a live one waits for."""
        return timedelta(seconds=max(self.target.lock_timeout * 5, 600))

    async def read(self, rel: str) -> Marker | None:
        """The marker at ``rel``; None when there is none."""
        try:
            return Marker.parse(await self.target.storage.read_bytes(rel))
        except (StorageNotFoundError, FileNotFoundError):
            return None

    async def holds(self, rel: str, marker: Marker) -> bool:
        """True when ``rel`` holds ``marker``: a retried conditional create whose first attempt landed."""
        holder = await self.read(rel)
        return holder is not None and holder.token == marker.token

    async def _create(self, rel: str, marker: Marker) -> bool:
        """Create ``rel`` with ``marker`` if absent; True when it is ours."""
        try:
            await self.target.storage.write_bytes(rel, marker.to_json(), exclusive=True)
        except FileExistsError:
            return await self.holds(rel, marker)
        return True

    # --- reservations -------------------------------------------------------------------

    async def reserve(self, started: datetime) -> Reservation:
        """Claim a fresh version identifier with a conditional create of its reservation.

        Two round trips when the second is free: the reservation of the second's
        first name is created while the control folder (publishes in flight, never
        the history) is listed; then the archives of that second alone are listed.
        That listing comes after the create on purpose: a publish that used this
        name and released it had committed its archive first, so it is seen.
        """
        st, layout = self.target.storage, self.layout
        version = version_id(started)
        for _ in range(RESERVE_TRIES):
            marker = Marker.new(version)
            created, control = await asyncio.gather(
                self._create(layout.reservation(version), marker),
                st.list_prefix(CONTROL_DIR, ""),
                return_exceptions=True,
            )
            if isinstance(created, BaseException) or isinstance(control, BaseException):
                if created is True:
                    await quietly(st.delete(layout.reservation(version)))
                raise created if isinstance(created, BaseException) else control  # type: ignore[misc]
            try:
                archives = await st.list_prefix(ARCHIVE_DIR, f"{self.target.name}_{version[:15]}")
            except BaseException:
                if created:
                    await quietly(st.delete(layout.reservation(version)))
                raise
            mine = basename(layout.reservation(version))
            # our own reservation, and the temp file a local conditional create of it passes through
            others = [e for e in control if e.basename != mine and not e.basename.startswith(f".{mine}.")]
            taken = self.catalog.taken(Listing(archives, others))
            if created and next_version(started, taken) == version:
                return Reservation(version, bool(others), marker.to_json())
            if created:  # a name at or after ours is used in this second: ours would sort out of order
                await st.delete(layout.reservation(version))
            version = next_version(started, taken | {version})
        raise ConflictError(f"{st.uri(ARCHIVE_DIR)}: could not reserve a version name; too many publishers at once")

    async def release(self, reservation: Reservation) -> None:
        await quietly(self.target.storage.delete(self.layout.reservation(reservation.version)))

    # --- the latest's lease --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def latest(self, marker: Marker) -> AsyncIterator[Marker | None]:
        """Hold the lease on replacing the latest.

        Yields the marker of a dead holder whose lock was broken on the way, if
        any: its promotion may have stopped between its copy and its manifest.
        """
        held = await self.acquire(marker)
        try:
            yield held.broken
        finally:
            await self.release_latest(held)

    async def acquire(self, marker: Marker) -> Held:
        """Take the lease on replacing the latest, waiting up to ``lock_timeout`` for a live holder."""
        st, path = self.target.storage, self.layout.latest_lock
        deadline = time.monotonic() + self.target.lock_timeout
        wait = LEASE_POLL_FIRST
        broken: Marker | None = None
        while True:
            try:
                await st.write_bytes(path, marker.to_json(), exclusive=True)
                break
            except FileExistsError:
                pass
            holder = await self.read(path)
            if holder is None:  # released in the meantime
                continue
            if holder.token == marker.token:  # a retried create whose first attempt landed
                break
            if holder.is_dead(self.lease_limit) and await self._break(holder):
                broken = holder
                continue
            if time.monotonic() > deadline:
                raise ConflictError(
                    f"{st.uri(path)} is held by another publisher (pid {holder.pid} on {holder.host}); "
                    "try again later, or delete the lock if that publisher is gone"
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, LEASE_POLL_MAX)
        return Held(marker, broken, time.monotonic())

    async def release_latest(self, held: Held) -> None:
        """Give the lease back: one delete while it is young, since nobody breaks a lease younger than half
        :attr:`lease_limit`; an older one is first read, so another holder's lock is never deleted."""
        path = self.layout.latest_lock
        if time.monotonic() - held.since < self.lease_limit.total_seconds() / 2:
            await quietly(self.target.storage.delete(path), "releasing the lock")
        else:
            await quietly(self._release(path, held.marker), "releasing the lock")

    async def _release(self, rel: str, marker: Marker) -> None:
        if await self.holds(rel, marker):
            await self.target.storage.delete(rel)

    async def _break(self, holder: Marker) -> bool:
        """Delete the lock of a dead ``holder``; True when this call deleted it.

        Whoever breaks it first creates a claim named after the dead holder's
        token, so two publishers that find the same dead lock cannot both
        delete it (the second would delete the first one's new lock).
        """
        st, path = self.target.storage, self.layout.latest_lock
        claim = self.layout.lock_claim(holder.token or "unreadable")
        try:
            await st.write_bytes(claim, Marker.new(None).to_json(), exclusive=True)
        except FileExistsError:
            claimer = await self.read(claim)
            if claimer is not None and claimer.is_dead(self.lease_limit):
                await st.delete(claim)  # its breaker died too
            return False
        try:
            current = await self.read(path)
            if current is None or current.token != holder.token:
                return False
            logger.warning("breaking the stale lock %s of pid %s on %s", st.uri(path), holder.pid, holder.host)
            await st.delete(path)
            return True
        finally:
            await quietly(st.delete(claim))
