"""What every step of the protocol shares: the target it works on and a few small helpers."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from csvpublish.datapackage import CONTENT_TYPE as DESCRIPTOR_TYPE
from csvpublish.datapackage import descriptor_json
from csvpublish.errors import InputError
from csvpublish.manifest import Manifest
from csvpublish.naming import Layout
from csvpublish.results import PublishResult
from csvpublish.storage import Storage

logger = logging.getLogger("csvpublish")

HOST = socket.gethostname()

ARCHIVE_CACHE_CONTROL = "public, max-age=31536000, immutable"
"""An archive never changes: a CDN or browser may keep it for a year without asking again."""
LATEST_CACHE_CONTROL = "no-cache"
"""The latest changes with each publish: a cache must ask the bucket before serving a copy it holds."""


@dataclass(frozen=True)
class CachePolicy:
    """The ``Cache-Control`` header of the archives (and their manifests) and of the latest (and its manifest).

    None sends no header. Backends that store no headers (a folder, ``memory://``) ignore both.

    >>> CachePolicy().latest
    'no-cache'
    >>> CachePolicy(latest="")
    Traceback (most recent call last):
    csvpublish.errors.InputError: latest_cache_control='' is empty; give None to send no Cache-Control
    """

    archive: str | None = ARCHIVE_CACHE_CONTROL
    latest: str | None = LATEST_CACHE_CONTROL

    def __post_init__(self) -> None:
        for which, value in (("archive", self.archive), ("latest", self.latest)):
            if value is None:
                continue
            if not isinstance(value, str) or not value.isascii() or not value.isprintable():
                raise InputError(f"{which}_cache_control={value!r} must be one line of printable text")
            if not value.strip():
                raise InputError(f"{which}_cache_control={value!r} is empty; give None to send no Cache-Control")


@dataclass(frozen=True)
class Target:
    """One snapshot name at one destination, with the timing rules of its locks."""

    storage: Storage
    name: str
    layout: Layout
    """The layout of the configured compression (the other one is read too: see :meth:`layout_of`)."""
    lock_timeout: float
    """Seconds to wait for another publisher to finish replacing the latest."""
    stale_after: timedelta
    """Age after which another machine's unfinished publish counts as dead."""
    cache: CachePolicy = field(default_factory=CachePolicy)
    """The ``Cache-Control`` of what each publish writes."""
    primary_key: str | Sequence[str] | None = None
    """The columns the Data Package descriptors name as the table's ``primaryKey``."""

    def layout_of(self, manifest: Manifest) -> Layout:
        """The layout a version was published with (compressed or not, ``.csv`` or ``.tsv``)."""
        parsed = self.layout.parse_archive(basename(manifest.archive))
        return Layout.of(self.name, parsed) if parsed else Layout(self.name, manifest.compression is not None)

    async def write_descriptor(self, manifest: Manifest, *, latest: bool) -> None:
        """Write the Data Package descriptor of ``manifest``'s version beside the latest or beside its archive."""
        layout = self.layout_of(manifest)
        rel = layout.descriptor if latest else layout.archive_descriptor(manifest.version)
        named = basename(layout.latest if latest else manifest.archive)  # beside the descriptor
        body = descriptor_json(manifest, named, primary_key=self.primary_key)
        cache = self.cache.latest if latest else self.cache.archive
        await self.storage.write_bytes(rel, body, content_type=DESCRIPTOR_TYPE, cache_control=cache)

    def result(
        self, manifest: Manifest, *, local_path: str | os.PathLike[str] | None = None, **flags: Any
    ) -> PublishResult:
        """The :class:`PublishResult` that describes ``manifest``'s version as the latest."""
        st = self.storage
        return PublishResult(
            latest_uri=st.uri(self.layout_of(manifest).latest),
            archive_uri=st.uri(manifest.archive),
            version=manifest.version,
            record_count=manifest.record_count,
            size=manifest.size,
            sha256=manifest.sha256,
            compression=manifest.compression,
            csv_sha256=manifest.csv_sha256,
            columns=list(manifest.columns),
            manifest_uri=st.uri(self.layout.archive_manifest(manifest.version)),
            local_path=str(Path(local_path).absolute()) if local_path is not None else None,
            **flags,
        )


def basename(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this machine (or cannot be signalled: someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def quietly(step: Awaitable[Any], what: str = "cleanup") -> None:
    """Await a best-effort step; log, never raise, its failure."""
    try:
        await step
    except Exception as exc:  # a cleanup step must not hide the real outcome
        logger.warning("%s failed: %s", what, exc)
