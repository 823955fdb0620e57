"""Promotion: the latest is a copy of its archive, replaced under the lease, never by an earlier start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csvpublish import Publisher, Storage

from .conftest import backends
from .faults import Faults, FaultyLocal
from .helpers import rows, store_checksum


@pytest.mark.parametrize("backend", backends("faults", "object_store"))
async def test_an_object_store_gets_the_bytes_once_and_copies_the_latest(make_destination: Any, backend: str) -> None:
    """On an object store the data crosses the network once, to the archive; the latest is a server-side copy of it."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults), name="books")
    result = await publisher.publish(rows(5000))
    assert faults.bytes == result.size  # every data byte uploaded exactly once
    archive = f"timestamped/books_{result.version}.csv.gz"
    assert {path for op, path in faults.log if op == "upload"} == {f"meta/{archive}"}
    # besides the probe of conditional copies, which copies the reservation marker onto itself once per process
    copies = [path for op, path in faults.log if op == "copy" and "/.csvpublish/" not in path]
    assert copies == ["meta/books_latest.csv.gz"]
    assert destination.read("books_latest.csv.gz") == destination.read(archive)
    st = destination.reader()
    assert store_checksum(st.fs.info(st.path("books_latest.csv.gz"))) == store_checksum(st.fs.info(st.path(archive)))


async def test_local_latest_is_a_copy_then_rename_of_the_archive(tmp_path: Path) -> None:
    """In a local folder the archive is written once and the latest is a copy of it, renamed into place."""
    faults = Faults()
    publisher = Publisher(Storage(FaultyLocal(faults), str(tmp_path / "out")), name="books")
    result = await publisher.publish(rows(2000))
    assert faults.bytes == result.size
    copies = [Path(path).name for op, path in faults.log if op == "copy"]
    assert len(copies) == 2
    assert copies[0].startswith(".books_latest.csv.gz.")
    assert copies[1] == "books_latest.csv.gz"
    out = tmp_path / "out"
    archive = out / f"timestamped/books_{result.version}.csv.gz"
    assert (out / "books_latest.csv.gz").read_bytes() == archive.read_bytes()


@pytest.mark.parametrize("backend", backends())
async def test_an_earlier_publish_never_replaces_a_later_one(make_destination: Any, backend: str) -> None:
    """A publish that started first but finished last stays an archive; the latest keeps the later start."""
    destination = make_destination(backend)
    slow = destination.publisher()
    fast = destination.publisher()
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_back() -> AsyncIterator[dict[str, str]]:
        entered.set()  # the slow publish has reserved its version by now
        await release.wait()
        for row in rows(20, "slow"):
            yield row

    slow_task = asyncio.create_task(slow.publish(held_back()))
    await entered.wait()
    later = await fast.publish(rows(20, "fast"))
    release.set()
    earlier = await slow_task
    assert earlier.version < later.version
    assert later.latest_updated
    assert not earlier.latest_updated
    report = await fast.verify(strict=True)
    assert report.version == later.version
    assert [v.version for v in await fast.versions()] == [later.version, earlier.version]


@pytest.mark.parametrize("backend", backends())
async def test_a_dead_lock_holder_is_finished_before_the_next_promotion(make_destination: Any, backend: str) -> None:
    """A dead lock holder's promotion is finished first, so the latest never moves back to an earlier version."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    early = destination.publisher()
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_back() -> AsyncIterator[dict[str, str]]:
        entered.set()
        await release.wait()
        for row in rows(5, "early"):
            yield row

    first = await publisher.publish(rows(5, "first"))
    early_task = asyncio.create_task(early.publish(held_back()))
    await entered.wait()
    crashed = await publisher.publish(rows(5, "crashed"))
    # as if that publish had died after its copy and before its manifest, holding the lock
    previous_manifest = destination.read(f"timestamped/books_{first.version}.manifest.json")
    destination.write("books_latest.manifest.json", previous_manifest)
    marker = {"pid": 1, "host": "gone", "version": crashed.version, "started_at": "2000-01-01T00:00:00Z", "token": "d"}
    destination.write(".csvpublish/books.latest.lock", json.dumps(marker).encode())
    report = await publisher.verify()
    assert report.ok
    assert report.version == crashed.version
    assert report.notes
    release.set()
    early_result = await early_task
    assert not early_result.latest_updated
    final = await publisher.verify(strict=True)
    assert final.version == crashed.version
    assert final.notes == []
    if destination.caps.conditions_enforced:  # no promotion takes the lease there: cleanup() breaks the dead one
        await publisher.cleanup()
    assert ".csvpublish/books.latest.lock" not in destination.files()


@pytest.mark.parametrize("backend", backends())
async def test_switching_compression_removes_the_other_latest(make_destination: Any, backend: str) -> None:
    """After a compressed publish, a plain one replaces the latest and removes the stale .csv.gz latest."""
    destination = make_destination(backend)
    await Publisher(destination.url, name="books", storage_options=destination.options).publish([{"a": 1}])
    plain = Publisher(destination.url, name="books", compression=False, storage_options=destination.options)
    result = await plain.publish([{"a": 2}])
    files = destination.files()
    assert "books_latest.csv" in files
    assert "books_latest.csv.gz" not in files
    assert destination.read("books_latest.csv") == b"a\r\n2\r\n"
    assert (await plain.verify()).ok
    assert result.compression is None
