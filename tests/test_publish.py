"""The publish flow: nothing partial, nothing lost, whatever step fails; guards; the same data, the same bytes.

Faults come from tests/faults.py: the real local, memory, s3fs, gcsfs and adlfs
filesystems with a hook that fails a chosen operation, against the suite's servers.
"""

from __future__ import annotations

import errno
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from csvpublish import (
    AccessDeniedError,
    InputError,
    Publisher,
    RetryPolicy,
    SnapshotRejectedError,
    StorageError,
    TransientStorageError,
    export_csv_to_file,
)
from csvpublish.compression import BACKENDS as COMPRESSORS

from .conftest import backends
from .faults import Faults
from .helpers import (
    RESET,
    assert_intact,
    incomplete_uploads,
    latest_pair,
    latest_rows,
    noisy_rows,
    published_objects,
    rows,
    snapshot,
    store_checksum,
)

# (operation, where, after_bytes): each step of a publish, in order
STEPS: dict[str, tuple[str, str | None, int | None]] = {
    "listing": ("list", None, None),
    "reservation": ("lock", r"\d\.lock", None),
    "first bytes": ("upload", r"timestamped/", None),
    "mid-stream": ("upload", r"timestamped/", 2 * 2**20),
    "archive commit": ("commit", r"timestamped/", None),
    "archive manifest": ("manifest", r"timestamped/", None),
    "archive descriptor": ("descriptor", r"timestamped/", None),
    "latest lock": ("lock", r"latest\.lock", None),
    "copy to latest": ("copy", r"_latest\.csv", None),
    "latest manifest": ("manifest", r"_latest\.manifest", None),
}


@pytest.mark.parametrize("backend", backends("faults"))
async def test_a_failure_at_any_step_leaves_the_previous_latest_intact(make_destination: Any, backend: str) -> None:
    """A lasting failure at any step leaves the latest pair byte-identical, nothing partial; the next publish works."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults), name="books")
    await publisher.publish(rows(50, "old"))
    for step, (op, where, after_bytes) in STEPS.items():
        if destination.caps.single_request_small_uploads and (op == "commit" or after_bytes or step == "reservation"):
            # a small archive is one PutObject on S3 (its parts and commit are tested on the writer in
            # test_storage.py); the reservation is the same conditional PutObject as the latest lock
            continue
        if destination.caps.conditions_enforced and step == "latest lock":
            continue  # where the server enforces conditions the latest is swapped: no lease is taken
        before, latest = snapshot(destination), latest_pair(destination)
        faults.fail(op, destination.caps.denied, where=where, after_bytes=after_bytes, times=None)
        with pytest.raises(AccessDeniedError, match="access denied"):
            await publisher.publish(noisy_rows(15_000) if after_bytes else rows(400, "new"))
        assert faults.rules[0].fired, step
        await assert_intact(destination, publisher, before, latest, step)
        faults.rules.clear()
        result = await publisher.publish(rows(30, step))
        report = await publisher.verify(strict=True)
        assert report.version == result.version, step
    assert destination.files() == published_objects(publisher)


TRANSIENT_STEPS = ["listing", "reservation", "archive manifest", "latest lock", "copy to latest", "latest manifest"]
"""The steps a retry covers on every backend; where each part is its own request, the first bytes too."""


@pytest.mark.parametrize("backend", backends("faults"))
async def test_transient_errors_at_each_step_are_retried(make_destination: Any, backend: str) -> None:
    """A dropped connection, twice at every step of a publish, is retried and the publish succeeds."""
    destination = make_destination(backend)
    faults = Faults()
    steps = [*TRANSIENT_STEPS, "first bytes"] if destination.caps.parts_retried else TRANSIENT_STEPS
    for step in steps:
        op, where, _ = STEPS[step]
        faults.fail(op, RESET, where=where, times=2)
    faults.fail("delete", RESET, where=r"\.(lock|json|gz)$", times=2)  # objects, not local temp files
    publisher = Publisher(destination.faulty(faults), name="books")
    result = await publisher.publish(rows(100))
    assert all(rule.fired == 2 for rule in faults.rules), [(r.op, r.where, r.fired) for r in faults.rules]
    report = await publisher.verify(strict=True)
    assert report.version == result.version
    assert set(destination.files()) == published_objects(publisher)


@pytest.mark.parametrize("backend", backends("request_faults"))
async def test_a_store_throttling_the_first_requests_still_publishes(make_destination: Any, backend: str) -> None:
    """A store throttling the first requests of every kind (S3 SlowDown, GCS 429, Azure ServerBusy) still publishes."""
    destination = make_destination(backend)
    throttled = destination.caps.throttled
    assert throttled is not None
    faults = Faults().fail("request", throttled, times=3)
    # an upload's requests are retried by csvpublish only where each part is its own request (gcsfs retries
    # a throttled chunk itself, below the fault hook)
    uploads = ("upload",) if destination.caps.parts_retried else ()
    for op in ("list", "lock", *uploads, "manifest", "copy", "delete"):
        faults.fail(op, throttled, times=1)
    publisher = Publisher(destination.faulty(faults), name="books")
    result = await publisher.publish(rows(100))
    assert all(rule.fired for rule in faults.rules)
    assert (await publisher.verify(strict=True)).version == result.version


@pytest.mark.parametrize("backend", backends("faults"))
async def test_retries_are_bounded(make_destination: Any, backend: str) -> None:
    """A step that keeps failing with a retryable error gives up after the policy's attempts (TransientStorageError)."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults, RetryPolicy(attempts=3, initial=0.01)), name="books")
    await publisher.publish(rows(10, "old"))
    before, latest = snapshot(destination), latest_pair(destination)
    faults.fail("manifest", RESET, where=r"timestamped/", times=None)
    with pytest.raises(TransientStorageError, match="kept failing with a temporary error"):
        await publisher.publish(rows(10, "new"))
    assert faults.rules[0].fired == 3
    await assert_intact(destination, publisher, before, latest)


@pytest.mark.parametrize("backend", backends("faults"))
async def test_a_permanent_error_fails_fast_without_retrying(make_destination: Any, backend: str) -> None:
    """Access denied is raised as AccessDeniedError on the first attempt, with no backoff."""
    destination = make_destination(backend)
    faults = Faults().fail("lock", destination.caps.denied, times=None)
    publisher = Publisher(destination.faulty(faults, RetryPolicy(attempts=5, initial=5.0)), name="books")
    await publisher.storage.check()  # the client is built and connected before the clock starts
    started = time.monotonic()
    with pytest.raises(AccessDeniedError, match="access denied; check the credentials"):
        await publisher.publish(rows(10))
    assert time.monotonic() - started < 2.0  # one backoff step alone would take at least 2.5 s
    assert faults.rules[0].fired == 1
    assert destination.files() == set()


@pytest.mark.parametrize("backend", backends())
async def test_skip_unchanged_writes_nothing_for_the_same_bytes(make_destination: Any, backend: str) -> None:
    """With skip_unchanged=True, publishing the same data again writes nothing and says skipped=True."""
    destination = make_destination(backend)
    publisher = destination.publisher(skip_unchanged=True)
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


@pytest.mark.parametrize("backend", backends())
async def test_an_empty_file_is_refused(make_destination: Any, backend: str, tmp_path: Path) -> None:
    """A 0-byte CSV is refused with SnapshotRejectedError and the current latest stays."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(3))
    before = snapshot(destination)
    empty = tmp_path / "books.csv"
    empty.write_bytes(b"")
    with pytest.raises(SnapshotRejectedError, match="empty"):
        await publisher.publish_file(empty)
    assert snapshot(destination) == before


@pytest.mark.parametrize("backend", backends())
async def test_min_records_refuses_a_short_snapshot(make_destination: Any, backend: str) -> None:
    """A snapshot with fewer rows than min_records is refused after streaming; nothing of it remains."""
    destination = make_destination(backend)
    publisher = destination.publisher(min_records=10)
    await publisher.publish(rows(10))
    before = snapshot(destination)
    with pytest.raises(SnapshotRejectedError, match="9 records, fewer than min_records=10"):
        await publisher.publish(rows(9))
    with pytest.raises(SnapshotRejectedError, match="0 records"):
        await publisher.publish([], headers=["Barcode", "Title", "Note"])  # the columns of rows()
    assert snapshot(destination) == before
    assert incomplete_uploads(destination) == []


@pytest.mark.parametrize("backend", backends())
async def test_a_failed_local_csv_commit_publishes_nothing(
    make_destination: Any, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local CSV is committed beside the archive; if its fsync fails (a full disk), no version appears.

    The fault wraps the real ``os.fsync``: a full disk cannot be produced on demand.
    """
    import csvpublish.storage.local as storage_module

    destination = make_destination(backend)
    publisher = destination.publisher()
    staging = tmp_path / "staging"  # apart from a local destination, which lives under tmp_path too
    local = staging / "books.csv"
    await publisher.publish(rows(3), local_path=local)
    before, local_before = snapshot(destination), local.read_bytes()
    real_fsync = storage_module.os.fsync

    def full_disk(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(staging / ".books.csv.")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(storage_module.os, "fsync", full_disk)
    with pytest.raises(StorageError, match="local CSV") as caught:
        await publisher.publish(rows(5), local_path=local)
    assert "No space left" in str(caught.value) or "No space left" in str(caught.value.__cause__)
    assert snapshot(destination) == before  # no archive, no manifest, the same latest
    assert incomplete_uploads(destination) == []
    assert local.read_bytes() == local_before
    assert sorted(p.name for p in staging.iterdir()) == ["books.csv"]  # no temp file left


async def test_a_local_path_that_is_a_folder_is_refused(make_destination: Any, tmp_path: Path) -> None:
    """``local_path`` naming a folder is an InputError before anything is written, not a file moved into it."""
    destination = make_destination("memory")
    publisher = destination.publisher()
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


@pytest.mark.parametrize("backend", backends("object_store"))
async def test_every_object_stays_under_the_destination_prefix(make_destination: Any, backend: str) -> None:
    """Publishing, restoring, pruning and cleanup write nothing outside the destination prefix."""
    destination = make_destination(backend)
    publisher = destination.publisher(keep=1)
    for i in range(2):
        await publisher.publish(rows(3 + i))
    await publisher.restore((await publisher.versions())[0])
    await publisher.cleanup()
    fs = destination.fs()
    fs.invalidate_cache()
    keys = [key.split("/", 1)[1] for key in fs.find(destination.bucket())]
    assert keys
    assert all(key.startswith("meta/") for key in keys), keys


# --- formula escaping and deterministic output ------------------------------------------------


async def test_escape_formulas_neutralises_spreadsheet_formulas(make_destination: Any) -> None:
    """escape_formulas=True quotes cells starting with = + - @ tab or CR; without it they are kept as they are."""
    destination = make_destination("memory")
    cells = ["=1+2", "+A1", "-3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]
    data = [{"Barcode": str(i), "Title": cell} for i, cell in enumerate(cells)]
    await Publisher(destination.url, name="books").publish(data)
    assert [row[1] for row in latest_rows(destination)[1:]] == cells
    await Publisher(destination.url, name="books", escape_formulas=True).publish(data)
    escaped = [row[1] for row in latest_rows(destination)[1:]]
    assert escaped == ["'=1+2", "'+A1", "'-3", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b"]


@pytest.mark.parametrize("backend", backends("object_store"))
async def test_the_same_data_always_gives_the_same_stored_bytes(make_destination: Any, backend: str) -> None:
    """The same rows published twice store identical bytes, hashes and store checksums (ETag, md5Hash, Content-MD5).

    The gzip header has no time or name.
    """
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(5000))
    second = await publisher.publish(rows(5000))
    assert first.version != second.version
    assert first.sha256 == second.sha256
    stored = destination.read(f"timestamped/books_{first.version}.csv.gz")
    assert stored[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no FNAME flag, mtime 0, OS unknown
    st = destination.reader()
    infos = [st.fs.info(st.path(f"timestamped/books_{r.version}.csv.gz")) for r in (first, second)]
    checksums = {store_checksum(info) for info in infos}  # what the store itself reports
    assert len(checksums) == 1


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
async def test_a_csv_file_and_its_rows_store_the_same_bytes(tmp_path: Path, compressor: str) -> None:
    """The same CSV gives the same stored bytes whether published from rows or from a file."""
    rng = random.Random(5)
    data = [
        {"Barcode": str(i), "Title": "word " * rng.randint(0, 40), "Note": str(rng.random())} for i in range(20_000)
    ]
    where = f"memory://same-{compressor}-{tmp_path.name}"
    from_rows = await Publisher(f"{where}/a", name="books", compression_backend=compressor).publish(data)
    csv_path = tmp_path / "books.csv"
    await export_csv_to_file(data, csv_path)
    from_file = await Publisher(f"{where}/b", name="books", compression_backend=compressor).publish_file(csv_path)
    assert from_rows.csv_sha256 == from_file.csv_sha256
    assert from_rows.sha256 == from_file.sha256
