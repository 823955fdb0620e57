"""The latency mode (issue 13): a delaying TCP proxy in front of moto, the seeded versions, its table and targets.

:class:`DelayProxy` listens on 127.0.0.1 and passes every connection on to the S3
server. It holds each HTTP request ``delay_ms`` before passing it on: when the first
byte of a request arrives, the request waits, and then its bytes flow unhindered
(headers and body), as do the responses. So every request costs one wait, however
large its body, and requests sent at the same time on different connections wait at
the same time. Connections are kept alive and served concurrently; opening one is
not delayed.

The proxy also logs each request's interval, from the arrival of its first byte to
the first byte of its response (an interim ``100 Continue`` does not count), so a
run can say how many requests it made inside its clock, how many were in flight at
once, and how many had to wait for one another (:func:`sequential_depth`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

CHUNK = 2**16
LATENCY_ROWS = 1_000
"""The table the latency mode publishes: the first 1,000 rows of the book fixture."""
MANY_VERSIONS = 3_000
"""The archived versions already under the prefix in the ``…-3000-versions`` run."""


# --- finding the requests in a client's byte stream -------------------------------------------


class RequestFramer:
    """Finds where each HTTP/1.1 request starts in the bytes a client sends.

    It reads each request's header for its body's length (``Content-Length``, or a
    ``chunked`` body, chunk by chunk), so a body is never taken for a new request,
    however it is cut into reads. On a header it cannot read it assumes no body.
    """

    def __init__(self) -> None:
        self._state = "idle"  # idle, head, body, size, chunk, trailer
        self._buffer = b""  # the header, or the chunk-size or trailer line, read so far
        self._left = 0  # bytes left of the body, or of the chunk and its CRLF

    def split(self, data: bytes) -> list[tuple[bytes, bool]]:
        r"""``data`` cut where requests start: ``(piece, True)`` for a piece that begins a request.

        >>> framer = RequestFramer()
        >>> framer.split(b"PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel")
        [(b'PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel', True)]
        >>> framer.split(b"loGET /b HTTP/1.1\r\n\r\n")
        [(b'lo', False), (b'GET /b HTTP/1.1\r\n\r\n', True)]
        """
        pieces: list[tuple[bytes, bool]] = []
        start, pos, new = 0, 0, False
        while pos < len(data):
            if self._state == "idle":
                if pos > start:
                    pieces.append((data[start:pos], new))
                start, new = pos, True
                self._state, self._buffer = "head", b""
            pos = self._advance(data, pos)
        if start < len(data):
            pieces.append((data[start:], new))
        return pieces

    def _advance(self, data: bytes, pos: int) -> int:
        """Consume ``data`` from ``pos`` in the current state; return where it stopped."""
        if self._state in ("body", "chunk"):
            taken = min(self._left, len(data) - pos)
            self._left -= taken
            if self._left == 0:
                self._state = "idle" if self._state == "body" else "size"
            return pos + taken
        end = b"\r\n\r\n" if self._state == "head" else b"\r\n"
        seen = len(self._buffer)
        self._buffer += data[pos:]
        found = self._buffer.find(end, max(0, seen - len(end) + 1))
        if found < 0:
            return len(data)
        unit, self._buffer = self._buffer[:found], b""
        if self._state == "head":
            self._after_head(unit)
        elif self._state == "size":
            self._after_size(unit)
        elif not unit:  # the empty line that ends a chunked body's trailer
            self._state = "idle"
        return pos + found + len(end) - seen

    def _after_head(self, head: bytes) -> None:
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            self._state = "size"
            return
        try:
            self._left = int(fields.get(b"content-length", b"0"))
        except ValueError:
            self._left = 0
        self._state = "body" if self._left > 0 else "idle"

    def _after_size(self, line: bytes) -> None:
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            size = 0
        self._state, self._left = ("trailer", 0) if size == 0 else ("chunk", size + 2)


# --- what the proxy saw ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestStats:
    """The requests of one run inside its clock, as the proxy saw them."""

    requests: int
    max_concurrent: int
    """The most requests in flight at one moment."""
    depth: int
    """:func:`sequential_depth`: how many of them had to wait for one another."""


def sequential_depth(intervals: Iterable[tuple[float, float]]) -> int:
    """The most requests of which each started after the previous one's response began.

    Requests in flight together count once; so this is the number of waits a run
    could not overlap (the greedy earliest-end choice finds the largest such chain).

    >>> sequential_depth([(0, 1), (0.5, 1.5), (1, 2), (2.1, 3)])
    3
    """
    depth, free_at = 0, float("-inf")
    for start, end in sorted(intervals, key=lambda interval: interval[1]):
        if start >= free_at:
            depth, free_at = depth + 1, end
    return depth


def max_concurrent(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one moment (one that ends as another starts does not overlap it).

    >>> max_concurrent([(0, 1), (0.5, 1.5), (1, 2)])
    2
    """
    events = sorted((t, step) for start, end in intervals for t, step in ((start, 1), (end, -1)))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


class RequestLog:
    """Each request's interval: from its first byte at the proxy to the first byte of its response."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: list[list[float | None]] = []

    def begin(self) -> int:
        with self._lock:
            self._intervals.append([time.monotonic(), None])
            return len(self._intervals) - 1

    def finish(self, index: int) -> None:
        with self._lock:
            self._intervals[index][1] = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            self._intervals.clear()

    def stats(self, t0: float, t1: float) -> RequestStats:
        """The requests that started between ``t0`` and ``t1`` (``time.monotonic()`` of any process)."""
        with self._lock:
            inside = [(s, e if e is not None else t1) for s, e in self._intervals if s is not None and t0 <= s <= t1]
        return RequestStats(len(inside), max_concurrent(inside), sequential_depth(inside))


def _interim(data: bytes) -> bool:
    """True when ``data`` is exactly one ``100 Continue`` response, which does not answer the request."""
    return data.startswith((b"HTTP/1.1 100", b"HTTP/1.0 100")) and data.find(b"\r\n\r\n") == len(data) - 4


# --- the proxy --------------------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that holds each request ``delay_ms`` ms.

    It runs its own event loop in a daemon thread; :attr:`endpoint` is its URL.
    """

    def __init__(self, upstream: str, delay_ms: float) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay_ms = delay_ms
        self.log = RequestLog()
        self._connections: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="latency-proxy", daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result(timeout=10)
        self.endpoint = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        """Close the listener and every connection still open, then end the loop's thread."""

        async def close() -> None:
            self.server.close()
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        """One client connection and its own connection to the server, until either side closes."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)  # a strong reference, which asyncio's streams do not keep
        try:
            server_in, server_out = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_out.close()
            self._connections.discard(task)
            return
        pending: list[int] = []  # the request of this connection awaiting its response (at most one)
        pumps = [
            asyncio.ensure_future(self._requests(client_in, server_out, pending)),
            asyncio.ensure_future(self._responses(server_in, client_out, pending)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:  # an HTTP client that closes wants no more answers: end both directions
            for pump in pumps:
                pump.cancel()
            for out in (client_out, server_out):
                out.close()
            await asyncio.gather(*pumps, return_exceptions=True)  # a reset connection ends quietly
            self._connections.discard(task)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: list[int]) -> None:
        """Client to server: each request waits ``delay_ms`` when its first byte arrives."""
        framer = RequestFramer()
        while data := await reader.read(CHUNK):
            for piece, starts_request in framer.split(data):
                if starts_request:
                    pending[:] = [self.log.begin()]
                    await asyncio.sleep(self.delay_ms / 1000)
                writer.write(piece)
            await writer.drain()

    async def _responses(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: list[int]) -> None:
        """Server to client, undelayed; the first byte of a response ends its request's interval."""
        while data := await reader.read(CHUNK):
            if pending and not _interim(data):
                self.log.finish(pending.pop())
            writer.write(data)
            await writer.drain()


# --- the versions already published, written straight to the S3 server ------------------------


def seed_versions(endpoint: str, client: Any, bucket: str, csv_path: str, count: int) -> str:
    """Leave ``count`` archived versions of ``books`` under ``s3://<bucket>/meta``; return the newest's id.

    Written to the S3 server itself (``endpoint``, ``client``: boto3), not through the
    proxy, before the child starts. The newest is a real ``publish_file`` of the CSV by
    the library, so the latest and its manifest exist too. Each of the others, one hour
    apart before it, is a server-side copy of its archive with its own manifest: the
    library's, with its version, archive and creation time changed, named by the
    library's :class:`~csvpublish.naming.Layout`.
    """
    from csvpublish import Publisher
    from csvpublish.manifest import Manifest, utc_iso
    from csvpublish.naming import Layout, version_id, version_time

    options = {"key": "bench", "secret": "bench", "skip_instance_cache": True,
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}  # fmt: skip
    published = Publisher(f"s3://{bucket}/meta", name="books", storage_options=options).publish_file_sync(csv_path)
    layout, newest = Layout("books"), published.version
    raw = client.get_object(Bucket=bucket, Key=f"meta/{layout.archive_manifest(newest)}")["Body"].read()
    manifest = Manifest.from_json(raw)

    def one(hours_before: int) -> None:
        moment = version_time(newest) - timedelta(hours=hours_before)
        version = version_id(moment)
        client.copy_object(
            Bucket=bucket, Key=f"meta/{layout.archive(version)}",
            CopySource={"Bucket": bucket, "Key": f"meta/{manifest.archive}"},
        )  # fmt: skip
        old = dataclasses.replace(manifest, version=version, archive=layout.archive(version),
                                  created_at=utc_iso(moment + timedelta(seconds=1)))  # fmt: skip
        client.put_object(Bucket=bucket, Key=f"meta/{layout.archive_manifest(version)}", Body=old.to_json(),
                          ContentType="application/json")  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(1, count)))
    # the measured publish must not fall in the newest's second: a same-second publish takes the
    # next suffix (three round trips more), which would measure the collision, not the history
    while version_id(datetime.now(timezone.utc)) <= newest:
        time.sleep(0.05)
    return newest


# --- the report ----------------------------------------------------------------------------------


def latency_table(rows: int, cases: list[Any], results: dict[Any, list[Any]], baseline: str) -> list[str]:
    """The latency mode's table: wall times, their ratio to ``baseline``'s, and the requests each run made."""
    shown = [(c, rs) for c in cases if c.rows == rows and c.mode == "latency" and (rs := results.get(c.key))]
    if not shown:
        return []
    delays = sorted({r.extra["latency_ms"] for _, rs in shown for r in rs if "latency_ms" in r.extra})
    base = results.get((rows, "latency", "s3", baseline))
    base_wall = statistics.median([r.wall for r in base]) if base else None
    out = [
        f"### {rows:,} rows · latency mode · moto S3 server behind a proxy holding each request "
        f"{' / '.join(f'{d:g}' for d in delays)} ms",
        "",
        "| contender | median wall s | min–max s | × the seed plan's two PUTs | requests (copies) "
        "| requests in the clock | at once (max) | sequential depth | output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    out += [_table_row(case, rs, base_wall) for case, rs in shown]
    return [*out, "", *LEGEND, ""]


def _table_row(case: Any, rs: list[Any], base_wall: float | None) -> str:
    walls = [r.wall for r in rs]
    wall = statistics.median(walls)
    ratio = f"{wall / base_wall:.1f}×" if base_wall else "—"
    req = [r.requests for r in rs if r.requests is not None]
    cop = [r.copies for r in rs if r.copies is not None]
    requests = f"{statistics.median(req):.0f} ({statistics.median(cop):.0f})" if req else "—"
    seen = [r.extra["proxy"] for r in rs if "proxy" in r.extra]
    proxy = [f"{statistics.median([s[k] for s in seen]):.0f}" if seen else "—"
             for k in ("requests", "max_concurrent", "depth")]  # fmt: skip
    oks = [r.output_ok for r in rs if r.output_ok is not None]
    output = "—" if not oks else ("✓" if all(oks) else "✗")
    return (
        f"| {case.contender.label} (`{case.contender.name}`) | {wall:.3f} | {min(walls):.3f}–{max(walls):.3f} "
        f"| {ratio} | {requests} | {' | '.join(proxy)} | {output} |"
    )


LEGEND = [
    "Each request waits at the proxy once, when its first byte arrives; responses and the rest of a body are not "
    "delayed, nor is opening a connection. requests (copies): every request the contender's process sent, its "
    "warm-up included, counted by the S3 server (the versions seeded before it are not counted). Requests in the "
    "clock, at once (max) and sequential depth are the proxy's, between the clock's start and stop: a request lasts "
    "from its first byte to the first byte of its answer; at once is the most in flight together; the depth is the "
    "longest chain of requests each started after the previous one was answered, so at least depth × the delay of "
    "the wall time is waiting. The seed plan's .gz (stdlib gzip -1) and csvpublish's rows are made before the clock.",
]
