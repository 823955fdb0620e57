"""The contenders, each run in its own process by ``bench.py --child``.

Every contender prepares what is not part of the job (imports, clients, the
prebuilt rows) before the clock, starts the clock with :meth:`Clock.start`, does
the job, and stops it with :meth:`Clock.stop`. Peak RSS is the process's high-water
mark (``VmHWM``) from the start of the clock to its stop: the mark is reset at
``start`` (``/proc/self/clear_refs``), so memory that setup touched and freed
does not count, while memory that setup holds (the prebuilt rows) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import itertools
import os
import re
import resource
import shutil
import tempfile
import time
import types
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bookdata import FLAT_TABLE, HEADERS, BookRecord, ListTracker, Tracker, current_rss
from latency import MANY_VERSIONS

CHUNK = 2**20


@dataclass
class Spec:
    """What one child process measures."""

    contender: str
    mode: str  # "tracker", "prebuilt", "frames" or "latency"
    target: str  # "s3", "local" or "none"
    rows: int
    db: str
    csv: str
    gz: str
    work: str
    endpoint: str | None = None
    bucket: str | None = None
    flat_db: str | None = None
    """The frames mode's SQLite file: table ``books_csv`` holds the fixture's rows."""
    arrow: str | None = None
    """The frames mode's Arrow IPC stream of the fixture's rows (10k-row batches)."""


@dataclass
class Clock:
    wall: float = 0.0
    peak: int = 0
    rss_before: int = 0
    peak_exact: bool = True
    cpu: float = 0.0
    """CPU seconds of this process (every thread, native ones included) while the clock ran."""
    span: tuple[float, float] = (0.0, 0.0)
    """When the clock ran, in ``time.time()``: the parent reads the server's CPU over it."""
    extra: dict[str, Any] = field(default_factory=dict)
    _t0: float = 0.0
    _cpu0: float = 0.0

    def start(self) -> None:
        gc.collect()
        self.peak_exact = _reset_peak()
        self.rss_before = current_rss()
        self._cpu0 = time.process_time()
        self.span = (time.time(), 0.0)
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._cpu0
        self.span = (self.span[0], time.time())
        self.peak = _peak_rss()


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            found = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        if found:
            return int(found.group(1)) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- shared setup ------------------------------------------------------------------------


def s3_options(spec: Spec) -> dict[str, Any]:
    return {
        "key": "bench",
        "secret": "bench",
        "client_kwargs": {"endpoint_url": spec.endpoint, "region_name": "us-east-1"},
    }


def destination(spec: Spec) -> str:
    """Where the snapshot goes: ``s3://<bucket>/meta`` or ``<work>/dest/meta``."""
    if spec.target == "s3":
        return f"s3://{spec.bucket}/meta"
    return str(Path(spec.work) / "dest" / "meta")


def staging_csv(spec: Spec) -> Path:
    """The local CSV the reference approach (and csvpublish's ``local_path``) leaves behind."""
    return Path(spec.work) / "staging" / "meta" / "books_latest.csv"


def prebuilt_rows(spec: Spec) -> list[list[str]]:
    """The rows as ``to_csv_row()`` renders them, read back from the pre-written CSV.

    Same values as ``Tracker.rows_list()`` (each row its own list of fresh strings),
    made in half the time; the prebuilt mode builds them before the clock.
    """
    with open(spec.csv, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)  # the header
        return list(reader)


def prebuilt_frame(spec: Spec, kind: str) -> Any:
    """The table as an in-memory frame, built before the clock: "pandas", "polars" or "arrow".

    pandas: ``pd.DataFrame(prebuilt_rows, columns=HEADERS)``, as the pandas contender has
    always built it. Arrow: the IPC fixture read whole (string columns, 10k-row chunks).
    polars: ``pl.from_arrow`` of that table (one chunk). Empty fields are ``""`` in all three.
    """
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(prebuilt_rows(spec), columns=HEADERS)
    import pyarrow as pa

    with pa.OSFile(str(spec.arrow)) as f:
        table = pa.ipc.open_stream(f).read_all()
    if kind == "arrow":
        return table
    import polars as pl

    frame = pl.from_arrow(table)
    del table
    pa.default_memory_pool().release_unused()  # the Arrow copy is gone; only the polars frame counts
    return frame


def latest_url(spec: Spec) -> str:
    return f"s3://{spec.bucket}/meta/books_latest.csv.gz"


# --- csvpublish ----------------------------------------------------------------------------


def run_csvpublish(spec: Spec, clock: Clock, how: str, local_csv: bool) -> None:
    from csvpublish import Publisher

    tracker = Tracker(spec.db, spec.rows)
    rows = prebuilt_rows(spec) if spec.mode != "tracker" and how != "file" else None
    headers = HEADERS if rows is not None else None
    source: Any
    if how == "stream":
        source = tracker.iter_books() if rows is None else (row for row in rows)
    elif how == "list":
        source = tracker if rows is None else ListTracker(rows)
    else:
        source = None
    local_path = staging_csv(spec) if local_csv else None

    async def main() -> Any:
        publisher = Publisher(
            destination(spec), name="books", storage_options=s3_options(spec) if spec.target == "s3" else None
        )
        await publisher.storage.check()  # warm-up: the client and its connection exist before the clock
        clock.start()
        if how == "file":
            result = await publisher.publish_file(spec.csv)
        else:
            result = await publisher.publish(source, headers=headers, local_path=local_path)
        clock.stop()
        return result

    result = asyncio.run(main())
    clock.extra.update(record_count=result.record_count, stored_size=result.size, archive=result.archive_uri)
    if how == "list":
        clock.extra["list_rss"] = getattr(source, "list_rss", None) or clock.rss_before


# --- the reference approach (../shared/seed/csv-export-refactoring-plan.md) ----------------


class RefStorage:
    """The pipeline's storage as the plan uses it: ``write_file(path, local_file)``."""

    def __init__(self, fs: Any | None) -> None:
        self.fs = fs  # an asynchronous s3fs filesystem, or None for a local folder

    async def write_file(self, path: str, local_path: str) -> None:
        if self.fs is not None:
            await self.fs._put_file(local_path, path)
            return

        def copy() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copyfile(local_path, path)

        await asyncio.to_thread(copy)


class RefBookManager:
    def __init__(self, storage: RefStorage, root: str) -> None:
        self.storage = storage
        self.root = root

    def meta_path(self, name: str) -> str:
        return f"{self.root}/meta/{name}"


async def ref_export_csv_to_file(db_tracker: Any, output_path: Path, rendered: bool = False) -> int:
    """Export books from database to CSV file. Returns record count. (The plan's function 1.)

    ``rendered``: in the prebuilt mode the tracker's list holds rows already
    rendered by ``to_csv_row()``, so they are written as they are.
    """
    output_path.parent.mkdir(parents=True, exist_ok=True)
    books = await db_tracker.get_all_books_csv_data()

    record_count = 0
    with open(output_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(BookRecord.csv_headers())
        if rendered:
            for row in books:
                record_count += 1
                writer.writerow(row)
        else:
            for book in books:
                record_count += 1
                writer.writerow(book.to_csv_row())

    return record_count


@contextlib.asynccontextmanager
async def compress_file_to_temp(csv_path: Path) -> AsyncIterator[Path]:
    """gzip (level 1, stdlib) ``csv_path`` into a temp file; delete it on exit."""
    import gzip

    fd, name = tempfile.mkstemp(suffix=".csv.gz")
    os.close(fd)

    def compress() -> None:
        with open(csv_path, "rb") as src, gzip.open(name, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    try:
        await asyncio.to_thread(compress)
        yield Path(name)
    finally:
        os.unlink(name)


async def ref_upload_csv_to_storage(
    csv_path: Path, book_manager: RefBookManager, compression_enabled: bool = True
) -> str:
    """Upload CSV to storage with optional compression. Returns bucket path. (The plan's function 2.)"""
    timestamp = datetime.now().strftime("%Y%m%d_%H%M%S")

    if compression_enabled:
        async with compress_file_to_temp(csv_path) as compressed_path:
            latest_path = book_manager.meta_path("books_latest.csv.gz")
            timestamped_path = book_manager.meta_path(f"timestamped/books_{timestamp}.csv.gz")
            await asyncio.gather(
                book_manager.storage.write_file(latest_path, str(compressed_path)),
                book_manager.storage.write_file(timestamped_path, str(compressed_path)),
            )
            return latest_path
    latest_path = book_manager.meta_path("books_latest.csv")
    timestamped_path = book_manager.meta_path(f"timestamped/books_{timestamp}.csv")
    await asyncio.gather(
        book_manager.storage.write_file(latest_path, str(csv_path)),
        book_manager.storage.write_file(timestamped_path, str(csv_path)),
    )
    return latest_path


def run_reference(spec: Spec, clock: Clock) -> None:
    rows = prebuilt_rows(spec) if spec.mode == "prebuilt" else None
    tracker: Any = ListTracker(rows) if rows is not None else Tracker(spec.db, spec.rows)
    csv_path = staging_csv(spec)

    async def main() -> None:
        fs = None
        if spec.target == "s3":
            import s3fs

            fs = s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True, **s3_options(spec))
            await fs.set_session()
            await fs._exists(spec.bucket)  # warm-up
            root = str(spec.bucket)
        else:
            root = str(Path(spec.work) / "dest")
        manager = RefBookManager(RefStorage(fs), root)
        clock.start()
        count = await ref_export_csv_to_file(tracker, csv_path, rendered=rows is not None)
        await ref_upload_csv_to_storage(csv_path, manager, compression_enabled=True)
        clock.stop()
        clock.extra["record_count"] = count

    asyncio.run(main())


# --- peers ---------------------------------------------------------------------------------


def run_pandas(spec: Spec, clock: Clock) -> None:
    """``DataFrame.to_csv`` to the ``.csv.gz`` URL; gzip level 1 like everyone else.

    Tracker mode builds the DataFrame inside the clock (a pandas user has to);
    prebuilt mode builds it before the clock (the most favourable reading for pandas),
    and so does the frames mode, where it is ``pandas-frame``.
    """
    import pandas as pd

    options: dict[str, Any] | None = None
    if spec.target == "s3":
        import fsspec

        options = s3_options(spec)
        fsspec.filesystem("s3", **options).ls(str(spec.bucket))  # warm-up; pandas gets this cached instance
        url = f"s3://{spec.bucket}/meta/books_latest.csv.gz"
    else:
        url = str(Path(spec.work) / "dest" / "meta" / "books_latest.csv.gz")
        os.makedirs(os.path.dirname(url), exist_ok=True)
    compression = {"method": "gzip", "compresslevel": 1, "mtime": 0}
    frame = None if spec.mode == "tracker" else prebuilt_frame(spec, "pandas")
    second_key = timestamped_copy(spec)
    clock.start()
    if frame is None:
        frame = pd.DataFrame([book.to_csv_row() for book in Tracker(spec.db, spec.rows).iter_books()], columns=HEADERS)
    frame.to_csv(url, index=False, compression=compression, lineterminator="\r\n", storage_options=options)
    second_key()
    clock.stop()
    clock.extra["record_count"] = len(frame)


def run_smart_open(spec: Spec, clock: Clock) -> None:
    """``smart_open.open(".csv.gz", "w")`` fed by ``csv.writer``; gzip level 1 like everyone else."""
    import smart_open

    params: dict[str, Any] = {}
    if spec.target == "s3":
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=spec.endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        client.head_bucket(Bucket=str(spec.bucket))  # warm-up
        params["client"] = client
        url = f"s3://{spec.bucket}/meta/books_latest.csv.gz"
    else:
        url = str(Path(spec.work) / "dest" / "meta" / "books_latest.csv.gz")
        os.makedirs(os.path.dirname(url), exist_ok=True)
    rows = prebuilt_rows(spec) if spec.mode == "prebuilt" else None
    clock.start()
    source: Iterable[list[str]] = (
        rows if rows is not None else (book.to_csv_row() for book in Tracker(spec.db, spec.rows).iter_books())
    )
    with smart_open.open(
        url,
        "w",
        encoding="utf-8",
        newline="",
        transport_params=params,
        compression_kwargs={"compresslevel": 1},
    ) as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows(source)
    clock.stop()


# --- floors ----------------------------------------------------------------------------------


def run_floor_source(spec: Spec, clock: Clock) -> None:
    """The tracker's own cost: build every record and call ``to_csv_row()``; nothing else."""
    clock.start()
    count = 0
    for book in Tracker(spec.db, spec.rows).iter_books():
        book.to_csv_row()
        count += 1
    clock.stop()
    clock.extra["record_count"] = count


def run_floor_format(spec: Spec, clock: Clock) -> None:
    """``csv.writer`` alone, into a sink that drops the text (no encoding, no I/O)."""
    sink = types.SimpleNamespace(write=len)
    rows = prebuilt_rows(spec) if spec.mode == "prebuilt" else None
    clock.start()
    writer = csv.writer(sink)
    writer.writerow(HEADERS)
    if rows is not None:
        writer.writerows(rows)
    else:
        writer.writerows(book.to_csv_row() for book in Tracker(spec.db, spec.rows).iter_books())
    clock.stop()


def run_floor_format_csvpublish(spec: Spec, clock: Clock) -> None:
    """csvpublish's own formatter alone (the same bytes as ``csv.writer``), batch by batch, bytes dropped.

    The work the event loop's thread does in a publish, without compression, hashing or upload:
    a publish within a few percent of this hides the other stages behind formatting.
    """
    from csvpublish.rows import BATCH_ROWS, CsvFormatter, plan_rows

    rows = prebuilt_rows(spec) if spec.mode == "prebuilt" else None
    clock.start()
    records: Iterator[Any] = iter(rows) if rows is not None else Tracker(spec.db, spec.rows).iter_books()
    formatter = CsvFormatter()
    convert = None
    size = count = 0
    while batch := list(itertools.islice(records, BATCH_ROWS)):
        if convert is None:
            columns, convert = plan_rows(batch[0], HEADERS if rows is not None else None)
            size += len(formatter.format([columns]))
        size += len(formatter.format(convert(batch, count + 1)))
        count += len(batch)
    clock.stop()
    clock.extra.update(record_count=count, csv_size=size)


def _floor_gzip(spec: Spec, clock: Clock, compressobj: Callable[..., Any]) -> None:
    """gzip level 1 of the CSV bytes, already in memory, in 1 MiB chunks."""
    data = memoryview(Path(spec.csv).read_bytes())
    clock.start()
    c = compressobj(1, zlib.DEFLATED, 31)
    size = 0
    for start in range(0, len(data), CHUNK):
        size += len(c.compress(data[start : start + CHUNK]))
    size += len(c.flush())
    clock.stop()
    clock.extra["stored_size"] = size


def run_floor_gzip_isal(spec: Spec, clock: Clock) -> None:
    from isal import isal_zlib

    _floor_gzip(spec, clock, isal_zlib.compressobj)


def run_floor_gzip_zlib(spec: Spec, clock: Clock) -> None:
    _floor_gzip(spec, clock, zlib.compressobj)


def run_floor_upload(spec: Spec, clock: Clock) -> None:
    """Upload the compressed bytes once (s3fs ``put_file``), or copy them once into the local folder."""
    if spec.target == "s3":
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options(spec))
        fs.ls(str(spec.bucket))  # warm-up
        clock.start()
        fs.put_file(spec.gz, f"{spec.bucket}/meta/books_latest.csv.gz")
        clock.stop()
        return
    target = Path(spec.work) / "dest" / "meta" / "books_latest.csv.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    clock.start()
    shutil.copyfile(spec.gz, target)
    clock.stop()


def run_floor_publish_storage(spec: Spec, clock: Clock) -> None:
    """The storage work of a csvpublish publish, without formatting or compression.

    Streams the ``.gz`` into the archive in 1 MiB writes (multipart, 5 MiB parts, on S3),
    commits it, then copies it server-side to the latest, with csvpublish's own ``Storage``.
    On moto, completing a multipart upload and copying an object both rewrite the whole
    object in the server process, so this is the part of a publish that cannot overlap
    with formatting: it happens after the last row.
    """
    from csvpublish import Storage
    from csvpublish.storage import PART_SIZE

    storage = Storage(destination(spec), **(s3_options(spec) if spec.target == "s3" else {}))
    data = Path(spec.gz).read_bytes()
    asyncio.run(storage.check(create=True))  # warm-up

    async def main() -> None:
        clock.start()

        def upload() -> None:
            writer = storage.open_writer("archive.csv.gz", content_type="application/gzip", part_size=PART_SIZE)
            for start in range(0, len(data), CHUNK):
                writer.write(data[start : start + CHUNK])
            writer.commit()

        await asyncio.to_thread(upload)
        copy_started = time.perf_counter()
        await storage.copy("archive.csv.gz", "books_latest.csv.gz", content_type="application/gzip")
        clock.stop()
        clock.extra["copy_s"] = round(time.perf_counter() - copy_started, 3)

    asyncio.run(main())
    clock.extra["stored_size"] = len(data)


# --- issue 12: in-memory frames and a SQLite cursor (the frames mode, S3 only) -----------------
#
# Every source is built before the clock (the frame, or the IPC file and the SQLite file on
# disk); a reader or a cursor is opened inside it. Peers keep their own CSV dialect: DuckDB
# and polars quote "" and end lines with "\n" (polars and pyarrow are asked for "\r\n"),
# pyarrow quotes every string, so the output check compares their rows, not their bytes.


def run_csvpublish_source(spec: Spec, clock: Clock, kind: str) -> None:
    """``await Publisher(dest, name="books").publish(source)``, no ``headers=``: the library reads the columns.

    ``kind``: "pandas", "polars" or "arrow" (the frame, built before the clock), "reader" (a
    ``pyarrow.RecordBatchReader`` over the IPC file, opened inside the clock, 10k rows a batch)
    or "cursor" (a sqlite3 cursor after ``SELECT * FROM books_csv``, executed inside the clock).
    """
    import sqlite3

    from csvpublish import Publisher

    frame = prebuilt_frame(spec, kind) if kind in ("pandas", "polars", "arrow") else None
    con = sqlite3.connect(str(spec.flat_db)) if kind == "cursor" else None

    def source() -> Any:
        if kind == "reader":
            import pyarrow as pa

            return pa.ipc.open_stream(pa.OSFile(str(spec.arrow)))
        if con is not None:
            return con.execute(f"SELECT * FROM {FLAT_TABLE}")
        return frame

    async def main() -> Any:
        publisher = Publisher(destination(spec), name="books", storage_options=s3_options(spec))
        await publisher.storage.check()  # warm-up: the client and its connection exist before the clock
        clock.start()
        result = await publisher.publish(source())
        clock.stop()
        return result

    try:
        result = asyncio.run(main())
    finally:
        if con is not None:
            con.close()
    clock.extra.update(record_count=result.record_count, stored_size=result.size, archive=result.archive_uri)


def timestamped_copy(spec: Spec) -> Callable[[], None]:
    """The frames mode's second key: after a peer writes the latest, its timestamped copy.

    Issue 12 has every contender publish the same two keys. A peer gets the second
    one the cheapest way, one server-side CopyObject of the latest (the latest of
    csvpublish is such a copy of its archive). The client is built before the clock.
    Outside the frames mode this is a no-op, so the issue-5 numbers keep their meaning.
    """
    if spec.mode != "frames":
        return lambda: None
    import fsspec

    fs = fsspec.filesystem("s3", **s3_options(spec))
    fs.ls(str(spec.bucket))  # warm-up

    def copy() -> None:  # one CopyObject, as csvpublish's (s3fs's copy() goes multipart above 150 MB)
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        fs.call_s3(
            "copy_object",
            Bucket=spec.bucket,
            Key=f"meta/timestamped/books_{stamp}.csv.gz",
            CopySource={"Bucket": spec.bucket, "Key": "meta/books_latest.csv.gz"},
        )

    return copy


def duckdb_extension(name: str) -> str:
    """The ``.duckdb_extension`` file that the ``duckdb-extension-<name>`` wheel ships, for ``LOAD``."""
    import importlib

    import duckdb

    package = importlib.import_module(f"duckdb_extension_{name}")
    path = Path(str(package.__file__)).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: install duckdb-extension-{name}=={duckdb.__version__}")
    return str(path)


def duckdb_s3(spec: Spec, *extensions: str) -> Any:
    """A DuckDB connection to moto: extensions loaded from their wheels (never downloaded), one warm-up LIST."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for name in ("httpfs", *extensions):
        con.execute(f"LOAD '{duckdb_extension(name)}'")
    host = str(spec.endpoint).removeprefix("http://")
    for setting, value in (("s3_endpoint", host), ("s3_use_ssl", "false"), ("s3_url_style", "path"),
                           ("s3_region", "us-east-1"), ("s3_access_key_id", "testing"),
                           ("s3_secret_access_key", "testing")):  # fmt: skip
        con.execute(f"SET {setting} = '{value}'")
    con.execute(f"SELECT count(*) FROM glob('s3://{spec.bucket}/meta/*')").fetchall()  # warm-up
    return con


def run_duckdb_copy_arrow(spec: Spec, clock: Clock) -> None:
    """DuckDB ``COPY (SELECT * FROM arrow_table) TO 's3://…' (FORMAT csv, HEADER, COMPRESSION gzip)``.

    The prebuilt pyarrow Table is registered in DuckDB; httpfs uploads to moto. DuckDB's gzip
    level is fixed (its default, about 6).
    """
    con = duckdb_s3(spec)
    con.register("arrow_table", prebuilt_frame(spec, "arrow"))
    second_key = timestamped_copy(spec)
    clock.start()
    count = con.execute(
        f"COPY (SELECT * FROM arrow_table) TO '{latest_url(spec)}' (FORMAT csv, HEADER, COMPRESSION gzip)"
    ).fetchone()
    second_key()
    clock.stop()
    clock.extra["record_count"] = count[0] if count else None


def run_duckdb_copy_sqlite(spec: Spec, clock: Clock) -> None:
    """DuckDB's sqlite_scanner reads the SQLite file directly, ``COPY … TO 's3://…'`` the same way."""
    con = duckdb_s3(spec, "sqlite_scanner")
    query = f"SELECT * FROM sqlite_scan('{spec.flat_db}', '{FLAT_TABLE}')"
    con.execute(f"DESCRIBE {query}").fetchall()  # warm-up: opens the file, reads the schema
    second_key = timestamped_copy(spec)
    clock.start()
    count = con.execute(f"COPY ({query}) TO '{latest_url(spec)}' (FORMAT csv, HEADER, COMPRESSION gzip)").fetchone()
    second_key()
    clock.stop()
    clock.extra["record_count"] = count[0] if count else None


def pyarrow_s3(spec: Spec) -> Any:
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=str(spec.endpoint).removeprefix("http://"), scheme="http",
        access_key="testing", secret_key="testing", region="us-east-1",
    )  # fmt: skip
    s3.get_file_info(str(spec.bucket))  # warm-up
    return s3


def run_pyarrow_write_csv(spec: Spec, clock: Clock) -> None:
    """``pyarrow.csv.write_csv(table, s3.open_output_stream(key, compression="gzip"))``.

    pyarrow 26's gzip stream takes a codec name only, so it compresses at Arrow's default
    level, 9 (``pyarrow.Codec.default_compression_level("gzip")``).
    """
    from pyarrow import csv as pacsv

    s3 = pyarrow_s3(spec)
    table = prebuilt_frame(spec, "arrow")
    second_key = timestamped_copy(spec)
    clock.start()
    with s3.open_output_stream(f"{spec.bucket}/meta/books_latest.csv.gz", compression="gzip") as stream:
        pacsv.write_csv(table, stream, pacsv.WriteOptions(eol="\r\n"))
    second_key()
    clock.stop()


def run_pyarrow_write_csv_gzip1(spec: Spec, clock: Clock) -> None:
    """The same into isal's ``IGzipFile(compresslevel=1, mtime=0)`` over pyarrow's plain S3 stream: gzip -1."""
    from isal import igzip
    from pyarrow import csv as pacsv

    s3 = pyarrow_s3(spec)
    table = prebuilt_frame(spec, "arrow")
    second_key = timestamped_copy(spec)
    clock.start()
    with (
        s3.open_output_stream(f"{spec.bucket}/meta/books_latest.csv.gz", compression=None) as stream,
        igzip.IGzipFile(fileobj=stream, mode="wb", compresslevel=1, mtime=0) as gz,
    ):
        pacsv.write_csv(table, gz, pacsv.WriteOptions(eol="\r\n"))
    second_key()
    clock.stop()


def run_polars_write_csv(spec: Spec, clock: Clock) -> None:
    """``polars.DataFrame.write_csv("s3://…", compression="gzip", compression_level=1, storage_options=…)``.

    polars 2.1 compresses and uploads itself (its own gzip and object store client).
    """
    import polars as pl

    options = {
        "aws_endpoint_url": str(spec.endpoint), "aws_allow_http": "true", "aws_region": "us-east-1",
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
    }  # fmt: skip
    frame = prebuilt_frame(spec, "polars")
    with contextlib.suppress(FileNotFoundError):  # warm-up: a HEAD that gets a 404, nothing written
        pl.scan_csv(f"s3://{spec.bucket}/meta/warm-up.csv", storage_options=options).collect()
    second_key = timestamped_copy(spec)
    clock.start()
    frame.write_csv(
        latest_url(spec), compression="gzip", compression_level=1, line_terminator="\r\n", storage_options=options
    )
    second_key()
    clock.stop()
    clock.extra["record_count"] = frame.height


# --- issue 13: the latency mode (S3 only, every request through bench's delaying proxy) ---------
#
# The table is the fixture's first 1,000 rows. The parent process seeds any versions already
# published before the child starts (``Contender.versions``), straight to the S3 server.


@contextlib.contextmanager
def clocked(clock: Clock) -> Iterator[None]:
    """Run the clock around the block and note its window in ``time.monotonic()``.

    On Linux that clock is the system's, the same in every process: the parent reads
    the proxy's log of requests between these two instants.
    """
    clock.start()
    started = time.monotonic()
    yield
    ended = time.monotonic()
    clock.stop()
    clock.extra["window"] = [started, ended]


def run_latency_csvpublish(spec: Spec, clock: Clock) -> None:
    """``Publisher("s3://bench/meta", name="books").publish_sync(rows, headers=HEADERS)``, the rows prebuilt."""
    from csvpublish import Publisher

    rows = prebuilt_rows(spec)
    publisher = Publisher(destination(spec), name="books", storage_options=s3_options(spec))
    asyncio.run(publisher.storage.check())  # warm-up: s3fs's client and a connection exist before the clock
    with clocked(clock):
        result = publisher.publish_sync(rows, headers=HEADERS)
    clock.extra.update(record_count=result.record_count, stored_size=result.size, version=result.version)


def seed_plan_gz(spec: Spec) -> str:
    """The .gz the seed plan uploads, made before the clock as its ``compress_file_to_temp`` makes it.

    stdlib ``gzip`` at level 1 of the CSV file that its ``export_csv_to_file`` writes (the fixture's).
    """
    import gzip

    path = Path(spec.work) / "books_latest.csv.gz"
    with open(spec.csv, "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    return str(path)


async def warm_s3fs(spec: Spec) -> Any:
    """An asynchronous s3fs filesystem on the running loop, with one warm-up request made."""
    import s3fs

    fs = s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True, **s3_options(spec))
    await fs.set_session()
    await fs._exists(spec.bucket)
    return fs


def run_latency_seed_plan(spec: Spec, clock: Clock) -> None:
    """The seed plan's upload: two s3fs ``_put_file`` of the same .gz under ``asyncio.gather``."""
    gz = seed_plan_gz(spec)

    async def main() -> None:
        manager = RefBookManager(RefStorage(await warm_s3fs(spec)), str(spec.bucket))
        with clocked(clock):
            timestamp = datetime.now().strftime("%Y%m%d_%H%M%S")
            await asyncio.gather(
                manager.storage.write_file(manager.meta_path("books_latest.csv.gz"), gz),
                manager.storage.write_file(manager.meta_path(f"timestamped/books_{timestamp}.csv.gz"), gz),
            )

    asyncio.run(main())


def run_latency_put_copy(spec: Spec, clock: Clock) -> None:
    """One s3fs ``_put_file`` of the .gz to the timestamped key, then one CopyObject of it to the latest."""
    gz = seed_plan_gz(spec)

    async def main() -> None:
        fs = await warm_s3fs(spec)
        with clocked(clock):
            archive = f"meta/timestamped/books_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.csv.gz"
            await fs._put_file(gz, f"{spec.bucket}/{archive}")
            await fs._call_s3("copy_object", Bucket=spec.bucket, Key="meta/books_latest.csv.gz",
                              CopySource={"Bucket": spec.bucket, "Key": archive})  # fmt: skip

    asyncio.run(main())


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    modes: tuple[str, ...]
    targets: tuple[str, ...]
    """Where it runs: "s3", "local", or ("none",) for a floor that touches no storage."""
    run: Callable[[Spec, Clock], None]
    kind: str = "contender"  # or "floor"
    writes_local_csv: bool = False
    gzip: str = "1"
    """Its gzip level (shown in the frames mode's table)."""
    same_bytes: bool = True
    """Its output must be the fixture's bytes; False: the same rows (the csv module's reading) suffice."""
    versions: int = 0
    """The latency mode: archived versions the parent publishes under the prefix before the child runs."""


BOTH = ("tracker", "prebuilt")
STORES = ("s3", "local")
FRAMES = ("frames",)
LATENCY = ("latency",)
S3 = ("s3",)

CONTENDERS = [
    Contender(
        "csvpublish-stream",
        "csvpublish publish(generator, local_path=…)",
        BOTH,
        STORES,
        lambda s, c: run_csvpublish(s, c, "stream", True),
        writes_local_csv=True,
    ),
    Contender(
        "csvpublish-stream-upload",
        "csvpublish publish(generator), no local CSV",
        (*BOTH, "frames"),  # in the frames mode: the prebuilt rows, the same data as Python rows
        S3,
        lambda s, c: run_csvpublish(s, c, "stream", False),
    ),
    Contender(
        "csvpublish-list",
        "csvpublish publish(tracker → list, local_path=…)",
        BOTH,
        STORES,
        lambda s, c: run_csvpublish(s, c, "list", True),
        writes_local_csv=True,
    ),
    Contender(
        "csvpublish-file",
        "csvpublish publish_file(pre-written CSV)",
        ("prebuilt",),
        STORES,
        lambda s, c: run_csvpublish(s, c, "file", False),
    ),
    Contender("reference", "reference approach (the plan)", BOTH, STORES, run_reference, writes_local_csv=True),
    Contender("pandas", "pandas DataFrame.to_csv", BOTH, STORES, run_pandas),
    Contender("smart_open", "smart_open + csv.writer", BOTH, STORES, run_smart_open),
    Contender("floor-source", "floor: source alone (records + to_csv_row)", ("tracker",), ("none",),
              run_floor_source, "floor"),
    Contender("floor-format", "floor: csv.writer alone", BOTH, ("none",), run_floor_format, "floor"),
    Contender("floor-format-csvpublish", "floor: csvpublish's formatter alone (same bytes)", BOTH, ("none",),
              run_floor_format_csvpublish, "floor"),
    Contender("floor-gzip-isal", "floor: gzip -1 alone (isal)", ("prebuilt", "frames"), ("none",), run_floor_gzip_isal,
              "floor"),
    Contender("floor-gzip-zlib", "floor: gzip -1 alone (zlib)", ("prebuilt",), ("none",), run_floor_gzip_zlib, "floor"),
    Contender("floor-upload", "floor: store the .gz once", ("prebuilt",), STORES, run_floor_upload, "floor"),
    Contender("floor-publish-storage", "floor: stream the .gz to the archive, then copy to latest", ("prebuilt",),
              STORES, run_floor_publish_storage, "floor"),
    # issue 12: the frames mode
    Contender("csvpublish-pandas", "csvpublish publish(pandas DataFrame)", FRAMES, S3,
              lambda s, c: run_csvpublish_source(s, c, "pandas")),
    Contender("csvpublish-polars", "csvpublish publish(polars DataFrame)", FRAMES, S3,
              lambda s, c: run_csvpublish_source(s, c, "polars")),
    Contender("csvpublish-arrow", "csvpublish publish(pyarrow Table)", FRAMES, S3,
              lambda s, c: run_csvpublish_source(s, c, "arrow")),
    Contender("csvpublish-reader", "csvpublish publish(pyarrow RecordBatchReader over the IPC file)", FRAMES, S3,
              lambda s, c: run_csvpublish_source(s, c, "reader")),
    Contender("csvpublish-cursor", "csvpublish publish(sqlite3 cursor)", FRAMES, S3,
              lambda s, c: run_csvpublish_source(s, c, "cursor")),
    Contender("pandas-frame", "pandas DataFrame.to_csv", FRAMES, S3, run_pandas, gzip="1 (zlib)"),
    Contender("polars-write-csv", "polars DataFrame.write_csv(s3://…, gzip)", FRAMES, S3, run_polars_write_csv,
              gzip="1 (polars)", same_bytes=False),
    Contender("pyarrow-write-csv", "pyarrow write_csv → S3 stream, compression=\"gzip\"", FRAMES, S3,
              run_pyarrow_write_csv, gzip="9 (Arrow's default, fixed)", same_bytes=False),
    Contender("pyarrow-write-csv-gzip1", "pyarrow write_csv → isal IGzipFile → S3 stream", FRAMES, S3,
              run_pyarrow_write_csv_gzip1, gzip="1 (isal)", same_bytes=False),
    Contender("duckdb-copy-arrow", "DuckDB COPY (SELECT * FROM arrow_table) TO s3://…", FRAMES, S3,
              run_duckdb_copy_arrow, gzip="≈6 (DuckDB's, fixed)", same_bytes=False),
    Contender("duckdb-copy-sqlite", "DuckDB COPY (SELECT * FROM sqlite_scan(…)) TO s3://…", FRAMES, S3,
              run_duckdb_copy_sqlite, gzip="≈6 (DuckDB's, fixed)", same_bytes=False),
    # issue 13: the latency mode
    Contender("latency-csvpublish", "csvpublish publish_sync(rows), nothing published yet", LATENCY, S3,
              run_latency_csvpublish),
    Contender("latency-seed-plan", "the seed plan: two concurrent PUTs of the .gz", LATENCY, S3,
              run_latency_seed_plan),
    Contender("latency-put-copy", "PUT of the .gz, then a server-side copy to the latest", LATENCY, S3,
              run_latency_put_copy),
    Contender("latency-csvpublish-1-version", "csvpublish publish_sync(rows), 1 version already published",
              LATENCY, S3, run_latency_csvpublish, versions=1),
    Contender("latency-csvpublish-3000-versions",
              f"csvpublish publish_sync(rows), {MANY_VERSIONS:,} versions already published", LATENCY, S3,
              run_latency_csvpublish, versions=MANY_VERSIONS),
]  # fmt: skip

BY_NAME = {c.name: c for c in CONTENDERS}


def run_child(spec: Spec) -> dict[str, Any]:
    clock = Clock()
    BY_NAME[spec.contender].run(spec, clock)
    return {
        "wall": clock.wall,
        "peak_rss": clock.peak,
        "rss_before": clock.rss_before,
        "peak_exact": clock.peak_exact,
        "cpu": clock.cpu,
        "span": list(clock.span),
        **clock.extra,
    }
