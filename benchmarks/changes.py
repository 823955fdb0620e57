"""What a key costs: time and peak RSS of a keyed publish and of a diff, each in a fresh process.

    python benchmarks/changes.py                 # 1,000,000 rows (fixtures in /tmp/csvpublish-bench)
    python benchmarks/changes.py --rows 100000

Sources: the row path reads the frames mode's flat SQLite file through a DB-API cursor (rows in
batches, nothing held whole), the Arrow path streams its Arrow IPC file as a RecordBatchReader.
Each is published unkeyed and with ``key="Barcode"`` to a local folder (no server: the figures
are the CPU and memory of the key work). The diff compares the row path's keyed version with a
second keyed version of the same rows in which every 1,000th row is gone and every 100th has a
changed Title. The memory of the key work is the keyed publish's peak RSS minus the unkeyed one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import bookdata  # noqa: E402

WORKDIR = Path("/tmp/csvpublish-bench")
SEED = 20261126


def _sources(rows: int) -> bookdata.Fixture:
    db = bookdata.ensure_db(WORKDIR, SEED, max(rows, 1_000_000) if rows > 100_000 else 100_000)
    return bookdata.ensure_frame_sources(bookdata.ensure_fixture(WORKDIR, SEED, db, rows))


def _cursor(fixture: bookdata.Fixture, *, modified: bool) -> Any:
    con = sqlite3.connect(fixture.flat_db)  # type: ignore[arg-type]
    columns = [bookdata._quoted(h) for h in bookdata.HEADERS]
    if modified:
        columns[1] = "CASE WHEN rowid % 100 = 0 THEN Title || ' (2nd ed.)' ELSE Title END AS Title"
    where = "WHERE rowid % 1000 != 0" if modified else ""
    return con.execute(f"SELECT {', '.join(columns)} FROM {bookdata.FLAT_TABLE} {where}")


def _reader(fixture: bookdata.Fixture) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.memory_map(str(fixture.arrow)))


def child(mode: str, rows: int, out: Path) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    from csvpublish import Publisher

    fixture = _sources(rows)
    key = None if mode.endswith("plain") else "Barcode"
    publisher = Publisher(out, name="books", key=key)
    if mode == "diff":
        versions = [v.version for v in publisher.versions_sync()]
        start = time.perf_counter()
        summary = publisher.diff_sync(versions[-1], versions[0])
        result: dict[str, Any] = {"changes": summary.to_dict()}
    else:
        source = _reader(fixture) if mode.startswith("arrow") else _cursor(fixture, modified=mode == "rows-v2")
        start = time.perf_counter()
        published = asyncio.run(publisher.publish(source))
        result = {"records": published.record_count, "changes": published.changes and published.changes.to_dict()}
    result["wall_s"] = round(time.perf_counter() - start, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def run_child(mode: str, rows: int, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rows", str(rows), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--out", type=Path, default=Path("/tmp/csvpublish-bench-changes"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.out)))
        return
    _sources(args.rows)  # build the fixtures once, outside every clock
    found: dict[str, dict[str, Any]] = {}
    for mode in ("rows-plain", "rows-keyed", "arrow-plain", "arrow-keyed", "rows-v2", "diff"):
        out = args.out / ("diff" if mode in ("rows-keyed", "rows-v2", "diff") else mode)
        if mode != "rows-v2" and mode != "diff":
            shutil.rmtree(out, ignore_errors=True)
        found[mode] = run_child(mode, args.rows, out)
        print(f"{mode:12} {found[mode]['wall_s']:7.2f} s  peak RSS {found[mode]['peak_rss_mb']:7.1f} MB", flush=True)
    for path in ("rows", "arrow"):
        extra = found[f"{path}-keyed"]["peak_rss_mb"] - found[f"{path}-plain"]["peak_rss_mb"]
        slower = found[f"{path}-keyed"]["wall_s"] / found[f"{path}-plain"]["wall_s"]
        per_row = extra * 2**20 / args.rows
        print(f"{path} path: the key costs {extra:.0f} MB = {per_row:.0f} bytes per row, {slower:.2f}× the time")
    print(f"diff of {args.rows:,} rows: {found['diff']['wall_s']} s, peak RSS {found['diff']['peak_rss_mb']} MB")
    print("changes:", json.dumps({k: v for k, v in found["diff"]["changes"].items() if not k.endswith("examples")}))


if __name__ == "__main__":
    main()
