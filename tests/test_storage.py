"""Storage: the same operations behave the same on memory, a local folder and each storage server."""

from __future__ import annotations

import asyncio
import os
import types
from pathlib import Path
from typing import Any

import fsspec
import pytest

import csvpublish
from csvpublish import AccessDeniedError, IntegrityError, Storage, StorageNotFoundError

from .conftest import BACKENDS, Destination, backends
from .faults import Faults
from .helpers import RESET, incomplete_uploads


async def test_write_read_exists_list_delete(destination: Destination) -> None:
    """Basic object operations round-trip on every backend."""
    st = destination.storage()
    await st.check()
    assert not await st.exists("a/one.txt")
    await st.write_bytes("a/one.txt", b"1")
    await st.write_bytes("a/two.txt", b"22")
    assert await st.exists("a/one.txt")
    assert await st.read_bytes("a/two.txt") == b"22"
    listed = {e.basename: e.size for e in await st.list("a")}
    assert listed == {"one.txt": 1, "two.txt": 2}
    assert await st.list("absent") == []
    await st.delete("a/one.txt")
    await st.delete("a/one.txt")  # deleting twice is fine
    assert [e.basename for e in await st.list("a")] == ["two.txt"]


async def test_a_reader_gives_the_whole_object_front_to_back(destination: Destination) -> None:
    """open_reader returns every byte in order, in reads of any size; on S3 in one streamed GET."""
    st = destination.storage()
    data = os.urandom(7 * 2**20 + 123)  # more than one read block, not a multiple of one
    await st.write_bytes("big.bin", data)
    requests: list[str] = []
    if destination.caps.reads_logged is not None:
        destination.caps.reads_logged(st, requests)

    def read() -> list[bytes]:
        with st.open_reader("big.bin") as handle:
            return [handle.read(size) for size in (1, 2**20 - 1, 5 * 2**20 + 17, 2**20, 2**20, 2**20)]

    pieces = await asyncio.to_thread(read)
    assert b"".join(pieces) == data
    assert [len(p) for p in pieces[:3]] == [1, 2**20 - 1, 5 * 2**20 + 17] and pieces[-1] == b""
    assert requests == ([] if destination.caps.reads_logged is None else ["GetObject"])
    with pytest.raises((FileNotFoundError, StorageNotFoundError)):
        await asyncio.to_thread(st.blocking, "absent", lambda: st.open_reader("absent.bin").read(1))


class _CutBody:
    """A real response body that breaks off once, after ``after`` bytes (a dropped connection)."""

    def __init__(self, body: Any, after: int) -> None:
        self.body, self.left = body, after

    async def read(self, size: int) -> bytes:
        if self.left <= 0:
            import aiohttp

            raise aiohttp.ClientPayloadError("connection dropped mid-body")
        chunk: bytes = await self.body.read(min(size, self.left))
        self.left -= len(chunk)
        return chunk

    def close(self) -> None:
        self.body.close()


@pytest.mark.parametrize("replaced", [False, True], ids=["same-object", "replaced-meanwhile"])
@pytest.mark.parametrize("backend", [b for b in backends() if BACKENDS[b.values[0]].reads_logged is not None])
async def test_a_streamed_read_cut_mid_body_resumes_or_fails(
    make_destination: Any, backend: str, replaced: bool
) -> None:
    """A read retried after a dropped connection continues with a ranged GET of the same version, or fails."""
    destination = make_destination(backend)
    st = destination.storage()
    data = os.urandom(3 * 2**20 + 5)
    await st.write_bytes("cut.bin", data)
    requests: list[str] = []
    destination.caps.reads_logged(st, requests)  # type: ignore[misc]

    def read() -> bytes:
        with st.open_reader("cut.bin") as handle:
            raw: Any = handle.raw  # type: ignore[attr-defined]
            raw._body = _CutBody(raw._body, 2**20 + 3)
            if replaced:
                st.fs.pipe_file(st.path("cut.bin"), b"other bytes")
            return b"".join(iter(lambda: st.blocking("cut.bin", lambda: handle.read(2**20)), b""))

    if replaced:
        with pytest.raises(IntegrityError, match="replaced while it was read"):
            await asyncio.to_thread(read)
    else:
        assert await asyncio.to_thread(read) == data
        assert requests == ["GetObject", "GetObject"]


async def test_exclusive_write_refuses_an_existing_object(destination: Destination) -> None:
    """An exclusive write is a conditional create: the second one fails and the first's bytes stay."""
    st = destination.storage()
    await st.write_bytes("lock", b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        await st.write_bytes("lock", b"second", exclusive=True)
    assert await st.read_bytes("lock") == b"first"


async def test_upload_file_and_server_side_copy(destination: Destination, tmp_path: Path) -> None:
    """A local file uploads whole; a copy replaces the target with identical bytes."""
    src = tmp_path / "data.bin"
    src.write_bytes(b"x" * 300_000)
    st = destination.storage()
    await st.upload_file(src, "up/data.bin", content_type="application/octet-stream")
    await st.write_bytes("up/target.bin", b"old")
    await st.copy("up/data.bin", "up/target.bin")
    assert await st.read_bytes("up/target.bin") == src.read_bytes()
    assert not [e for e in await st.list("up") if e.basename.endswith(".tmp")]


async def test_discarded_writer_leaves_nothing(destination: Destination) -> None:
    """A writer that is discarded, even after many parts, leaves no object and no temp file."""
    st = destination.storage()

    def write_and_discard() -> None:
        writer = st.open_writer("big.bin", part_size=5 * 2**20)
        for _ in range(3):
            writer.write(b"y" * 4 * 2**20)
        writer.discard()

    await asyncio.to_thread(write_and_discard)
    assert destination.files() == set()


def test_storage_from_a_filesystem_and_root() -> None:
    """Storage(fs, root) uses the given filesystem, so tests can pass their own."""
    fs = fsspec.filesystem("memory")
    st = Storage(fs, "/from-fs/prefix")
    asyncio.run(st.write_bytes("x.txt", b"hi"))
    assert fs.cat_file("/from-fs/prefix/x.txt") == b"hi"
    assert st.uri("x.txt") == "memory://from-fs/prefix/x.txt"


def test_local_uri_is_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative local destination shows as an absolute path."""
    monkeypatch.chdir(tmp_path)
    assert Storage("out").uri("books_latest.csv.gz") == str(tmp_path / "out" / "books_latest.csv.gz")


def test_exported_members_are_sorted_and_complete() -> None:
    """__all__ is sorted and lists every public name the package root defines."""
    assert csvpublish.__all__ == sorted(csvpublish.__all__)
    names = {n for n, v in vars(csvpublish).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    public = names - {"annotations", "Any"}
    assert public <= set(csvpublish.__all__), public - set(csvpublish.__all__)
    for name in csvpublish.__all__:
        assert getattr(csvpublish, name) is not None


async def test_blocking_twin_works_inside_a_running_loop(tmp_path: Path) -> None:
    """publish_sync called from a coroutine still runs (on a helper thread) instead of failing."""
    publisher = csvpublish.Publisher(tmp_path / "out", name="books")
    result = publisher.publish_sync([{"a": 1}])
    assert result.record_count == 1
    assert (tmp_path / "out" / "books_latest.csv.gz").exists()


def test_s3_parts_grow_so_a_huge_upload_fits_in_10000_parts() -> None:
    """Parts stay at PART_SIZE up to ~5 GB (memory: one part), then grow: 10,000 parts hold > 250 GiB."""
    from csvpublish.storage import PART_SIZE
    from csvpublish.storage.s3 import part_target

    assert {part_target(PART_SIZE, n) for n in range(1000)} == {PART_SIZE}
    assert PART_SIZE >= 5 * 2**20  # S3's smallest part but for the last
    assert sum(part_target(PART_SIZE, n) for n in range(10_000)) > 250 * 2**30


# --- writers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["transient", "permanent"])
@pytest.mark.parametrize("backend", backends("faults", "parts_retried"))
async def test_a_multipart_commit_retries_or_aborts(make_destination: Any, backend: str, failure: str) -> None:
    """The commit of parts (S3 CompleteMultipartUpload, Azure Put Block List) is retried on a dropped connection;
    a permanent failure aborts the upload, and no object appears."""
    destination = make_destination(backend)
    faults = Faults()
    storage = destination.faulty(faults)
    data = bytes(range(256)) * (6 * 2**20 // 256)  # two parts of 5 MiB and 1 MiB
    if failure == "transient":
        faults.fail("commit", RESET, times=2)
    else:
        faults.fail("commit", destination.caps.denied, times=None)
    writer = await asyncio.to_thread(storage.open_writer, "big.bin", exclusive=True, part_size=5 * 2**20)
    await asyncio.to_thread(writer.write, data)
    assert [op for op, _ in faults.log].count("upload") == 1  # the first part went up while writing
    if failure == "transient":
        await asyncio.to_thread(storage.blocking, "commit", writer.commit, retry=False)
        assert destination.read("big.bin") == data
    else:
        with pytest.raises(AccessDeniedError):
            await asyncio.to_thread(storage.blocking, "commit", writer.commit, retry=False)
        assert "big.bin" not in destination.files()
    assert incomplete_uploads(destination) == []


@pytest.mark.parametrize("backend", backends("exclusive_uploads"))
async def test_an_archive_upload_never_replaces_an_object(make_destination: Any, backend: str) -> None:
    """An exclusive upload (If-None-Match on S3, a hard link locally) loses to an existing object and leaves it."""
    destination = make_destination(backend)
    storage = destination.reader()
    sizes = (10, 6 * 2**20) if destination.caps.object_store else (10,)  # one request, then a multipart upload
    for size in sizes:
        name = f"a{size}.bin"
        first = await asyncio.to_thread(storage.open_writer, name, exclusive=True, part_size=5 * 2**20)
        await asyncio.to_thread(first.write, b"1" * size)
        second = await asyncio.to_thread(storage.open_writer, name, exclusive=True, part_size=5 * 2**20)
        await asyncio.to_thread(second.write, b"2" * size)
        await asyncio.to_thread(first.commit)
        with pytest.raises(FileExistsError):
            await asyncio.to_thread(second.commit)
        assert destination.read(name) == b"1" * size
    assert incomplete_uploads(destination) == []


def test_the_library_says_what_each_backend_shows(destination: Destination) -> None:
    """A backend's Capabilities agree with what its tests show: object store, user metadata, unfinished uploads."""
    library = destination.storage().capabilities
    shown = destination.caps
    assert (library.object_store, library.user_metadata) == (shown.object_store, shown.user_metadata)
    assert library.multipart_uploads == (shown.unfinished is not None)
    assert library.conditional_create  # every backend of the suite enforces a conditional create of small objects
