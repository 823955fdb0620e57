"""The single pass: rows -> CSV bytes -> (local file, hashes, gzip) -> upload, all overlapped.

::

    source stage (producers)        compressor thread          uploader thread
    records: batches of rows, --q1-> local CSV, sha256,  --q2-> Writer.write
    CsvFormatter (loop thread);     gzip, sha256              (multipart parts)
    Arrow: pyarrow kernels (thread);
    a file: read once (thread)

Each queue holds at most :data:`~csvpublish.handoff.QUEUE_DEPTH` chunks of about
1 MiB (Arrow slices of about 8 MiB, so the next one is formatted while one
compresses), so memory is bounded by the queues, one batch or slice and one
multipart part, whatever the number of rows. Records are
formatted on the thread that pulls them, while they are still in its cache.
Formatting holds the GIL (Arrow's kernels do not); zlib/isal, hashlib and
socket I/O release it, so on two cores the wall time approaches the source plus
formatting alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsspec.callbacks import Callback, NoOpCallback

from .changes import KeyCollector
from .compression import GzipCompressor
from .dialect import Dialect
from .handoff import CHUNK_BYTES, DONE, Aborted, Flow, Found
from .producers import Plan, produce
from .storage import Writer
from .storage.local import local_writer
from .storage.translate import translate


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
    column_types: list[str | None] | None = None
    """The source's type of each column, where it has them."""
    dialect: Dialect = field(default_factory=Dialect)
    """How the CSV is written (for a file: its delimiter and header as told, its line ends and BOM as found)."""
    keys: KeyCollector | None = None
    """A keyed pass: each row's key text and hashes, to sort into the version's key file."""


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

    def stats(self, found: Found, *, pending_local: Writer | None) -> StreamStats:
        return StreamStats(
            record_count=found.records,
            columns=found.columns,
            column_types=found.types,
            dialect=found.dialect,
            csv_size=self.csv_size,
            csv_sha256=self.csv_hash.hexdigest(),
            size=self.stored_size,
            sha256=self.stored_hash.hexdigest(),
            pending_local=pending_local,
            keys=found.keys,
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
    dialect: Dialect | None = None,
    key: tuple[str, ...] | None = None,
    check_columns: Callable[[Sequence[str]], None] | None = None,
) -> StreamStats:
    """Run one pass from ``source`` (records) or ``csv_file`` (an existing CSV).

    Writes ``local_path`` atomically when given and streams the stored bytes to
    ``sink`` without committing it: the caller commits or discards. With
    ``commit_local=False`` the local CSV is left uncommitted too, in
    ``StreamStats.pending_local``, so the caller can commit it (an fsync of the
    whole file) while it commits the sink. On any failure the sink is discarded
    and ``local_path`` is left as it was. With ``key`` (column names) each row's
    key and hashes are collected into ``StreamStats.keys``. ``check_columns`` is told
    the columns before any byte is passed on; what it raises stops the pass.
    """
    progress = progress or Progress()
    flow = Flow(uploads=sink is not None)
    try:
        local = local_writer(str(local_path)) if local_path is not None else None
    except BaseException:
        if sink is not None:
            await asyncio.to_thread(sink.discard)
        raise
    state = _Bytes(local, compressor)
    found = Found()
    pool = _StagePool(flow)
    pool.submit(_compress_stage, flow, state)
    if sink is not None:
        pool.submit(_upload_stage, flow, sink, progress.uploaded)
    try:
        plan = Plan(headers, escape_formulas, progress.rows, dialect or Dialect(), key, check_columns)
        path = Path(csv_file) if csv_file is not None else None
        await produce(source, path, plan, flow=flow, found=found, submit=pool.submit, failed=pool.failed)
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
        if isinstance(exc, Aborted) and failure is not None:
            raise failure from None
        raise
    finally:
        pool.shutdown()
    return state.stats(found, pending_local=None if commit_local else local)


def _compress_stage(flow: Flow, state: _Bytes) -> None:
    """Feed each CSV chunk to the local file, the hashes and gzip; pass the stored bytes on in ~1 MiB chunks."""
    q_bytes, q_stored = flow.csv, flow.stored
    pending: list[bytes] = []
    pending_size = 0
    while True:
        chunk = flow.get(q_bytes)
        out = state.finish() if chunk is DONE else state.feed(chunk)
        q_bytes.task_done()  # the formatter stops handing over the GIL once no chunk is unfinished
        if q_stored is not None and out:
            pending.append(out)
            pending_size += len(out)
        if q_stored is not None and pending and (pending_size >= CHUNK_BYTES or chunk is DONE):
            flow.put(q_stored, b"".join(pending))
            pending, pending_size = [], 0
        if chunk is DONE:
            if q_stored is not None:
                flow.put(q_stored, DONE)
            return


def _upload_stage(flow: Flow, sink: Writer, uploaded: Callback) -> None:
    """Write the stored bytes to the sink (multipart parts), translating its failures."""
    assert flow.stored is not None
    while True:
        chunk = flow.get(flow.stored)
        if chunk is DONE:
            return
        try:
            sink.write(chunk)
        except Exception as exc:
            raise translate(exc, sink.name, sink.errors) from exc
        uploaded.relative_update(len(chunk))


class _StagePool:
    """Threads running the stages; a failing stage raises the shared abort flag."""

    def __init__(self, flow: Flow) -> None:
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
            if isinstance(result, BaseException) and not isinstance(result, Aborted):
                return result
        return None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)
