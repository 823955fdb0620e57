"""The example pipeline (examples/book_pipeline), driven through its installed commands.

``book-collect`` and ``book-sync`` run as a user runs them: the console scripts
next to this interpreter, in a subprocess whose environment points the backends
at moto's S3 server or fake-gcs-server (the same servers as the library's tests),
or with local storage. Install the example first:
``pip install -e ./examples/book_pipeline``.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import Destination

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "book_pipeline"
SAMPLE_TSV = EXAMPLE / "data" / "sample_books.tsv"
SAMPLE_BOOKS = 50


def command(name: str) -> str:
    """The installed console script ``name``, next to this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {path.parent}: run pip install -e ./examples/book_pipeline")
    return str(path)


def clean_env() -> dict[str, str]:
    """This session's environment (dummy AWS credentials from conftest) with no storage endpoint set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSSPEC_", "AWS_ENDPOINT_URL"))}
    env.pop("STORAGE_EMULATOR_HOST", None)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
        NO_GCE_CHECK="true",
    )
    return env


@dataclass
class Target:
    """Where a command publishes: the ``--storage`` value, its destination and the environment to run with."""

    storage: str
    destination: Destination | None
    env: dict[str, str] = field(default_factory=clean_env)

    def args(self) -> list[str]:
        out = ["--storage", self.storage]
        if self.destination is not None:
            out += ["--destination", self.destination.url]
        return out


@pytest.fixture
def make_target(request: pytest.FixtureRequest, make_destination: Any) -> Any:
    """A function backend -> Target with a fresh bucket; the endpoint is given the way a user's shell would."""

    def make(backend: str) -> Target:
        env = clean_env()
        if backend == "local":
            return Target("local", None, env)
        dest: Destination = make_destination(backend)
        if backend == "s3":
            env["AWS_ENDPOINT_URL"] = request.getfixturevalue("s3_endpoint")  # read by botocore itself
        else:
            env.update(
                FSSPEC_GCS_ENDPOINT_URL=request.getfixturevalue("gcs_endpoint"),  # read by fsspec itself
                FSSPEC_GCS_TOKEN="anon",
                FSSPEC_GCS_PROJECT="test",
            )
        return Target(backend, dest, env)

    return make


def run(name: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command(name), *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def collect(target: Target, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    output = tmp_path / "out" / "books.csv"
    args = ["--db", str(tmp_path / "books.sqlite3"), "--input", str(SAMPLE_TSV), "--output", str(output)]
    return run("book-collect", [*args, *target.args(), *extra], target.env, tmp_path), output


def sync(target: Target, tmp_path: Path, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--db", str(db), "--staging", str(tmp_path / "staging")]
    return run("book-sync", [*args, *target.args(), *extra], target.env, tmp_path)


def loaded_db(tmp_path: Path) -> Path:
    """A tracker holding the sample books, loaded with the example's own API."""
    from book_pipeline.tracker import SQLiteBookTracker
    from book_pipeline.tsv import load_books_tsv

    db = tmp_path / "tracker" / "books.sqlite3"

    async def load() -> None:
        tracker = SQLiteBookTracker(db)
        await tracker.init_db()
        await load_books_tsv(tracker, SAMPLE_TSV)

    asyncio.run(load())
    return db


def one_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The single JSON object a command prints on stdout."""
    assert proc.stdout.count("\n") == 1, proc.stdout
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def published(dest: Destination, compress: bool) -> tuple[bytes, bytes, set[str]]:
    """(latest bytes, the single archive's bytes, every object name) of the ``books`` snapshot."""
    suffix = ".csv.gz" if compress else ".csv"
    files = dest.files()
    archives = [f for f in files if re.fullmatch(r"timestamped/books_\d{8}_\d{6}" + re.escape(suffix), f)]
    assert len(archives) == 1, files
    version = archives[0].removeprefix("timestamped/books_").removesuffix(suffix)
    assert files == {
        f"books_latest{suffix}",
        "books_latest.manifest.json",
        f"timestamped/books_{version}{suffix}",
        f"timestamped/books_{version}.manifest.json",
        "books.datapackage.json",
        f"timestamped/books_{version}.datapackage.json",
    }
    return dest.read(f"books_latest{suffix}"), dest.read(archives[0]), files


def plain(data: bytes, compress: bool) -> bytes:
    if compress:
        assert data[:2] == b"\x1f\x8b"
        return gzip.decompress(data)
    assert data[:2] != b"\x1f\x8b"
    return data


def read_tsv() -> list[dict[str, str]]:
    with SAMPLE_TSV.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, dialect="excel-tab"))


@pytest.mark.parametrize(("backend", "compress"), [("s3", True), ("s3", False), ("gcs", True)])
def test_collect_publishes_latest_and_timestamped_copies_equal_to_the_local_csv(
    make_target: Any, tmp_path: Path, backend: str, compress: bool
) -> None:
    """On cloud storage, collect uploads the latest and a timestamped version, both equal to its local CSV."""
    target = make_target(backend)
    proc, output = collect(target, tmp_path, *([] if compress else ["--no-compress"]))

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    summary = one_json(proc)
    suffix = ".csv.gz" if compress else ".csv"
    assert summary["books_loaded"] == summary["record_count"] == SAMPLE_BOOKS
    assert summary["upload"] == {"status": "uploaded", "latest_uri": f"{target.destination.url}/books_latest{suffix}"}
    latest, archive, _ = published(target.destination, compress)
    assert latest == archive
    assert plain(latest, compress) == output.read_bytes()


def test_collect_with_local_storage_uploads_nothing(
    make_target: Any, make_destination: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    """With local storage, collect writes the CSV and uploads nothing, even with a bucket configured."""
    target = make_target("local")
    bucket = make_destination("s3")
    target.env["AWS_ENDPOINT_URL"] = s3_endpoint
    proc, output = collect(target, tmp_path, "--destination", bucket.url)

    assert proc.returncode == 0, proc.stderr
    summary = one_json(proc)
    assert summary["upload"] == {"status": "skipped", "reason": "local storage"}
    assert summary["record_count"] == SAMPLE_BOOKS
    assert output.is_file()
    assert bucket.files() == set()


@pytest.mark.parametrize(("backend", "compress"), [("s3", True), ("gcs", False), ("local", True)])
def test_sync_result_names_the_csv_and_counts_the_records(
    make_target: Any, tmp_path: Path, backend: str, compress: bool
) -> None:
    """Sync prints a completed export_csv result naming the latest (or the local CSV) and the record count."""
    target = make_target(backend)
    db = loaded_db(tmp_path)
    proc = sync(target, tmp_path, db, *([] if compress else ["--no-compress"]))

    assert proc.returncode == 0, proc.stderr
    result = one_json(proc)
    staging_csv = tmp_path / "staging" / "meta" / "books_latest.csv"
    assert staging_csv.is_file()
    assert result["task_type"] == "export_csv"
    assert result["action"] == "completed"
    assert result["data"]["record_count"] == SAMPLE_BOOKS
    if target.destination is None:
        assert result["data"]["csv_file_path"] == str(staging_csv)
        return
    suffix = ".csv.gz" if compress else ".csv"
    assert result["data"]["csv_file_path"] == f"{target.destination.url}/books_latest{suffix}"
    latest, archive, _ = published(target.destination, compress)
    assert latest == archive
    assert plain(latest, compress) == staging_csv.read_bytes()


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_failed_upload_keeps_collect_at_exit_0_with_one_warning_and_the_csv(
    make_target: Any, tmp_path: Path, backend: str
) -> None:
    """An upload to a bucket that does not exist leaves collect exiting 0, warning once, its CSV intact."""
    target = make_target(backend)
    scheme = "s3" if backend == "s3" else "gs"
    missing = f"{scheme}://no-such-bucket-{uuid.uuid4().hex[:10]}/meta"
    target.destination = None
    proc, output = collect(target, tmp_path, "--destination", missing)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("book-collect: warning: CSV upload to")
    assert "does not exist" in lines[0]
    summary = one_json(proc)
    assert summary["upload"]["status"] == "failed"
    assert "does not exist" in summary["upload"]["error"]
    assert summary["record_count"] == SAMPLE_BOOKS
    with output.open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f))) == SAMPLE_BOOKS + 1


def test_sample_values_survive_the_whole_path(make_target: Any, tmp_path: Path) -> None:
    """Every field of the messy sample TSV reads back unchanged from the published CSV."""
    books = read_tsv()
    values = [v for book in books for v in book.values()]
    # the sample must stay messy, or this test proves little
    assert len(books) == SAMPLE_BOOKS
    for needle in ("\n", "\t", '"', ",", "é", "源氏物語"):
        assert any(needle in v for v in values), needle
    assert "" in values

    target = make_target("gcs")
    proc, _ = collect(target, tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = gzip.decompress(target.destination.read("books_latest.csv.gz")).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))

    from book_pipeline.records import BookRecord

    header = rows[0]
    assert header == BookRecord.csv_headers()
    assert len(header) == 54
    assert header[0] == "Barcode"
    exported = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert len(exported) == SAMPLE_BOOKS
    for book in books:
        got = exported[book["Barcode"]]
        for column in header:
            assert got[column] == book.get(column, ""), (book["Barcode"], column)


def test_storage_flags_reach_the_backend_and_no_secret_is_printed(make_target: Any, tmp_path: Path) -> None:
    """--endpoint-url and --storage-option configure the upload, and the secret appears in no output or log."""
    target = make_target("s3")
    endpoint = target.env.pop("AWS_ENDPOINT_URL")
    secret = f"secret-{uuid.uuid4().hex}"
    log = tmp_path / "collect.log"
    proc, _ = collect(
        target,
        tmp_path,
        "--endpoint-url", endpoint,
        "--storage-option", "key=testing",
        "--storage-option", f"secret={secret}",
        "--storage-option", "client_kwargs.region_name=us-east-1",
        "-v", "--log-file", str(log),
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert one_json(proc)["upload"]["status"] == "uploaded"
    assert "storage options given: client_kwargs.endpoint_url, client_kwargs.region_name, key, secret" in proc.stderr
    for text in (proc.stdout, proc.stderr, log.read_text(encoding="utf-8")):
        assert secret not in text


async def test_tracker_streams_the_same_books_as_its_list(tmp_path: Path) -> None:
    """The tracker's page-by-page stream yields the same books, in the same order, as get_all_books_csv_data()."""
    from book_pipeline.tracker import SQLiteBookTracker
    from book_pipeline.tsv import load_books_tsv

    tracker = SQLiteBookTracker(tmp_path / "books.sqlite3")
    await tracker.init_db()
    stats = await load_books_tsv(tracker, SAMPLE_TSV)
    streamed = [book async for book in tracker.iter_books(page_size=7)]

    assert stats.rows == SAMPLE_BOOKS
    assert streamed == await tracker.get_all_books_csv_data()
    assert [book.barcode for book in streamed] == sorted(book["Barcode"] for book in read_tsv())
