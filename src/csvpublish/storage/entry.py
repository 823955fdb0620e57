"""``Entry``: one object a listing found, whatever the backend's listing format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One object found by :meth:`Storage.list`."""

    path: str
    """Path relative to the storage root."""
    size: int
    modified: datetime | None = None

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @classmethod
    def of(cls, item: dict[str, Any], path: str) -> Entry:
        """The entry of one fsspec ``ls``/``find`` item, at ``path`` relative to the storage root.

        >>> Entry.of({"name": "b/meta/a.csv", "size": 3}, "a.csv")
        Entry(path='a.csv', size=3, modified=None)
        """

        # the keys fsspec filesystems use for a modification time: S3, local, GCS, Azure, memory
        modified = (
            item.get("LastModified")
            or item.get("mtime")
            or item.get("updated")
            or item.get("last_modified")
            or item.get("created")
        )
        if isinstance(modified, (int, float)):
            modified = datetime.fromtimestamp(modified).astimezone()
        elif isinstance(modified, str):
            try:
                modified = datetime.fromisoformat(modified.replace("Z", "+00:00"))
            except ValueError:
                modified = None
        size = int(item.get("size") or 0)
        return cls(path, size, modified if isinstance(modified, datetime) else None)
