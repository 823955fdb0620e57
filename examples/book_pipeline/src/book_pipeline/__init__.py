"""An example book-metadata pipeline built on csvpublish.

Two commands share csvpublish's CSV publishing:

* ``book-collect`` loads a TSV into the SQLite tracker, writes the CSV locally
  and, in its ``finally`` block, publishes it when storage is not local;
* ``book-sync`` runs the ``export_csv`` task, which exports to the staging
  folder and publishes when the pipeline uses block storage.
"""

from book_pipeline.records import BookRecord
from book_pipeline.tracker import SQLiteBookTracker

__all__ = ["BookRecord", "SQLiteBookTracker"]
