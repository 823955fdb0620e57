"""A partitioned publish (engine only, partitions written here): the same snapshot as one process, safely."""

from __future__ import annotations

import base64
import gzip
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from csvpublish import InputError, Publisher
from csvpublish.manifest import Manifest

from .conftest import Destination, backends

HEADERS = ["id", "title", "blob"]
MESSY = ["a,b", 'say "hi"', "line\r\nbreak", "naïve — 書", "", None, "lf\nonly", " padded "]


def rows(seed: int, count: int, blob: int = 0) -> list[dict[str, Any]]:
    """Messy records; ``blob`` bytes of incompressible text each, so a partition can outgrow an S3 part."""
    rnd = random.Random(seed)
    return [
        {
            "id": seed * 100_000 + i,
            "title": MESSY[(seed + i) % len(MESSY)],
            "blob": base64.b64encode(rnd.randbytes(blob)).decode() if blob else "",
        }
        for i in range(count)
    ]


def big(seed: int, mib: float) -> list[dict[str, Any]]:
    """About ``mib`` MiB of gzip: base64 of random bytes compresses to ~76%."""
    return rows(seed, int(mib * 2**20 / 0.76 / 10_000) + 1, blob=7_500)


def publish_partitioned(publisher: Publisher, partitions: list[list[dict[str, Any]]]) -> Any:
    session = publisher.begin_partitioned_sync(len(partitions), headers=HEADERS)
    receipts = [session.writer.write_sync(i, part) for i, part in enumerate(partitions)]
    return session, session.commit_sync(receipts)


def visible(destination: Destination) -> set[str]:
    """The destination's objects (SeaweedFS lists its folder's own marker as '')."""
    return destination.files() - {""}


def csv_of(destination: Destination, rel: str) -> bytes:
    return gzip.decompress(destination.read(rel))


@pytest.fixture
def single(tmp_path: Path) -> Any:
    """The single-process publish of the same rows (to a local folder): its CSV."""

    def publish(partitions: list[list[dict[str, Any]]]) -> bytes:
        folder = tmp_path / "single"
        Publisher(folder, name="books").publish_sync([r for p in partitions for r in p], headers=HEADERS)
        return gzip.decompress((folder / "books_latest.csv.gz").read_bytes())

    return publish


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_large_and_small_partitions_assemble_into_the_single_process_csv(
    backend: str, make_destination: Any, single: Any
) -> None:
    """Big partitions (heads copied), small runs before and after them (merged), an empty one: the same CSV."""
    destination = make_destination(backend)
    partitions = [big(0, 11), rows(1, 5), [], rows(3, 40), big(4, 6), rows(5, 3)]
    publisher = destination.publisher()
    _, result = publish_partitioned(publisher, partitions)
    assert csv_of(destination, "books_latest.csv.gz") == single(partitions)
    assert publisher.verify_sync().ok
    manifest = Manifest.from_json(destination.read(f"timestamped/books_{result.version}.manifest.json"))
    assert [p["partition"] for p in manifest.parts or []] == list(range(6))
    assert sum(p["size"] for p in manifest.parts or []) == manifest.size == result.size
    assert manifest.record_count == sum(len(p) for p in partitions)
    assert visible(destination) == {
        "books_latest.csv.gz", "books_latest.manifest.json",
        f"timestamped/books_{result.version}.csv.gz", f"timestamped/books_{result.version}.manifest.json",
        "books.datapackage.json", f"timestamped/books_{result.version}.datapackage.json",
    }  # fmt: skip
    if destination.caps.unfinished is not None:
        assert destination.caps.unfinished(destination) == []


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_a_partition_written_twice_is_harmless(backend: str, make_destination: Any, single: Any) -> None:
    """A retried partition uploads the same parts under the same numbers: the snapshot is unchanged."""
    destination = make_destination(backend)
    partitions = [rows(0, 10), big(1, 6), rows(2, 10)]
    publisher = destination.publisher()
    session = publisher.begin_partitioned_sync(3, headers=HEADERS)
    receipts = [session.writer.write_sync(i, part) for i, part in enumerate(partitions)]
    receipts[1] = session.writer.write_sync(1, partitions[1])
    session.commit_sync(receipts)
    assert csv_of(destination, "books_latest.csv.gz") == single(partitions)
    assert publisher.verify_sync().ok


def test_memory_cannot_take_parts_from_other_processes() -> None:
    """memory:// lives in one process: a partitioned publish is refused before anything is written."""
    with pytest.raises(InputError, match="cannot assemble"):
        Publisher("memory://partitioned-refused", name="books").begin_partitioned_sync(2)


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_missing_receipts_abort_and_leave_nothing(backend: str, make_destination: Any) -> None:
    """A commit without every partition's receipt is refused, and the upload is aborted."""
    destination = make_destination(backend)
    session = destination.publisher().begin_partitioned_sync(2, headers=HEADERS)
    receipt = session.writer.write_sync(0, rows(0, 3))
    with pytest.raises(InputError, match="one receipt for each"):
        session.commit_sync([receipt])
    assert visible(destination) == set()
    if destination.caps.unfinished is not None:
        assert destination.caps.unfinished(destination) == []


KILLED = """
import json, os, sys
sys.path.insert(0, {src!r})
from csvpublish import Publisher
from csvpublish.storage.parts import Parts
from tests.test_partitioned import HEADERS, big, rows
url, options, point = json.loads(sys.argv[1])
publisher = Publisher(url, name="books", storage_options=options)
session = publisher.begin_partitioned_sync(3, headers=HEADERS)
receipts = [session.writer.write_sync(i, part) for i, part in enumerate([rows(0, 5), big(1, 6), rows(2, 5)])]
if point == "after-assemble":
    session.flow.target.storage  # the archive is made, its manifest is not
    import asyncio
    asyncio.run(Parts(publisher.storage).assemble(session.upload, [r.pieces for r in receipts]))
os._exit(9)
"""


@pytest.mark.parametrize("point", ["before-commit", "after-assemble"])
@pytest.mark.parametrize("backend", backends("shared_by_processes", "outlives_process"))
def test_a_killed_coordinator_leaves_the_latest_and_cleanup_leaves_nothing(
    backend: str, point: str, make_destination: Any
) -> None:
    """A coordinator killed after uploading parts (or assembling) keeps the latest; cleanup() removes it all."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = publisher.publish_sync(rows(9, 20), headers=HEADERS)
    before = visible(destination)
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = textwrap.dedent(KILLED.format(src=src))
    args = json.dumps([destination.url, destination.options, point])
    done = subprocess.run([sys.executable, "-c", code, args], cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == 9
    report = publisher.verify_sync()
    assert report.ok and report.version == first.version
    publisher.cleanup_sync()
    assert visible(destination) == before
    if destination.caps.unfinished is not None:
        assert destination.caps.unfinished(destination) == []


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_more_parts_than_one_request_joins(backend: str, make_destination: Any, single: Any) -> None:
    """70 partitions: more than one GCS compose takes (32), so it composes a tree; S3 merges them all."""
    destination = make_destination(backend)
    partitions = [rows(i, 3) for i in range(70)]
    publisher = destination.publisher()
    publish_partitioned(publisher, partitions)
    assert csv_of(destination, "books_latest.csv.gz") == single(partitions)
    assert publisher.verify_sync().ok
