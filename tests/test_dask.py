"""publish_dask on a real LocalCluster (2 worker processes): the single-process snapshot, failures handled."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

import cloudpickle
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

from csvpublish import Publisher
from csvpublish.dask import publish_dask
from csvpublish.manifest import Manifest

from .conftest import Destination, backends
from .test_partitioned import HEADERS, big, rows, visible

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests


def local_cluster() -> Iterator[Client]:
    # dashboard on a free port: None still binds 8787, which another run on the machine may hold
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as connected,
    ):
        yield connected


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """One LocalCluster per module: 2 worker processes, 1 thread each."""
    yield from local_cluster()


@pytest.fixture
def own_client() -> Iterator[Client]:
    """A LocalCluster of its own (2 worker processes) for a test that kills a worker: seen in CI, a cluster
    whose workers had been killed and restarted by earlier tests could hang the next killed worker's retry."""
    yield from local_cluster()


def messy_partition(i: int) -> pd.DataFrame:
    """Partition ``i`` of 8: 3 is empty, 6 is over 5 MiB of gzip (incompressible text), the rest are small."""
    records = [] if i == 3 else big(i, 11) if i == 6 else rows(i, 50 + i)
    return pd.DataFrame(records, columns=HEADERS).astype({"id": "int64", "title": "object", "blob": "object"})


def messy_frame() -> Any:
    return dd.from_map(messy_partition, list(range(8)), meta=messy_partition(3))


def single_csv(tmp_path: Path, source: Any) -> bytes:
    """The CSV a single-process publish of ``source`` stores."""
    folder = tmp_path / "single"
    Publisher(folder, name="books").publish_sync(source, headers=HEADERS)
    return gzip.decompress((folder / "books_latest.csv.gz").read_bytes())


def assert_clean(destination: Destination, version: str | None) -> None:
    """Only the latest and the archive of ``version`` with their manifests and descriptors; no unfinished upload."""
    expected = set()
    if version is not None:
        expected = {"books_latest.csv.gz", "books_latest.manifest.json"}
        expected |= {f"timestamped/books_{version}.csv.gz", f"timestamped/books_{version}.manifest.json"}
        expected |= {"books.datapackage.json", f"timestamped/books_{version}.datapackage.json"}
    assert visible(destination) == expected
    if destination.caps.unfinished is not None:
        assert destination.caps.unfinished(destination) == []


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_a_messy_frame_in_8_partitions_is_the_single_process_snapshot(
    backend: str, make_destination: Any, client: Client, tmp_path: Path
) -> None:
    """Commas, quotes, CR/LF, non-ASCII, empty strings, nulls; an empty and a 11 MiB partition: the same CSV."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    frame = messy_frame()
    result = publish_dask(frame, publisher, client=client)
    assert gzip.decompress(destination.read("books_latest.csv.gz")) == single_csv(tmp_path, frame.compute())
    assert publisher.verify_sync().ok
    manifest = Manifest.from_json(destination.read("books_latest.manifest.json"))
    parts = manifest.parts or []
    assert [p["partition"] for p in parts] == list(range(8))
    assert parts[3]["size"] == 0 and parts[3]["record_count"] == 0
    assert parts[6]["size"] > 5 * 2**20
    assert manifest.record_count == len(frame) == result.record_count
    assert_clean(destination, result.version)


def failing_partition(i: int) -> pd.DataFrame:
    if i == 5:
        raise LookupError("partition 5 cannot be read")  # a builtin: this module's classes travel by value
    return messy_partition(i)


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_a_failing_partition_aborts_with_its_error_and_leaves_nothing(
    backend: str, make_destination: Any, client: Client
) -> None:
    """The partition's own exception reaches the caller; no object, staged part or upload is left, the latest stays."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = publisher.publish_sync(rows(9, 5), headers=HEADERS)
    frame = dd.from_map(failing_partition, list(range(8)), meta=messy_partition(3))
    with pytest.raises(LookupError, match="partition 5 cannot be read"):
        publish_dask(frame, publisher, client=client)
    assert publisher.verify_sync().version == first.version
    assert_clean(destination, first.version)


class KillsItsWorker:
    """A value whose first formatting kills the worker process (os._exit), once: a marker file remembers."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __str__(self) -> str:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(17)
        return "survived"


def records_with_a_killer(marker: str) -> list[list[dict[str, Any]]]:
    """4 partitions of records; partition 2 holds 6 MiB of gzip, then the killer: parts are uploaded before it."""
    parts = [rows(0, 30), rows(1, 0), big(2, 6), rows(3, 30)]
    parts[2].append({"id": -1, "title": KillsItsWorker(marker), "blob": ""})
    return parts


@pytest.mark.parametrize("backend", backends("shared_by_processes"))
def test_a_worker_killed_mid_upload_is_retried_into_a_correct_snapshot(
    backend: str, make_destination: Any, own_client: Client, tmp_path: Path
) -> None:
    """Dask reruns the partition of a killed worker; its parts, uploaded again under the same numbers, are harmless."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    marker = str(tmp_path / f"killed-{backend}")
    bag = db.from_sequence(range(4), npartitions=4).map_partitions(
        lambda index, marker=marker: records_with_a_killer(marker)[index[0]]
    )
    result = publish_dask(bag, publisher, headers=HEADERS, client=own_client)
    assert os.path.exists(marker), "the worker was never killed"
    expected = single_csv(tmp_path, [r for p in records_with_a_killer(marker) for r in p])
    assert gzip.decompress(destination.read("books_latest.csv.gz")) == expected
    assert publisher.verify_sync().ok
    assert_clean(destination, result.version)
