"""The distributed mode (issue 15): one snapshot from a Dask LocalCluster vs the single-process publish.

Book rows (bookdata.py's SQLite table) in N partitions of a Dask Bag, each streamed
by its worker from a cursor (``SELECT ... WHERE id >= ? AND id < ?``), published
with ``csvpublish.dask`` on a LocalCluster of 2 worker processes (1 thread each),
against one process publishing a cursor over the same rows, both to moto's S3
server (its own process) on 127.0.0.1. Each measurement in a fresh process; the
CSV sha256 must match. Besides the wall times it reports the CPU seconds each mode
used (this process, the workers, moto): on 2 cores no run can take less than half
their sum. The workers get ``MALLOC_MMAP_THRESHOLD_`` (``--mmap-threshold``, 16 MiB;
0 keeps Dask's environment): Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_``, which
also fixes glibc's mmap threshold at 128 KiB, so every buffer of a part or a chunk
is mapped and unmapped afresh (7-12% more CPU in the workers).

    python benchmarks/partitioned.py --rows 4000000 --partitions 16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bookdata import FIELDS, ensure_db  # noqa: E402

OPTIONS = {
    "key": "bench", "secret": "bench", "client_kwargs": {"region_name": "us-east-1"}, "skip_instance_cache": True,
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto did not start")


def options(endpoint: str) -> dict[str, Any]:
    return {**OPTIONS, "client_kwargs": {**OPTIONS["client_kwargs"], "endpoint_url": endpoint}}


def load(db: str, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """A partition's rows, streamed from the SQLite table on the worker (as the single process reads its cursor)."""
    con = sqlite3.connect(db)
    try:
        sql = f"SELECT {', '.join(FIELDS)} FROM books WHERE id >= ? AND id < ? ORDER BY id"
        cursor = con.execute(sql, (start, stop))
        while batch := cursor.fetchmany(1000):
            yield from batch
    finally:
        con.close()


def _cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _warm() -> None:
    import csvpublish.partitions
    import csvpublish.storage.s3  # noqa: F401


def run_single(db: str, rows: int, endpoint: str, bucket: str) -> dict[str, Any]:
    from csvpublish import Publisher

    con = sqlite3.connect(db)
    cursor = con.execute(f"SELECT {', '.join(FIELDS)} FROM books WHERE id < ? ORDER BY id", (rows,))
    publisher = Publisher(f"s3://{bucket}/single", name="books", storage_options=options(endpoint))
    started, cpu = time.perf_counter(), _cpu()
    result = publisher.publish_sync(cursor)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": "single", "wall": wall, "size": result.size, "csv_sha256": result.csv_sha256, "peak_mb": peak,
        "cpu": cpu,
    }  # fmt: skip


def run_distributed(
    db: str, rows: int, partitions: int, endpoint: str, bucket: str, mmap_threshold: int
) -> dict[str, Any]:
    import dask.bag as dbag
    from distributed import Client, LocalCluster

    from csvpublish import Publisher
    from csvpublish.dask import _compute, _digest_on, _partitions, _write

    bounds = [(rows * i // partitions, rows * (i + 1) // partitions) for i in range(partitions)]
    if mmap_threshold:  # Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which pins glibc's mmap threshold at 128 KiB
        import dask

        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), "MALLOC_MMAP_THRESHOLD_": mmap_threshold}
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        bag = dbag.from_sequence(bounds, npartitions=partitions).map_partitions(lambda b: load(db, *b[0]))
        publisher = Publisher(f"s3://{bucket}/dask", name="books", storage_options=options(endpoint))
        client.run(_warm)  # a long-lived cluster has csvpublish, s3fs and botocore imported already
        cpu_before = _cpu() + sum(client.run(_cpu).values())
        started = time.perf_counter()
        parts, headers = _partitions(bag, list(FIELDS))
        session = publisher.begin_partitioned_sync(len(parts), headers=headers)
        from dask.delayed import delayed

        tasks = [delayed(_write, pure=False)(session.writer, i, p) for i, p in enumerate(parts)]
        receipts = _compute(tasks, client)
        written, own = time.perf_counter(), _cpu()
        result = session.commit_sync(receipts, digest=_digest_on(client))
        done, own = time.perf_counter(), _cpu() - own  # the coordinator's CPU in the commit (it mostly waits)
        cpu = _cpu() + sum(client.run(_cpu).values()) - cpu_before
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    coordinator = session.timings["assemble"] + session.timings["promote"]
    return {
        "mode": "dask", "wall": done - started, "workers": written - started, "commit": done - written,
        "assemble": session.timings["assemble"], "digest": session.timings["digest"],
        "promote": session.timings["promote"], "coordinator": coordinator, "coordinator_cpu": own, "size": result.size,
        "csv_sha256": result.csv_sha256, "cpu": cpu, "uploaded_parts": sum(len(r.pieces) for r in receipts),
        "worker_peak_mb": sorted(peaks.values()), "coordinator_peak_mb":
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(spec: dict[str, Any]) -> None:
    if spec["mode"] == "single":
        out = run_single(spec["db"], spec["rows"], spec["endpoint"], spec["bucket"])
    else:
        out = run_distributed(
            spec["db"], spec["rows"], spec["partitions"], spec["endpoint"], spec["bucket"], spec["mmap_threshold"]
        )
    print("RESULT " + json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--mmap-threshold", type=int, default=16, metavar="MIB",
                        help="MALLOC_MMAP_THRESHOLD_ for the workers (0: Dask's default environment)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "csvpublish-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    db = str(ensure_db(args.workdir, args.seed, args.rows))
    port = free_port()
    server = moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    import fsspec

    results = []
    try:
        for repeat in range(args.repeats):
            for mode in ("single", "dask"):
                bucket = f"bench-{mode}-{repeat}-{os.getpid()}"
                fsspec.filesystem("s3", **options(endpoint)).call_s3("create_bucket", Bucket=bucket)
                spec = {"mode": mode, "db": db, "rows": args.rows, "partitions": args.partitions,
                        "endpoint": endpoint, "bucket": bucket,
                        "mmap_threshold": args.mmap_threshold * 2**20}  # fmt: skip
                moto_before = cpu_seconds(server.pid)
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                     capture_output=True, text=True, check=False)  # fmt: skip
                if out.returncode:
                    print(out.stderr[-3000:])
                    raise SystemExit(1)
                line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
                results.append({**json.loads(line[7:]), "moto_cpu": cpu_seconds(server.pid) - moto_before})
                print(json.dumps(results[-1]), flush=True)
                fsspec.filesystem("s3", **options(endpoint)).rm(bucket, recursive=True)
    finally:
        server.terminate()
    single = [r for r in results if r["mode"] == "single"]
    dask = [r for r in results if r["mode"] == "dask"]
    assert all(r["csv_sha256"] == single[0]["csv_sha256"] for r in results), "the CSVs differ"
    best_single, best_dask = min(r["wall"] for r in single), min(r["wall"] for r in dask)
    share = dask[0]["coordinator"] / dask[0]["wall"]
    print(f"speed-up {best_single / best_dask:.2f}x; coordinator {share:.1%} of wall")
    for r in (single[0], dask[0]):  # the 2 cores' budget: no wall time can be below (all CPU) / 2
        total = r["cpu"] + r["moto_cpu"]
        print(f"{r['mode']}: CPU {r['cpu']:.1f} s + moto {r['moto_cpu']:.1f} s = {total:.1f} s, "
              f"floor on 2 cores {total / 2:.1f} s, wall {r['wall']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
