"""``SyncPipeline``: what a sync task needs, in one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import csvpublish
from book_pipeline.storage import StorageSettings
from book_pipeline.tracker import SQLiteBookTracker


@dataclass
class SyncPipeline:
    """The tracker, the storage settings, the compression flag and the staging folder of one sync run."""

    db_tracker: SQLiteBookTracker
    storage: StorageSettings
    compression_enabled: bool
    staging_path: Path

    @property
    def uses_block_storage(self) -> bool:
        """True when exports are published to an object store or another fsspec folder."""
        return self.storage.uses_block_storage

    def publisher(self) -> csvpublish.Publisher:
        """The :class:`csvpublish.Publisher` of the ``books`` snapshot."""
        return self.storage.publisher(compression=self.compression_enabled)
