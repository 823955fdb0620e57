"""Reservations and the latest's lease: conditional creates keep racing publishers apart."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest

from csvpublish import Publisher

from .conftest import backends
from .helpers import published_objects, rows


@pytest.mark.parametrize("backend", backends())
async def test_locks_are_conditional_creates(make_destination: Any, backend: str) -> None:
    """A reservation or lock is created only if absent: a second create fails and leaves the first."""
    destination = make_destination(backend)
    storage = destination.reader()
    await storage.write_bytes(".csvpublish/books.latest.lock", b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        await storage.write_bytes(".csvpublish/books.latest.lock", b"second", exclusive=True)
    assert await storage.read_bytes(".csvpublish/books.latest.lock") == b"first"


@pytest.mark.parametrize("backend", backends())
def test_concurrent_publishers_keep_every_archive_and_one_complete_latest(make_destination: Any, backend: str) -> None:
    """Four racing publishers keep four intact archives; the latest is the one that started last and verify names it."""
    destination = make_destination(backend)
    count = 4
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        publisher = Publisher(destination.url, name="books", storage_options=destination.options)  # a client each
        barrier.wait()
        try:
            results[i] = publisher.publish_sync(rows(300 + i * 50, f"p{i}-"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    publisher = destination.publisher()
    versions = {info.version: info for info in publisher.versions_sync()}
    assert sorted(versions) == sorted(r.version for r in results)  # no archive missing, none shared
    for result in results:  # none overwritten: each archive holds what its publisher wrote
        archive = destination.read(f"timestamped/books_{result.version}.csv.gz")
        assert hashlib.sha256(archive).hexdigest() == result.sha256
        assert publisher.verify_sync(result.version).ok
    newest = max(results, key=lambda r: r.version)
    report = publisher.verify_sync(strict=True)
    assert report.version == newest.version
    assert destination.read("books_latest.csv.gz") == destination.read(f"timestamped/books_{newest.version}.csv.gz")
    assert newest.latest_updated
    assert set(destination.files()) == published_objects(publisher)
    described = json.loads(destination.read("books.datapackage.json"))["resources"][0]
    assert described["hash"] == f"sha256:{newest.sha256}", "the descriptor is not the newest's"


@pytest.mark.parametrize("backend", backends())
def test_six_publishers_of_six_snapshots_each_all_finish(make_destination: Any, backend: str) -> None:
    """Six threads publishing six snapshots each to one destination all finish, every archive kept, the newest latest.

    Their reservations and lease locks race as conditional creates of the same keys (issue 13's stall).
    """
    destination = make_destination(backend)
    count, each = 6, 6
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        publisher = Publisher(destination.url, name="books", storage_options=destination.options)  # a client each
        barrier.wait()
        try:
            for j in range(each):
                results.append(publisher.publish_sync(rows(20 + j, f"p{i}-{j}-")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [thread for thread in threads if thread.is_alive()], "a publisher stalled"
    assert not errors, errors
    publisher = destination.publisher()
    assert sorted(info.version for info in publisher.versions_sync()) == sorted(r.version for r in results)
    assert len(results) == count * each
    newest = max(results, key=lambda r: r.version)
    assert publisher.verify_sync(strict=True).version == newest.version
    assert set(destination.files()) == published_objects(publisher)
