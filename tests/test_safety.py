"""Safe publishing: nothing partial, nothing lost, every version checkable and restorable.

Faults come from tests/faults.py: the real local, memory and s3fs filesystems
with a hook that fails a chosen operation. S3 runs against moto's server.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import errno
import gzip
import hashlib
import io
import json
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest
from botocore.exceptions import ClientError

from csvpublish import (
    AccessDeniedError,
    InputError,
    IntegrityError,
    Publisher,
    RetryPolicy,
    SnapshotRejectedError,
    Storage,
    StorageError,
    TransientStorageError,
    VersionNotFoundError,
    export_csv_to_file,
)
from csvpublish.compression import BACKENDS
from csvpublish.manifest import Manifest

from .conftest import Destination, list_files, s3_options
from .faults import Faults, FaultyLocal, FaultyMemory, faulty_s3

FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.02)


def rows(n: int, tag: str = "a") -> list[dict[str, str]]:
    return [{"Barcode": f"{tag}{i}", "Title": f"Title {tag} {i}", "Note": "x" * (i % 7)} for i in range(n)]


def noisy_rows(n: int) -> list[dict[str, str]]:
    """Rows that barely compress: ~220 stored bytes each."""
    noise = base64.b64encode(random.Random(n).randbytes(n * 160)).decode()
    return [{"Barcode": str(i), "Title": "t", "Note": noise[i * 200 : i * 200 + 200]} for i in range(n)]


def faulty(destination: Destination, faults: Faults, retry: RetryPolicy = FAST) -> Storage:
    """The destination's real filesystem behind the fault hook."""
    if destination.backend == "local":
        return Storage(FaultyLocal(faults), destination.url, retry=retry)
    if destination.backend == "memory":
        return Storage(FaultyMemory(faults), destination.url, retry=retry)
    return Storage(faulty_s3(faults, **destination.options), destination.url, retry=retry)


_s3_clients: dict[str, Any] = {}


def shared_s3(endpoint: str) -> Any:
    """One s3fs client for the module: building one costs about 0.4 s (botocore loads the S3 model)."""
    if endpoint not in _s3_clients:
        _s3_clients[endpoint] = fsspec.filesystem("s3", **s3_options(endpoint))
    return _s3_clients[endpoint]


@pytest.fixture
def make(make_destination: Any, request: pytest.FixtureRequest) -> Callable[[str], Destination]:
    """A function backend -> fresh Destination; S3 buckets are made with the shared client."""

    def build(backend: str) -> Destination:
        if backend != "s3":
            return make_destination(backend)  # type: ignore[no-any-return]
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"safety-{uuid.uuid4().hex[:12]}"
        shared_s3(endpoint).call_s3("create_bucket", Bucket=bucket)
        return Destination("s3", f"s3://{bucket}/meta", s3_options(endpoint))

    return build


_readers: dict[str, Storage] = {}


def reader(destination: Destination) -> Storage:
    """One Storage per destination for the test's reads and its plain publishers."""
    if destination.url not in _readers:
        _readers.clear()
        if destination.backend == "s3":
            fs = shared_s3(destination.options["client_kwargs"]["endpoint_url"])
            _readers[destination.url] = Storage(fs, destination.url)
        else:
            _readers[destination.url] = destination.storage()
    return _readers[destination.url]


def publisher_for(destination: Destination, **options: Any) -> Publisher:
    return Publisher(reader(destination), name="books", **options)


def read(destination: Destination, rel: str) -> bytes:
    st = reader(destination)
    return bytes(st.fs.cat_file(st.path(rel)))


def write(destination: Destination, rel: str, data: bytes) -> None:
    st = reader(destination)
    st.fs.pipe_file(st.path(rel), data)
    st.fs.invalidate_cache()


def files(destination: Destination) -> set[str]:
    """Every object under the destination, hidden ones included, relative to it."""
    return list_files(reader(destination))


def snapshot(destination: Destination) -> dict[str, Any]:
    """A fingerprint of every object: its bytes, or on S3 its size and ETag (one listing instead of a read each)."""
    if destination.backend != "s3":
        return {rel: read(destination, rel) for rel in files(destination)}
    st = reader(destination)
    st.fs.invalidate_cache()
    root = st.path()
    found = st.fs.find(root, withdirs=False, detail=True)
    return {name[len(root) + 1 :]: (info["size"], info["ETag"]) for name, info in found.items()}


def incomplete_uploads(destination: Destination) -> list[Any]:
    if destination.backend != "s3":
        return []
    bucket = destination.url.split("/")[2]
    return list(reader(destination).fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))


def published_objects(publisher: Publisher, latest_suffix: str = ".csv.gz") -> set[str]:
    """What a clean destination holds: the latest, its manifest, and each version's archive and manifest."""
    expected = {f"books_latest{latest_suffix}", "books_latest.manifest.json"}
    for info in publisher.versions_sync():
        expected |= {info.path, f"timestamped/books_{info.version}.manifest.json"}
    return expected


async def assert_intact(
    destination: Destination, publisher: Publisher, before: dict[str, Any], latest: dict[str, bytes], step: str = ""
) -> None:
    """The previous latest pair is byte-identical, nothing earlier changed, and anything new is a complete version."""
    for rel, data in latest.items():
        assert read(destination, rel) == data, f"{step}: {rel} changed"
    after = snapshot(destination)
    for rel, fingerprint in before.items():
        assert after.get(rel) == fingerprint, f"{step}: {rel} changed or vanished"
    new = set(after) - set(before)
    versions = {rel.removeprefix("timestamped/books_").split(".")[0] for rel in new}
    for version in versions:
        pair = {f"timestamped/books_{version}.csv.gz", f"timestamped/books_{version}.manifest.json"}
        assert new & pair == pair, f"{step}: {new} is not complete versions"
        assert (await publisher.verify(version)).ok, step
    assert len(new) == 2 * len(versions), f"{step}: {new} left behind"
    assert incomplete_uploads(destination) == [], step
    report = await publisher.verify()
    assert report.ok, (step, report.problems)
    assert report.notes == [], step


def latest_pair(destination: Destination) -> dict[str, bytes]:
    return {rel: read(destination, rel) for rel in ("books_latest.csv.gz", "books_latest.manifest.json")}


# --- fault injection ------------------------------------------------------------------------

DENIED: dict[str, Callable[[], BaseException]] = {
    "local": lambda: PermissionError(13, "Permission denied"),
    "memory": lambda: PermissionError(13, "Permission denied"),
    "s3": lambda: ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject"),
}
RESET: Callable[[], BaseException] = lambda: ConnectionResetError(104, "Connection reset by peer")  # noqa: E731
SLOW_DOWN: Callable[[], BaseException] = lambda: ClientError(  # noqa: E731
    {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "PutObject"
)

# (operation, where, after_bytes): each step of a publish, in order
STEPS: dict[str, tuple[str, str | None, int | None]] = {
    "listing": ("list", None, None),
    "reservation": ("lock", r"\d\.lock", None),
    "first bytes": ("upload", r"timestamped/", None),
    "mid-stream": ("upload", r"timestamped/", 2 * 2**20),
    "archive commit": ("commit", r"timestamped/", None),
    "archive manifest": ("manifest", r"timestamped/", None),
    "latest lock": ("lock", r"latest\.lock", None),
    "copy to latest": ("copy", r"_latest\.csv", None),
    "latest manifest": ("manifest", r"_latest\.manifest", None),
}


@pytest.mark.parametrize("backend", ["local", "memory", "s3"])
async def test_a_failure_at_any_step_leaves_the_previous_latest_intact(make: Any, backend: str) -> None:
    """A lasting failure at any step leaves the latest pair byte-identical, nothing partial; the next publish works."""
    destination = make(backend)
    faults = Faults()
    publisher = Publisher(faulty(destination, faults), name="books")
    await publisher.publish(rows(50, "old"))
    for step, (op, where, after_bytes) in STEPS.items():
        if backend == "s3" and (op == "commit" or after_bytes or step == "reservation"):
            # a small archive is one PutObject on S3 (its parts and commit are tested on the writer below);
            # the reservation is the same conditional PutObject as the latest lock
            continue
        before, latest = snapshot(destination), latest_pair(destination)
        faults.fail(op, DENIED[backend], where=where, after_bytes=after_bytes, times=None)
        with pytest.raises(AccessDeniedError, match="access denied"):
            await publisher.publish(noisy_rows(15_000) if after_bytes else rows(400, "new"))
        assert faults.rules[0].fired, step
        await assert_intact(destination, publisher, before, latest, step)
        faults.rules.clear()
        result = await publisher.publish(rows(30, step))
        report = await publisher.verify(strict=True)
        assert report.version == result.version, step
    assert files(destination) == published_objects(publisher)


TRANSIENT_STEPS = {
    "local": ["listing", "reservation", "archive manifest", "latest lock", "copy to latest", "latest manifest"],
    "memory": ["listing", "reservation", "archive manifest", "latest lock", "copy to latest", "latest manifest"],
    "s3": [
        "listing",
        "reservation",
        "first bytes",
        "archive manifest",
        "latest lock",
        "copy to latest",
        "latest manifest",
    ],
}


@pytest.mark.parametrize("backend", ["local", "memory", "s3"])
async def test_transient_errors_at_each_step_are_retried(make: Any, backend: str) -> None:
    """A dropped connection, twice at every step of a publish, is retried and the publish succeeds."""
    destination = make(backend)
    faults = Faults()
    for step in TRANSIENT_STEPS[backend]:
        op, where, _ = STEPS[step]
        faults.fail(op, RESET, where=where, times=2)
    faults.fail("delete", RESET, where=r"\.(lock|json|gz)$", times=2)  # objects, not local temp files
    publisher = Publisher(faulty(destination, faults), name="books")
    result = await publisher.publish(rows(100))
    assert all(rule.fired == 2 for rule in faults.rules), [(r.op, r.where, r.fired) for r in faults.rules]
    report = await publisher.verify(strict=True)
    assert report.version == result.version
    assert set(files(destination)) == published_objects(publisher)


async def test_an_s3_backend_failing_the_first_requests_still_publishes(make: Any) -> None:
    """S3 answering SlowDown to the first requests of every kind still publishes, after retries with backoff."""
    destination = make("s3")
    faults = Faults().fail("request", SLOW_DOWN, times=3)
    for op in ("list", "lock", "upload", "manifest", "copy", "delete"):
        faults.fail(op, SLOW_DOWN, times=1)
    publisher = Publisher(faulty(destination, faults), name="books")
    result = await publisher.publish(rows(100))
    assert all(rule.fired for rule in faults.rules)
    assert (await publisher.verify(strict=True)).version == result.version


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_retries_are_bounded(make: Any, backend: str) -> None:
    """A step that keeps failing with a retryable error gives up after the policy's attempts (TransientStorageError)."""
    destination = make(backend)
    faults = Faults()
    publisher = Publisher(faulty(destination, faults, RetryPolicy(attempts=3, initial=0.01)), name="books")
    await publisher.publish(rows(10, "old"))
    before, latest = snapshot(destination), latest_pair(destination)
    faults.fail("manifest", RESET, where=r"timestamped/", times=None)
    with pytest.raises(TransientStorageError, match="kept failing with a temporary error"):
        await publisher.publish(rows(10, "new"))
    assert faults.rules[0].fired == 3
    await assert_intact(destination, publisher, before, latest)


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_a_permanent_error_fails_fast_without_retrying(make: Any, backend: str) -> None:
    """Access denied is raised as AccessDeniedError on the first attempt, with no backoff."""
    destination = make(backend)
    faults = Faults().fail("lock", DENIED[backend], times=None)
    publisher = Publisher(faulty(destination, faults, RetryPolicy(attempts=5, initial=5.0)), name="books")
    await publisher.storage.check()  # the client is built and connected before the clock starts
    started = time.monotonic()
    with pytest.raises(AccessDeniedError, match="access denied; check the credentials"):
        await publisher.publish(rows(10))
    assert time.monotonic() - started < 2.0  # one backoff step alone would take at least 2.5 s
    assert faults.rules[0].fired == 1
    assert files(destination) == set()


@pytest.mark.parametrize("failure", ["transient", "permanent"])
async def test_s3_multipart_commit_retries_or_aborts(make: Any, failure: str) -> None:
    """CompleteMultipartUpload is retried on a dropped connection; a permanent failure aborts the upload, no object."""
    destination = make("s3")
    faults = Faults()
    storage = faulty(destination, faults)
    data = bytes(range(256)) * (6 * 2**20 // 256)  # two parts of 5 MiB and 1 MiB
    if failure == "transient":
        faults.fail("commit", RESET, times=2)
    else:
        faults.fail("commit", DENIED["s3"], times=None)
    writer = await asyncio.to_thread(storage.open_writer, "big.bin", exclusive=True, part_size=5 * 2**20)
    await asyncio.to_thread(writer.write, data)
    assert [op for op, _ in faults.log].count("upload") == 1  # the first part went up while writing
    if failure == "transient":
        await asyncio.to_thread(storage.blocking, "commit", writer.commit, retry=False)
        assert read(destination, "big.bin") == data
    else:
        with pytest.raises(AccessDeniedError):
            await asyncio.to_thread(storage.blocking, "commit", writer.commit, retry=False)
        assert "big.bin" not in files(destination)
    assert incomplete_uploads(destination) == []


@pytest.mark.parametrize("backend", ["local", "memory", "s3", "gcs"])
async def test_locks_are_conditional_creates(make: Any, backend: str) -> None:
    """A reservation or lock is created only if absent: a second create fails and leaves the first."""
    destination = make(backend)
    storage = reader(destination)
    await storage.write_bytes(".csvpublish/books.latest.lock", b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        await storage.write_bytes(".csvpublish/books.latest.lock", b"second", exclusive=True)
    assert await storage.read_bytes(".csvpublish/books.latest.lock") == b"first"


# Not run on GCS: fake-gcs-server ignores ifGenerationMatch=0 on gcsfs's resumable "xb" uploads
# (../shared/notes/emulators.md), so it cannot show this; there the reservation lock, which the
# emulator does enforce, keeps archive names
# apart (test_concurrent_publishers_keep_every_archive_and_one_complete_latest).
@pytest.mark.parametrize("backend", ["local", "memory", "s3"])
async def test_an_archive_upload_never_replaces_an_object(make: Any, backend: str) -> None:
    """An exclusive upload (If-None-Match on S3, a hard link locally) loses to an existing object and leaves it."""
    destination = make(backend)
    storage = reader(destination)
    sizes = (10, 6 * 2**20) if backend in {"s3", "gcs"} else (10,)  # one request, then a multipart upload
    for size in sizes:
        name = f"a{size}.bin"
        first = await asyncio.to_thread(storage.open_writer, name, exclusive=True, part_size=5 * 2**20)
        await asyncio.to_thread(first.write, b"1" * size)
        second = await asyncio.to_thread(storage.open_writer, name, exclusive=True, part_size=5 * 2**20)
        await asyncio.to_thread(second.write, b"2" * size)
        await asyncio.to_thread(first.commit)
        with pytest.raises(FileExistsError):
            await asyncio.to_thread(second.commit)
        assert read(destination, name) == b"1" * size
    assert incomplete_uploads(destination) == []


# --- one upload, then copy --------------------------------------------------------------------


async def test_s3_uploads_the_bytes_once_and_copies_the_latest(make: Any) -> None:
    """On S3 the data crosses the network once, to the archive; the latest is a CopyObject of it."""
    destination = make("s3")
    faults = Faults()
    publisher = Publisher(faulty(destination, faults), name="books")
    result = await publisher.publish(rows(5000))
    assert faults.bytes == result.size  # every data byte uploaded exactly once
    archive = f"timestamped/books_{result.version}.csv.gz"
    assert {path for op, path in faults.log if op == "upload"} == {f"meta/{archive}"}
    assert [path for op, path in faults.log if op == "copy"] == ["meta/books_latest.csv.gz"]
    assert read(destination, "books_latest.csv.gz") == read(destination, archive)
    st = reader(destination)
    assert st.fs.info(st.path("books_latest.csv.gz"))["ETag"] == st.fs.info(st.path(archive))["ETag"]


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


# --- concurrency and order ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3", "gcs"])
def test_concurrent_publishers_keep_every_archive_and_one_complete_latest(make: Any, backend: str) -> None:
    """Four racing publishers keep four intact archives; the latest is the one that started last and verify names it."""
    destination = make(backend)
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
    publisher = publisher_for(destination)
    versions = {info.version: info for info in publisher.versions_sync()}
    assert sorted(versions) == sorted(r.version for r in results)  # no archive missing, none shared
    for result in results:  # none overwritten: each archive holds what its publisher wrote
        archive = read(destination, f"timestamped/books_{result.version}.csv.gz")
        assert hashlib.sha256(archive).hexdigest() == result.sha256
        assert publisher.verify_sync(result.version).ok
    newest = max(results, key=lambda r: r.version)
    report = publisher.verify_sync(strict=True)
    assert report.version == newest.version
    assert read(destination, "books_latest.csv.gz") == read(destination, f"timestamped/books_{newest.version}.csv.gz")
    assert newest.latest_updated
    assert set(files(destination)) == published_objects(publisher)


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_an_earlier_publish_never_replaces_a_later_one(make: Any, backend: str) -> None:
    """A publish that started first but finished last stays an archive; the latest keeps the later start."""
    destination = make(backend)
    slow = publisher_for(destination)
    fast = publisher_for(destination)
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


async def test_a_dead_lock_holder_is_finished_before_the_next_promotion(tmp_path: Path) -> None:
    """A dead lock holder's promotion is finished first, so the latest never moves back to an earlier version."""
    publisher = Publisher(tmp_path / "out", name="books")
    early = Publisher(tmp_path / "out", name="books")
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
    out = tmp_path / "out"
    (out / "books_latest.manifest.json").write_bytes(
        (out / f"timestamped/books_{first.version}.manifest.json").read_bytes()
    )
    marker = {"pid": 1, "host": "gone", "version": crashed.version, "started_at": "2000-01-01T00:00:00Z", "token": "d"}
    (out / ".csvpublish/books.latest.lock").write_text(json.dumps(marker))
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
    assert not (out / ".csvpublish/books.latest.lock").exists()


# --- versions, verify, restore, prune -----------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_versions_lists_archives_newest_first_with_their_details(make: Any, backend: str) -> None:
    """versions() gives each archive's identifier, UTC timestamp, URI, size and record count, newest first."""
    destination = make(backend)
    publisher = publisher_for(destination)
    results = [await publisher.publish(rows(n)) for n in (3, 5, 7)]
    versions = await publisher.versions()
    assert [v.version for v in versions] == [r.version for r in reversed(results)]
    for info, result in zip(versions, reversed(results), strict=True):
        assert info.record_count == result.record_count
        assert info.size == result.size == len(read(destination, info.path))
        assert info.uri == result.archive_uri
        assert info.timestamp.strftime("%Y%m%d_%H%M%S") == info.version[:15]
        assert info.timestamp.utcoffset() == timedelta(0)
    assert [v.is_latest for v in versions] == [True, False, False]


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_verify_passes_on_an_intact_latest_and_version(make: Any, backend: str) -> None:
    """verify() re-hashes the latest and an archived version and finds them as their manifests say."""
    destination = make(backend)
    publisher = publisher_for(destination)
    first = await publisher.publish(rows(10))
    second = await publisher.publish(rows(12))
    report = await publisher.verify(strict=True)
    assert (report.ok, report.version, report.sha256, report.record_count) == (True, second.version, second.sha256, 12)
    old = await publisher.verify(first.version, strict=True)
    assert (old.ok, old.target, old.version, old.record_count) == (True, first.version, first.version, 10)


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_verify_catches_a_tampered_latest(make: Any, backend: str) -> None:
    """A latest whose bytes were changed fails verify, and strict verify raises IntegrityError."""
    destination = make(backend)
    publisher = publisher_for(destination)
    await publisher.publish(rows(10))
    write(destination, "books_latest.csv.gz", gzip.compress(b"Barcode\r\nforged\r\n", mtime=0))
    report = await publisher.verify()
    assert not report.ok
    assert any("sha256" in p for p in report.problems)
    with pytest.raises(IntegrityError, match="sha256"):
        await publisher.verify(strict=True)


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_verify_catches_a_tampered_manifest(make: Any, backend: str) -> None:
    """A latest manifest edited to claim other bytes, or broken, fails verify."""
    destination = make(backend)
    publisher = publisher_for(destination)
    await publisher.publish(rows(10))
    manifest = json.loads(read(destination, "books_latest.manifest.json"))
    manifest["record_count"] = 11
    manifest["sha256"] = "0" * 64
    write(destination, "books_latest.manifest.json", json.dumps(manifest).encode())
    report = await publisher.verify()
    assert not report.ok
    assert any("the manifest says" in p for p in report.problems)
    assert any("differs from its archive" in p for p in report.problems)
    write(destination, "books_latest.manifest.json", b"{not json")
    with pytest.raises(IntegrityError, match="not a valid csvpublish manifest"):
        await publisher.verify()


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_verify_catches_a_tampered_or_missing_archive(make: Any, backend: str) -> None:
    """An archived version with changed bytes fails verify(version); a latest whose archive is gone fails verify()."""
    destination = make(backend)
    publisher = publisher_for(destination)
    result = await publisher.publish(rows(10))
    archive = f"timestamped/books_{result.version}.csv.gz"
    write(destination, archive, read(destination, archive)[:-8] + b"\0" * 8)
    report = await publisher.verify(result.version)
    assert not report.ok
    assert report.problems
    with pytest.raises(IntegrityError):
        await publisher.verify(result.version, strict=True)
    reader(destination).fs.rm_file(reader(destination).path(archive))
    assert any("is missing" in p for p in (await publisher.verify()).problems)


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_restore_makes_an_archived_version_the_latest_again(make: Any, backend: str) -> None:
    """restore() copies an archived version and its manifest over the latest; verify names it; later publishes win."""
    destination = make(backend)
    publisher = publisher_for(destination)
    first = await publisher.publish(rows(4, "first"))
    await publisher.publish(rows(6, "second"))
    restored = await publisher.restore(first.version)
    assert restored.version == first.version
    assert restored.latest_updated
    assert read(destination, "books_latest.csv.gz") == read(destination, f"timestamped/books_{first.version}.csv.gz")
    manifest = Manifest.from_json(read(destination, "books_latest.manifest.json"))
    assert manifest.version == first.version
    assert manifest.restored_at
    report = await publisher.verify(strict=True)
    assert report.version == first.version
    info = next(v for v in await publisher.versions() if v.version == first.version)
    assert info.is_latest
    again = await publisher.restore(info)  # a VersionInfo works too
    assert again.version == first.version
    third = await publisher.publish(rows(8, "third"))
    assert third.latest_updated
    assert (await publisher.verify()).version == third.version
    with pytest.raises(VersionNotFoundError, match="no archived version"):
        await publisher.restore("19990101_000000")


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_prune_keeps_the_newest_and_the_latest_source(make: Any, backend: str) -> None:
    """prune(keep=N) deletes archives and manifests older than the newest N, never the archive the latest came from."""
    destination = make(backend)
    publisher = publisher_for(destination)
    results = [await publisher.publish(rows(3 + i)) for i in range(4)]
    await publisher.restore(results[0].version)
    deleted = await publisher.prune(keep=1)
    assert sorted(deleted) == sorted(r.version for r in results[1:3])
    assert [v.version for v in await publisher.versions()] == [results[3].version, results[0].version]
    assert (await publisher.verify(strict=True)).version == results[0].version
    assert set(files(destination)) == published_objects(publisher)


async def test_keep_prunes_after_each_successful_publish(make: Any) -> None:
    """Publisher(keep=2) keeps only the two newest archives after each publish and reports what it pruned."""
    destination = make("memory")
    publisher = publisher_for(destination, keep=2)
    results = [await publisher.publish(rows(2 + i)) for i in range(4)]
    assert results[1].pruned == []
    assert results[2].pruned == [results[0].version]
    assert results[3].pruned == [results[1].version]
    assert [v.version for v in await publisher.versions()] == [results[3].version, results[2].version]
    assert set(files(destination)) == published_objects(publisher)


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_skip_unchanged_writes_nothing_for_the_same_bytes(make: Any, backend: str) -> None:
    """With skip_unchanged=True, publishing the same data again writes nothing and says skipped=True."""
    destination = make(backend)
    publisher = publisher_for(destination, skip_unchanged=True)
    first = await publisher.publish(rows(20))
    before = snapshot(destination)
    again = await publisher.publish(rows(20))
    assert again.skipped
    assert not again.latest_updated
    assert (again.version, again.sha256) == (first.version, first.sha256)
    assert snapshot(destination) == before
    assert incomplete_uploads(destination) == []
    changed = await publisher.publish(rows(21))
    assert not changed.skipped
    assert changed.version != first.version


# --- guards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "s3"])
async def test_an_empty_file_is_refused(make: Any, backend: str, tmp_path: Path) -> None:
    """A 0-byte CSV is refused with SnapshotRejectedError and the current latest stays."""
    destination = make(backend)
    publisher = publisher_for(destination)
    await publisher.publish(rows(3))
    before = snapshot(destination)
    empty = tmp_path / "books.csv"
    empty.write_bytes(b"")
    with pytest.raises(SnapshotRejectedError, match="empty"):
        await publisher.publish_file(empty)
    assert snapshot(destination) == before


@pytest.mark.parametrize("backend", ["memory", "s3"])
async def test_min_records_refuses_a_short_snapshot(make: Any, backend: str) -> None:
    """A snapshot with fewer rows than min_records is refused after streaming; nothing of it remains."""
    destination = make(backend)
    publisher = publisher_for(destination, min_records=10)
    await publisher.publish(rows(10))
    before = snapshot(destination)
    with pytest.raises(SnapshotRejectedError, match="9 records, fewer than min_records=10"):
        await publisher.publish(rows(9))
    with pytest.raises(SnapshotRejectedError, match="0 records"):
        await publisher.publish([], headers=["Barcode", "Title"])
    assert snapshot(destination) == before
    assert incomplete_uploads(destination) == []


@pytest.mark.parametrize("backend", ["memory", "s3"])
async def test_a_failed_local_csv_commit_publishes_nothing(
    make: Any, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local CSV is committed beside the archive; if its fsync fails (a full disk), no version appears.

    The fault wraps the real ``os.fsync``: a full disk cannot be produced on demand.
    """
    import csvpublish.storage.local as storage_module

    destination = make(backend)
    publisher = publisher_for(destination)
    local = tmp_path / "books.csv"
    await publisher.publish(rows(3), local_path=local)
    before, local_before = snapshot(destination), local.read_bytes()
    real_fsync = storage_module.os.fsync

    def full_disk(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".books.csv.")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(storage_module.os, "fsync", full_disk)
    with pytest.raises(StorageError, match="local CSV") as caught:
        await publisher.publish(rows(5), local_path=local)
    assert "No space left" in str(caught.value) or "No space left" in str(caught.value.__cause__)
    assert snapshot(destination) == before  # no archive, no manifest, the same latest
    assert incomplete_uploads(destination) == []
    assert local.read_bytes() == local_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books.csv"]  # no temp file left


async def test_a_local_path_that_is_a_folder_is_refused(make: Any, tmp_path: Path) -> None:
    """``local_path`` naming a folder is an InputError before anything is written, not a file moved into it."""
    destination = make("memory")
    publisher = publisher_for(destination)
    await publisher.publish(rows(3))
    before = snapshot(destination)
    folder = tmp_path / "staging"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        await publisher.publish(rows(4), local_path=folder)
    with pytest.raises(InputError, match="is a folder"):
        await export_csv_to_file(rows(4), folder)
    assert list(folder.iterdir()) == []
    assert snapshot(destination) == before


async def test_every_object_stays_under_the_destination_prefix(make: Any) -> None:
    """Publishing, restoring, pruning and cleanup write nothing outside the destination prefix."""
    destination = make("s3")
    publisher = publisher_for(destination, keep=1)
    for i in range(2):
        await publisher.publish(rows(3 + i))
    await publisher.restore((await publisher.versions())[0])
    await publisher.cleanup()
    fs = reader(destination).fs
    bucket = destination.url.split("/")[2]
    keys = [key.split("/", 1)[1] for key in fs.find(bucket)]
    assert keys
    assert all(key.startswith("meta/") for key in keys), keys


# --- formula escaping and deterministic output ------------------------------------------------


def latest_rows(destination: Destination) -> list[list[str]]:
    text = gzip.decompress(read(destination, "books_latest.csv.gz")).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_escape_formulas_neutralises_spreadsheet_formulas(make: Any) -> None:
    """escape_formulas=True quotes cells starting with = + - @ tab or CR; without it they are kept as they are."""
    destination = make("memory")
    cells = ["=1+2", "+A1", "-3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]
    data = [{"Barcode": str(i), "Title": cell} for i, cell in enumerate(cells)]
    await Publisher(destination.url, name="books").publish(data)
    assert [row[1] for row in latest_rows(destination)[1:]] == cells
    await Publisher(destination.url, name="books", escape_formulas=True).publish(data)
    escaped = [row[1] for row in latest_rows(destination)[1:]]
    assert escaped == ["'=1+2", "'+A1", "'-3", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b"]


async def test_the_same_data_always_gives_the_same_stored_bytes(make: Any) -> None:
    """The same rows published twice store identical bytes, hashes and S3 ETags; the gzip header has no time or name."""
    destination = make("s3")
    publisher = publisher_for(destination)
    first = await publisher.publish(rows(5000))
    second = await publisher.publish(rows(5000))
    assert first.version != second.version
    assert first.sha256 == second.sha256
    stored = read(destination, f"timestamped/books_{first.version}.csv.gz")
    assert stored[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no FNAME flag, mtime 0, OS unknown
    st = reader(destination)
    etags = {st.fs.info(st.path(f"timestamped/books_{r.version}.csv.gz"))["ETag"] for r in (first, second)}
    assert len(etags) == 1


@pytest.mark.parametrize(
    "backend",
    list(BACKENDS),
)
async def test_a_csv_file_and_its_rows_store_the_same_bytes(tmp_path: Path, backend: str) -> None:
    """The same CSV gives the same stored bytes whether published from rows or from a file."""
    rng = random.Random(5)
    data = [
        {"Barcode": str(i), "Title": "word " * rng.randint(0, 40), "Note": str(rng.random())} for i in range(20_000)
    ]
    where = f"memory://same-{backend}-{tmp_path.name}"
    from_rows = await Publisher(f"{where}/a", name="books", compression_backend=backend).publish(data)
    csv_path = tmp_path / "books.csv"
    await export_csv_to_file(data, csv_path)
    from_file = await Publisher(f"{where}/b", name="books", compression_backend=backend).publish_file(csv_path)
    assert from_rows.csv_sha256 == from_file.csv_sha256
    assert from_rows.sha256 == from_file.sha256


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_switching_compression_removes_the_other_latest(make: Any, backend: str) -> None:
    """After a compressed publish, a plain one replaces the latest and removes the stale .csv.gz latest."""
    destination = make(backend)
    await Publisher(destination.url, name="books", storage_options=destination.options).publish([{"a": 1}])
    plain = Publisher(destination.url, name="books", compression=False, storage_options=destination.options)
    result = await plain.publish([{"a": 2}])
    files = destination.files()
    assert "books_latest.csv" in files
    assert "books_latest.csv.gz" not in files
    assert destination.read("books_latest.csv") == b"a\r\n2\r\n"
    assert (await plain.verify()).ok
    assert result.compression is None
