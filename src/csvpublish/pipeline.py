"""The single pass: rows -> CSV bytes -> (local file, hashes, gzip) -> upload, all overlapped.

::

    event loop's thread             compressor thread          uploader thread
    pull a batch of records, --q1-> local CSV, sha256,  --q2-> Writer.write
    to_csv_row, CsvFormatter,       gzip, sha256              (multipart parts)
    encode (1 MiB chunks)

Each queue holds at most :data:`QUEUE_DEPTH` chunks of about 1 MiB, so memory
is bounded by the queues, one batch of :data:`~csvpublish.rows.BATCH_ROWS`
records and one multipart part, whatever the number of rows. Records are
formatted on the thread that pulls them, while they are still in its cache.
Formatting holds the GIL; zlib/isal, hashlib and socket I/O release it,
so on two cores the wall time approaches the source plus formatting alone.

For an existing file, a reader thread replaces the formatting and counts
records as it reads (``\\n`` outside quotes), so the file is read once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import hashlib
import io
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsspec.callbacks import Callback, NoOpCallback

from .compression import GzipCompressor
from .errors import InputError, MissingInputError
from .rows import BATCH_ROWS, CsvFormatter, RecordCounter, batches, plan_rows, resolve_source
from .storage import Writer
from .storage.local import local_writer
from .storage.translate import translate

QUEUE_DEPTH = 2
POLL_SECONDS = 0.05
"""How often a waiting stage checks the abort flag."""
CHUNK_BYTES = 2**20
_DONE = object()


@dataclass
class Progress:
    """Progress hooks, each an fsspec :class:`~fsspec.callbacks.Callback`.

    ``rows`` counts data rows formatted (for a file: bytes read, with the file
    size set), ``uploaded`` counts stored bytes handed to the storage. Pass
    ``fsspec.callbacks.TqdmCallback()`` instances for progress bars.
    """

    rows: Callback = field(default_factory=NoOpCallback)
    uploaded: Callback = field(default_factory=NoOpCallback)


@dataclass
class StreamStats:
    """What one pass produced."""

    record_count: int | None
    columns: list[str]
    csv_size: int
    csv_sha256: str
    size: int
    sha256: str
    pending_local: Writer | None = None
    """With ``commit_local=False``: the local CSV, written but not yet committed."""


class _Aborted(Exception):
    pass


@dataclass
class _Found:
    """What the source stage learns on its way: the header and, at the end, the record count."""

    columns: list[str] = field(default_factory=list)
    records: int | None = None


class _Flow:
    """Shared abort flag and bounded hand-offs between the stages."""

    def __init__(self, *, uploads: bool) -> None:
        self.abort = threading.Event()
        self.csv: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        """CSV bytes, from the formatter (or the file reader) to the compressor."""
        self.stored: queue.Queue[Any] | None = queue.Queue(QUEUE_DEPTH) if uploads else None
        """Stored (compressed) bytes, from the compressor to the uploader; None without a sink."""

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.abort.is_set():
                raise _Aborted
            try:
                q.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.abort.is_set():
                raise _Aborted
            try:
                return q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue


class _Bytes:
    """The compressor stage's state: local CSV, hashes, gzip."""

    def __init__(self, local: Writer | None, compressor: GzipCompressor | None) -> None:
        self.local = local
        self.compressor = compressor
        self.csv_hash = hashlib.sha256()
        self.stored_hash = hashlib.sha256() if compressor else self.csv_hash
        self.csv_size = 0
        self.stored_size = 0

    def feed(self, chunk: bytes) -> bytes:
        if self.local is not None:
            self.local.write(chunk)
        self.csv_hash.update(chunk)
        self.csv_size += len(chunk)
        if self.compressor is None:
            self.stored_size += len(chunk)
            return chunk
        out = self.compressor.compress(chunk)
        self.stored_hash.update(out)
        self.stored_size += len(out)
        return out

    def finish(self) -> bytes:
        if self.compressor is None:
            return b""
        out = self.compressor.flush()
        self.stored_hash.update(out)
        self.stored_size += len(out)
        return out

    def stats(self, found: _Found, *, pending_local: Writer | None) -> StreamStats:
        return StreamStats(
            record_count=found.records,
            columns=found.columns,
            csv_size=self.csv_size,
            csv_sha256=self.csv_hash.hexdigest(),
            size=self.stored_size,
            sha256=self.stored_hash.hexdigest(),
            pending_local=pending_local,
        )


async def run(
    *,
    source: Any = None,
    csv_file: str | Path | None = None,
    headers: Sequence[str] | None = None,
    escape_formulas: bool = False,
    local_path: str | Path | None = None,
    commit_local: bool = True,
    sink: Writer | None = None,
    compressor: GzipCompressor | None = None,
    progress: Progress | None = None,
) -> StreamStats:
    """Run one pass from ``source`` (records) or ``csv_file`` (an existing CSV).

    Writes ``local_path`` atomically when given and streams the stored bytes to
    ``sink`` without committing it: the caller commits or discards. With
    ``commit_local=False`` the local CSV is left uncommitted too, in
    ``StreamStats.pending_local``, so the caller can commit it (an fsync of the
    whole file) while it commits the sink. On any failure the sink is discarded
    and ``local_path`` is left as it was.
    """
    progress = progress or Progress()
    flow = _Flow(uploads=sink is not None)
    try:
        local = local_writer(str(local_path)) if local_path is not None else None
    except BaseException:
        if sink is not None:
            await asyncio.to_thread(sink.discard)
        raise
    state = _Bytes(local, compressor)
    found = _Found()
    pool = _StagePool(flow)
    pool.submit(_compress_stage, flow, state)
    if sink is not None:
        pool.submit(_upload_stage, flow, sink, progress.uploaded)
    try:
        if csv_file is not None:
            pool.submit(_read_file_stage, Path(csv_file), flow, found, progress.rows)
        else:
            plan = _Plan(headers=headers, escape_formulas=escape_formulas, rows_callback=progress.rows)
            await _format_records(source, plan, flow=flow, found=found, failed=pool.failed)
        await pool.wait()
        if local is not None and commit_local:
            await asyncio.to_thread(local.commit)
    except BaseException as exc:
        flow.abort.set()
        failure = await pool.first_failure()
        if local is not None:
            local.discard()
        if sink is not None:
            await asyncio.to_thread(sink.discard)
        if isinstance(exc, _Aborted) and failure is not None:
            raise failure from None
        raise
    finally:
        pool.shutdown()
    return state.stats(found, pending_local=None if commit_local else local)


def _compress_stage(flow: _Flow, state: _Bytes) -> None:
    """Feed each CSV chunk to the local file, the hashes and gzip; pass the stored bytes on in ~1 MiB chunks."""
    q_bytes, q_stored = flow.csv, flow.stored
    pending: list[bytes] = []
    pending_size = 0
    while True:
        chunk = flow.get(q_bytes)
        out = state.finish() if chunk is _DONE else state.feed(chunk)
        q_bytes.task_done()  # the formatter stops handing over the GIL once no chunk is unfinished
        if q_stored is not None and out:
            pending.append(out)
            pending_size += len(out)
        if q_stored is not None and pending and (pending_size >= CHUNK_BYTES or chunk is _DONE):
            flow.put(q_stored, b"".join(pending))
            pending, pending_size = [], 0
        if chunk is _DONE:
            if q_stored is not None:
                flow.put(q_stored, _DONE)
            return


def _upload_stage(flow: _Flow, sink: Writer, uploaded: Callback) -> None:
    """Write the stored bytes to the sink (multipart parts), translating its failures."""
    assert flow.stored is not None
    while True:
        chunk = flow.get(flow.stored)
        if chunk is _DONE:
            return
        try:
            sink.write(chunk)
        except Exception as exc:
            raise translate(exc, sink.name, sink.errors) from exc
        uploaded.relative_update(len(chunk))


class _StagePool:
    """Threads running the stages; a failing stage raises the shared abort flag."""

    def __init__(self, flow: _Flow) -> None:
        self.flow = flow
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=3, thread_name_prefix="csvpublish")
        self.futures: list[concurrent.futures.Future[None]] = []

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except BaseException:
                self.flow.abort.set()
                raise

        self.futures.append(self.executor.submit(guarded))

    def failed(self) -> bool:
        return self.flow.abort.is_set()

    async def wait(self) -> None:
        """Wait for every stage; raise the first real failure."""
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self.futures), return_exceptions=True)
        failure = await self.first_failure()
        if failure is not None:
            raise failure

    async def first_failure(self) -> BaseException | None:
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in self.futures), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _Aborted):
                return result
        return None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)


@dataclass(frozen=True)
class _Plan:
    """How records become CSV: the header, formula escaping, and who hears of each batch."""

    headers: Sequence[str] | None
    escape_formulas: bool
    rows_callback: Callback


async def _format_records(source: Any, plan: _Plan, *, flow: _Flow, found: _Found, failed: Callable[[], bool]) -> None:
    """Pull records in small batches and format them here, on the event loop's thread.

    Formatting where the records are produced keeps them in this core's cache,
    and a sync iterator may hold objects bound to this thread (a sqlite3
    cursor). The bytes go to the compressor thread in chunks of about
    :data:`CHUNK_BYTES`; the loop runs its other tasks between chunks.
    """
    headers, rows_callback, q_bytes = plan.headers, plan.rows_callback, flow.csv
    rows = await resolve_source(source)
    if isinstance(rows, list):
        rows_callback.set_size(len(rows))
    formatter = CsvFormatter(others_waiting=lambda: q_bytes.unfinished_tasks > 0)
    convert: Callable[[list[Any], int], list[Sequence[Any]]] | None = None
    pending: list[bytes] = []
    pending_size = 0
    count = 0
    async for batch in batches(rows, BATCH_ROWS):
        if convert is None:
            columns, convert = plan_rows(batch[0], headers, escape_formulas=plan.escape_formulas)
            found.columns = columns
            pending.append(formatter.format([columns]))
        data = formatter.format(convert(batch, count + 1))
        pending.append(data)
        pending_size += len(data)
        count += len(batch)
        rows_callback.relative_update(len(batch))
        if pending_size >= CHUNK_BYTES:
            await _put_async(flow, q_bytes, b"".join(pending))
            pending, pending_size = [], 0
            await asyncio.sleep(0)  # let the event loop run its other tasks
            if failed():  # a stage died: stop pulling the source
                raise _Aborted
    if convert is None:
        if headers is None:
            raise InputError(
                "the source produced no rows and no headers were given: pass headers=[...] to write a header-only CSV"
            )
        found.columns = [str(h) for h in headers]
        pending.append(formatter.format([found.columns]))
    await _put_async(flow, q_bytes, b"".join(pending))
    await _put_async(flow, q_bytes, _DONE)
    found.records = count


async def _put_async(flow: _Flow, q: queue.Queue[Any], item: Any) -> None:
    """Hand ``item`` to a thread stage without blocking the event loop."""
    try:
        q.put_nowait(item)
    except queue.Full:
        await asyncio.to_thread(flow.put, q, item)


def _read_file_stage(path: Path, flow: _Flow, found: _Found, callback: Callback) -> None:
    """Read an existing CSV once: pass its bytes on, find its header and count its records."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such CSV file; export it first or fix the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a CSV file") from None
    with handle:
        callback.set_size(path.stat().st_size)
        counter = RecordCounter()
        while chunk := handle.read(CHUNK_BYTES):
            if not counter.last:
                found.columns = _header_of(chunk)
            counter.feed(chunk)
            flow.put(flow.csv, chunk)
            callback.relative_update(len(chunk))
        found.records = counter.records
    flow.put(flow.csv, _DONE)


def _header_of(chunk: bytes) -> list[str]:
    text = chunk.decode("utf-8", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text, newline="")))
    except (StopIteration, csv.Error):
        return []
