"""Crash test: a publish killed by SIGKILL anywhere leaves a verifiable latest and nothing a publish cannot clean.

A child process publishes an ~11 MB CSV that barely compresses (so on S3 the
archive is a two-part multipart upload, on Azure two staged blocks, on GCS a
resumable upload of two chunks). It is killed either by itself, with
SIGKILL from the fault hook of tests/faults.py at a chosen step, or by this
process at a chosen fraction of a full publish's duration. Children come from a
forkserver that has already imported csvpublish and s3fs, so a run costs the
publish, not the imports.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import random
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from csvpublish import Publisher, RetryPolicy
from csvpublish.storage import PART_SIZE

from .conftest import Destination, backends, list_files
from .faults import Faults
from .helpers import incomplete_uploads

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and the forkserver are POSIX only")

NAME = "big"

# (label, op, where, after_bytes, the latest afterwards: "old" or "new")
KILL_POINTS: list[tuple[str, str, str | None, int | None, str]] = [
    ("first listing", "list", None, None, "old"),
    ("first data bytes", "upload", "timestamped/", 1, "old"),
    ("second part", "upload", "timestamped/", PART_SIZE + 1, "old"),
    ("archive commit", "commit", "timestamped/", None, "old"),
    ("archive manifest", "manifest", "timestamped/", None, "old"),
    ("latest lock", "lock", r"latest\.lock", None, "old"),
    ("copy to latest", "copy", r"_latest\.csv", None, "old"),
    ("latest manifest", "manifest", r"_latest\.manifest", None, "new"),
    ("lock release", "delete", r"latest\.lock$", None, "new"),
    ("reservation release", "delete", r"\d\.lock$", None, "either"),  # released alongside the copy
]
TIMED_KILLS = [0.3, 0.7]
# kills that leave an upload open: a multipart upload on S3, a temp file in a local folder
MID_UPLOAD = {"first data bytes", "second part", "archive commit"}


def _sigkill() -> BaseException:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def _child(
    backend: str, url: str, options: dict[str, Any], csv_path: str, kill: tuple[Any, ...] | None, conn: Connection
) -> None:
    """Publish ``csv_path``; with ``kill`` = (op, where, after_bytes), SIGKILL this process at that step."""
    faults = Faults()
    if kill is not None:
        op, where, after_bytes = kill
        faults.fail(op, _sigkill, where=where, after_bytes=after_bytes)
    publisher = Publisher(Destination(backend, url, options).faulty(faults, RetryPolicy()), name=NAME)
    conn.send("go")
    publisher.publish_file_sync(csv_path)
    conn.send("done")


@pytest.fixture(scope="module")
def spawner() -> multiprocessing.context.ForkServerContext:
    """A forkserver with csvpublish, s3fs, gcsfs, adlfs and this module imported: children start in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["csvpublish", "s3fs", "gcsfs", "adlfs", "tests.test_crash"])
    return context


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~11 MB of base64 noise: gzip keeps ~78% of it, so the stored archive needs two 8 MiB parts."""
    path = tmp_path_factory.mktemp("crash") / "big.csv"
    noise = base64.b64encode(random.Random(7).randbytes(8 * 2**20))
    with open(path, "wb") as f:
        f.write(b"id,payload\r\n")
        for i, start in enumerate(range(0, len(noise), 100)):
            f.write(b"%d,%s\r\n" % (i, noise[start : start + 100]))
    return path


class Run:
    """One destination, a plain publisher to check it, and the child publishes against it."""

    def __init__(self, destination: Destination, spawner: Any, csv_path: Path) -> None:
        self.destination = destination
        self.spawner, self.csv_path = spawner, csv_path
        self.storage = destination.reader()
        self.publisher = Publisher(self.storage, name=NAME)

    def child(self, kill: tuple[Any, ...] | None = None, after: float | None = None) -> tuple[int | None, float]:
        """Run one child publish; kill it at a step (``kill``) or ``after`` seconds; return its exit code and time."""
        parent, child_end = multiprocessing.Pipe()
        process = self.spawner.Process(target=_child, args=(*self._where(), str(self.csv_path), kill, child_end))
        process.start()
        assert parent.poll(30), "the child never started publishing"
        assert parent.recv() == "go"
        started = time.monotonic()
        if after is not None:
            process.join(after)
            if process.is_alive():
                process.kill()
        process.join(30)
        return process.exitcode, time.monotonic() - started

    def _where(self) -> tuple[str, str, dict[str, Any]]:
        """What the child needs to reach the destination: its backend, URL and options (picklable)."""
        return self.destination.backend, self.destination.url, self.destination.options

    def latest_sha(self) -> str:
        return hashlib.sha256(self.storage.fs.cat_file(self.storage.path(f"{NAME}_latest.csv.gz"))).hexdigest()

    def objects(self) -> set[str]:
        return list_files(self.storage)

    def archived(self, objects: set[str]) -> set[str]:
        """The versions that have an archive among ``objects``."""
        return {rel[len(f"timestamped/{NAME}_") : -len(".csv.gz")] for rel in objects if rel.endswith(".csv.gz")} - {""}

    def stray(self) -> set[str]:
        """Objects other than the latest with its manifest and descriptor, and each archive with its manifest.

        An archive's descriptor may be there or not: a kill can fall between the manifest and it.
        """
        objects = self.objects()
        expected = {f"{NAME}_latest.csv.gz", f"{NAME}_latest.manifest.json", f"{NAME}.datapackage.json"}
        for version in self.archived(objects):
            expected |= {f"timestamped/{NAME}_{version}.csv.gz", f"timestamped/{NAME}_{version}.manifest.json"}
        described = {f"timestamped/{NAME}_{version}.datapackage.json" for version in self.archived(objects)}
        return (objects - described) ^ expected

    def left_open(self) -> list[Any]:
        """What a kill mid-upload leaves: an unfinished upload (multipart, staged blocks), or a temp file."""
        if self.destination.caps.unfinished is not None:
            return incomplete_uploads(self.destination)
        return [o for o in self.objects() if o.endswith(".tmp")]


@pytest.mark.parametrize("backend", backends("faults", "outlives_process"))
def test_a_killed_publish_leaves_a_verifiable_latest_and_no_leftovers(
    backend: str, spawner: Any, big_csv: Path, make_destination: Any
) -> None:
    """After SIGKILL at 12 points of a publish verify() passes; the next publish and cleanup() leave only versions."""
    destination = make_destination(backend)
    run = Run(destination, spawner, big_csv)

    code, duration = run.child()  # an uninterrupted publish: the previous good latest, and the time a publish takes
    assert code == 0
    assert run.publisher.verify_sync(strict=True).ok
    assert run.storage.fs.size(run.storage.path(f"{NAME}_latest.csv.gz")) > PART_SIZE  # an upload in parts

    points = [(label, (op, where, at), None, expected) for label, op, where, at, expected in KILL_POINTS]
    points += [(f"{fraction:.0%} of a publish", None, duration * fraction, "either") for fraction in TIMED_KILLS]
    before_version = run.publisher.verify_sync(strict=True).version
    for label, kill, after, expected in points:
        before_sha = run.latest_sha()
        before_versions = run.archived(run.objects())

        if label == "lock release" and destination.caps.conditions_enforced:
            expected = "either"  # noqa: PLW2901 -- the lease a fresh process takes before its probe goes back beside the swap
        code, _ = run.child(kill, after)
        assert code == -signal.SIGKILL or (kill is None and code == 0), (label, code)
        if expected == "either" and destination.caps.object_store:
            time.sleep(1.0)  # a request the killed process had already sent (a copy) may still land on the server

        if label in MID_UPLOAD and destination.caps.leftovers_shown:
            assert run.left_open(), f"{label}: the kill should have left an upload open"
        if label == "archive manifest":
            # killed while the archive and its manifest are committed together: a half is never a version
            objects = run.objects()
            bare = {v for v in run.archived(objects) if f"timestamped/{NAME}_{v}.manifest.json" not in objects}
            assert not bare & {info.version for info in run.publisher.versions_sync()}

        report = run.publisher.verify_sync()
        assert report.ok, (label, report.problems)
        if expected == "old" or (expected == "either" and report.version == before_version):
            assert report.version == before_version, label
            assert run.latest_sha() == before_sha, label
        else:
            assert report.version not in before_versions | {before_version}, label
            assert run.latest_sha() == report.sha256, label

        result = run.publisher.publish_sync([{"id": label, "payload": "after the crash"}])
        run.publisher.cleanup_sync()
        assert run.publisher.verify_sync(strict=True).version == result.version, label
        assert run.stray() == set(), label
        assert incomplete_uploads(destination) == [], label
        before_version = result.version
