"""Publish a Dask DataFrame or Bag as one snapshot: each partition written by a worker, assembled by the store.

``pip install 'csvpublish[dask]'``. Import it explicitly (``import csvpublish`` never imports Dask)::

    from csvpublish import Publisher
    from csvpublish.dask import publish_dask

    result = publish_dask(frame, Publisher("s3://bucket/meta", name="books"))

Every partition is formatted, gzipped (one member each) and uploaded by the
worker that holds it, as :class:`~csvpublish.partitions.PartitionWriter` does;
the coordinator (this process) only reserves the version, assembles the parts
server-side, has one worker read the result once for its sha256s, and promotes
it. The snapshot equals publishing the partitions concatenated, in partition
order, in one process: the same CSV bytes, the same guarantees.

On a ``distributed`` cluster, give the workers ``MALLOC_MMAP_THRESHOLD_`` (for
example 16 MiB, in ``distributed.nanny.pre-spawn-environ``): the nanny's
``MALLOC_TRIM_THRESHOLD_`` otherwise fixes glibc's mmap threshold at 128 KiB and
every part buffer is mapped afresh (7-12% more CPU in the benchmark).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InputError, MissingBackendError
from .partitions import Digest, Digester, PartitionWriter, PartReceipt
from .publisher import Publisher
from .publisher.partitioned import DigestRunner
from .results import PublishResult

__all__ = ["publish_dask"]


def publish_dask(
    collection: Any, publisher: Publisher, *, headers: Sequence[str] | None = None, client: Any = None
) -> PublishResult:
    """Publish a Dask DataFrame (its columns, not its index) or a Dask Bag of records or rows.

    Runs on ``client`` (a ``distributed.Client``) or else on the current Dask
    scheduler. ``headers`` names the columns (a Bag of sequences needs it; a
    DataFrame's default is its columns). A partition that raises aborts the
    publish with that error once every other partition has stopped; nothing is
    left visible and the latest is untouched.

    Raises:
        MissingBackendError: Dask is not installed.
        InputError: ``collection`` is not a Dask DataFrame or Bag, or the destination cannot assemble parts.
    """
    try:
        from dask.delayed import delayed
    except ImportError:
        raise MissingBackendError("publishing a Dask collection needs Dask: pip install 'csvpublish[dask]'") from None
    partitions, headers = _partitions(collection, headers)
    client = client if client is not None else _current_client()
    session = publisher.begin_partitioned_sync(len(partitions), headers=headers)
    try:
        tasks = [delayed(_write, pure=False)(session.writer, i, part) for i, part in enumerate(partitions)]
        receipts = _compute(tasks, client)
    except BaseException:
        session.abort_sync()
        raise
    return session.commit_sync(receipts, digest=_digest_on(client))


def _partitions(collection: Any, headers: Sequence[str] | None) -> tuple[list[Any], Sequence[str] | None]:
    """The collection's partitions as Delayed objects, in order, and the header of every partition."""
    if not hasattr(collection, "to_delayed") or not hasattr(collection, "npartitions"):
        raise InputError(
            f"publish_dask takes a Dask DataFrame or Bag, not {type(collection).__name__}; "
            "for anything else use Publisher.publish"
        )
    columns = getattr(collection, "columns", None)
    if headers is None and columns is not None:  # a DataFrame: its columns, so an empty partition has them too
        headers = [str(c) for c in columns]
    return list(collection.to_delayed()), headers


def _write(writer: PartitionWriter, index: int, partition: Any) -> PartReceipt:
    """One partition, on a worker."""
    return writer.write_sync(index, _peeked(partition))


def _peeked(partition: Any) -> Any:
    """A Bag's lazy partition as an iterable that says it is empty (a DataFrame or a list as it is)."""
    if isinstance(partition, (list, tuple)) or not isinstance(partition, Iterable) or hasattr(partition, "columns"):
        return partition
    iterator = iter(partition)
    first = next(iterator, _NOTHING)
    return [] if first is _NOTHING else itertools.chain([first], iterator)


_NOTHING = object()


def _current_client() -> Any:
    """The ``distributed.Client`` that is the current Dask scheduler, or None."""
    if "distributed" not in sys.modules:
        return None
    from dask.base import get_scheduler
    from distributed import Client

    owner = getattr(get_scheduler(), "__self__", None)  # type: ignore[no-untyped-call]
    return owner if isinstance(owner, Client) else None


def _compute(tasks: list[Any], client: Any) -> list[PartReceipt]:
    """Run every partition; on a failure, wait until none still runs, then raise the first partition's error."""
    if client is None:
        from dask.base import compute

        return list(compute(*tasks))  # type: ignore[no-untyped-call]
    from distributed import wait

    futures = client.compute(tasks)
    wait(futures)  # type: ignore[no-untyped-call]  # a partition still uploading after the abort would leave a staged part behind
    return list(client.gather(futures))


def _digest_on(client: Any) -> DigestRunner | None:
    """Read the assembled object on a worker (None: in this process, beside the local scheduler's workers)."""
    if client is None:
        return None

    async def remote(digester: Digester) -> Digest:
        return await asyncio.to_thread(lambda: client.submit(digester, pure=False).result())

    return remote
