"""The hand-offs between the stages of one pass: bounded queues, an abort flag, what the source stage found."""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dialect import Dialect

if TYPE_CHECKING:
    from .changes import KeyCollector

QUEUE_DEPTH = 2
POLL_SECONDS = 0.05
"""How often a waiting stage checks the abort flag."""
CHUNK_BYTES = 2**20
DONE = object()
"""Put on a queue after the last chunk."""


class Aborted(Exception):
    """Raised in a stage when another stage failed: it stops, and the failure that matters is raised instead."""


@dataclass
class Found:
    """What the source stage learns on its way: the header, the column types, the dialect, the record count."""

    columns: list[str] = field(default_factory=list)
    types: list[str | None] | None = None
    dialect: Dialect = field(default_factory=Dialect)
    records: int | None = None
    keys: KeyCollector | None = None
    """A keyed pass: each row's key text and hashes (:mod:`csvpublish.changes`)."""


class Flow:
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
                raise Aborted
            try:
                q.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.abort.is_set():
                raise Aborted
            try:
                return q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue

    async def put_async(self, q: queue.Queue[Any], item: Any) -> None:
        """Hand ``item`` to a thread stage without blocking the event loop."""
        try:
            q.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self.put, q, item)
