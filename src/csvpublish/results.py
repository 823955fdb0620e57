"""What the public operations return: small frozen records with a ``to_dict()`` for JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .changes import ChangeSummary
from .manifest import Manifest, utc_iso


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
    changes: ChangeSummary | None = None
    """With ``key=``: what changed since the previous latest; None unkeyed, skipped, or when the previous
    latest has no key file of the same key (the manifest's ``changes`` says why)."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["changes"] = self.changes.to_dict() if self.changes is not None else None
        return out


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


@dataclass(frozen=True)
class DownloadResult:
    """What :meth:`Publisher.download` wrote, once its bytes matched their manifest."""

    path: str | None
    """The absolute local path written; None when written to a stream."""
    uri: str
    """Display URI of the object read."""
    version: str
    """The archived version the bytes are (a promotion in progress may make it newer than the latest manifest's)."""
    size: int
    """Bytes written: the stored bytes, or the CSV when decompressed."""
    sha256: str
    """sha256 of the bytes written (the manifest's ``sha256``, or its ``csv_sha256`` when decompressed)."""
    decompressed: bool
    """True when a gzip object was written as its CSV."""
    record_count: int | None
    manifest: Manifest
    """The manifest the bytes matched."""
    notes: list[str] = field(default_factory=list)
    """Things worth knowing that are not problems, such as a promotion in progress."""
    descriptor: str | None = None
    """With ``datapackage=True``: the path of the Data Package descriptor written beside the file."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["manifest"] = json.loads(self.manifest.to_json())
        return out
