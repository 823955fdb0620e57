"""``SQLiteBookTracker``: the pipeline's book database, stdlib ``sqlite3`` run in worker threads.

Every call opens its own short-lived connection inside :func:`asyncio.to_thread`,
so the event loop never blocks on the disk and no connection is shared between
threads. The database is in WAL mode: an export can read while a load writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from book_pipeline.records import BookRecord

_ATTRIBUTES = BookRecord.attributes()
_SELECT = f"SELECT {', '.join(_ATTRIBUTES)} FROM books"

PAGE_SIZE = 1000
"""Books read per worker-thread call when streaming, and written per transaction when saving."""


def _schema() -> str:
    columns = []
    for attribute in _ATTRIBUTES:
        if attribute == "barcode":
            columns.append("barcode TEXT PRIMARY KEY NOT NULL")
        elif attribute == "is_decrypted":
            columns.append("is_decrypted INTEGER")  # 0/1, NULL when unknown
        else:
            columns.append(f"{attribute} TEXT")
    return f"CREATE TABLE IF NOT EXISTS books ({', '.join(columns)})"


def _to_record(row: sqlite3.Row | tuple[object, ...]) -> BookRecord:
    values = dict(zip(_ATTRIBUTES, row, strict=True))
    if values["is_decrypted"] is not None:
        values["is_decrypted"] = bool(values["is_decrypted"])
    return BookRecord(**values)


class SQLiteBookTracker:
    """Book records in one SQLite file.

    Args:
        db_path: the database file; created (with its folder) by :meth:`init_db`.

    Example:
        >>> # tracker = SQLiteBookTracker("books.sqlite3"); await tracker.init_db()
        >>> # async for book in tracker.iter_books(): ...
    """

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)

    def __repr__(self) -> str:
        return f"SQLiteBookTracker({str(self.db_path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per call, opened and closed in the worker thread that uses it.
        with closing(sqlite3.connect(self.db_path, timeout=30.0)) as conn:
            yield conn

    async def init_db(self) -> None:
        """Create the database file and the ``books`` table if they are missing."""

        def init() -> None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_schema())
                conn.commit()

        await asyncio.to_thread(init)

    async def save_books(self, books: Iterable[BookRecord], fields: Sequence[str] | None = None) -> int:
        """Insert or update books in one transaction and return how many were written.

        ``fields`` are the attributes an existing book takes from the new
        record (default: all), so loading a TSV with a few columns leaves the
        other columns of known books as they were.
        """
        rows = [[getattr(book, attribute) for attribute in _ATTRIBUTES] for book in books]
        if not rows:
            return 0
        update = [f for f in (fields or _ATTRIBUTES) if f != "barcode"]
        unknown = set(update) - set(_ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown book fields: {', '.join(sorted(unknown))}")
        conflict = "DO UPDATE SET " + ", ".join(f"{f} = excluded.{f}" for f in update) if update else "DO NOTHING"
        sql = (
            f"INSERT INTO books ({', '.join(_ATTRIBUTES)}) VALUES ({', '.join('?' * len(_ATTRIBUTES))}) "
            f"ON CONFLICT(barcode) {conflict}"
        )

        def write() -> int:
            with self._connect() as conn, conn:  # the inner `with conn` is the transaction
                conn.executemany(sql, rows)
            return len(rows)

        return await asyncio.to_thread(write)

    async def count_books(self) -> int:
        """The number of books in the tracker."""

        def count() -> int:
            with self._connect() as conn:
                return int(conn.execute("SELECT COUNT(*) FROM books").fetchone()[0])

        return await asyncio.to_thread(count)

    async def get_all_books_csv_data(self) -> list[BookRecord]:
        """Every book, ordered by barcode, as one list (what the seed plan's export calls).

        Holds the whole table in memory; prefer :meth:`iter_books` for a large collection.
        """

        def read() -> list[BookRecord]:
            with self._connect() as conn:
                return [_to_record(row) for row in conn.execute(f"{_SELECT} ORDER BY barcode")]

        return await asyncio.to_thread(read)

    async def iter_books(self, page_size: int = PAGE_SIZE) -> AsyncIterator[BookRecord]:
        """Stream every book, ordered by barcode, reading ``page_size`` books per worker-thread call.

        Pages are read by keyset (``barcode > last``), so memory stays flat for
        a million books. A book saved during the stream is included when its
        barcode sorts after the current page.
        """

        def page(after: str | None) -> list[BookRecord]:
            with self._connect() as conn:
                if after is None:
                    cursor = conn.execute(f"{_SELECT} ORDER BY barcode LIMIT ?", (page_size,))
                else:
                    cursor = conn.execute(
                        f"{_SELECT} WHERE barcode > ? ORDER BY barcode LIMIT ?",
                        (after, page_size),
                    )
                return [_to_record(row) for row in cursor]

        after: str | None = None
        while True:
            books = await asyncio.to_thread(page, after)
            for book in books:
                yield book
            if len(books) < page_size:
                return
            after = books[-1].barcode
