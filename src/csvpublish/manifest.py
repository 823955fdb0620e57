"""The JSON manifest written beside every published version.

A manifest is written after the data it describes, never before. A reader
checks a download by comparing its sha256 with ``sha256`` (of the stored bytes,
compressed or not) or, after gunzip, with ``csv_sha256``::

    {
      "format": "csvpublish.manifest/1",
      "name": "books",
      "version": "20261126_053708",
      "created_at": "2026-11-26T05:37:09.412Z",
      "archive": "timestamped/books_20261126_053708.csv.gz",
      "compression": "gzip",
      "content_type": "application/gzip",
      "size": 1234, "sha256": "...",
      "csv_size": 5678, "csv_sha256": "...",
      "record_count": 50, "columns": ["Barcode", "Title", ...],
      "library": "csvpublish 0.1.0",
      "column_types": ["string", "int64", ...],      (when the source has types)
      "dialect": {"delimiter": ",", "lineTerminator": "\\r\\n", "header": true, ...},
      "keys": {"file": "timestamped/books_20261126_053708.keys.gz", "sha256": "...",    (with key=)
               "size": 99, "columns": ["Barcode"], "delimiter": ",", "rows": 50,
               "distinct_keys": 50, "duplicate_keys": 0},
      "changes": {"previous_version": "20261125_053708", "added": 1, "removed": 0,  (with key=)
                  "changed": 2, "unchanged": 47, "duplicate_keys": 0, ...}
      "parts": [{"partition": 0, "offset": 0, "size": ..., "sha256": ..., ...}, ...]   (partitioned publishes)
    }

``changes`` is ``{"previous_version": ..., "unknown": "<why>"}`` when the previous latest
had no key file to compare with (:mod:`csvpublish.changes`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import IntegrityError

FORMAT = "csvpublish.manifest/1"
CONTENT_TYPE = "application/json"
"""The media type every manifest is written with."""


def utc_iso(moment: datetime) -> str:
    """``2026-11-26T05:37:09.412Z``: UTC, milliseconds, ``Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Manifest:
    """What a reader needs to check one stored version."""

    name: str
    version: str
    created_at: str
    archive: str
    compression: str | None
    content_type: str
    size: int
    sha256: str
    csv_size: int
    csv_sha256: str
    record_count: int | None
    columns: list[str]
    library: str
    compressor: str | None = None
    restored_at: str | None = None
    column_types: list[str | None] | None = None
    """The source's type of each column (Arrow types, DataFrame dtypes, cursor type codes) where it has them."""
    dialect: dict[str, Any] | None = None
    """How the CSV is written (:meth:`csvpublish.dialect.Dialect.to_dict`); None in manifests older than dialects."""
    keys: dict[str, Any] | None = None
    """The version's key file (a keyed publish): its name, sha256, size, key columns and counts."""
    changes: dict[str, Any] | None = None
    """What changed since the previous latest (:meth:`csvpublish.changes.ChangeSummary.to_dict`), or why unknown."""
    parts: list[dict[str, Any]] | None = None
    """A partitioned publish's partitions, in order: each one gzip member with its offset, size, sha256,
    CSV size and sha256 and record count (``csvpublish.partitions.PartReceipt.describe``); None otherwise."""
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        for optional in ("restored_at", "column_types", "dialect", "keys", "changes", "parts"):
            if data[optional] is None:
                del data[optional]
        ordered = {"format": data.pop("format"), **data}
        return (json.dumps(ordered, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str = "manifest") -> Manifest:
        """Parse a manifest; raise :class:`IntegrityError` when it is not one."""
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not str(data.get("format", "")).startswith("csvpublish.manifest/"):
                raise ValueError("not a csvpublish manifest")
            known = set(cls.__dataclass_fields__)
            extra = {k: v for k, v in data.items() if k not in known}
            fields = {k: v for k, v in data.items() if k in known}
            fields.setdefault("extra", {}).update(extra)
            return cls(**fields)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{where} is not a valid csvpublish manifest ({exc})") from None

    def object_metadata(self) -> dict[str, str]:
        """User metadata stored on the latest object where the backend keeps it."""
        meta = {"sha256": self.sha256, "csv-sha256": self.csv_sha256, "version": self.version}
        if self.record_count is not None:
            meta["record-count"] = str(self.record_count)
        return meta
