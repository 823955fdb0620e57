"""csvpublish benchmark: publish a book-like table to moto's S3 server and to a local folder.

    python benchmarks/bench.py            # 100k and 1M rows (long: about an hour on 2 cores)
    python benchmarks/bench.py --quick    # 100k rows only
    python benchmarks/bench.py --quick --modes frames --targets s3   # issue 12: frames, Arrow, a cursor
    python benchmarks/bench.py --modes latency                       # issue 13: 1,000 rows, 20 ms a request

Each measurement runs in a fresh process; contenders are interleaved round-robin;
the tables report medians. See benchmarks/README.md for what each contender does
and how uploaded bytes are counted.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bookdata import Fixture, ensure_db, ensure_fixture, ensure_frame_sources  # noqa: E402
from contenders import BY_NAME, CONTENDERS, Contender, Spec, run_child  # noqa: E402
from latency import LATENCY_ROWS, MANY_VERSIONS, DelayProxy, latency_table, seed_versions  # noqa: E402

MB = 1e6
BUCKET = "bench"
MODES = ("tracker", "prebuilt", "frames", "latency")
DEFAULT_MODES = ["tracker", "prebuilt"]
"""The frames mode (issue 12) and the latency mode (issue 13) run when asked for: ``--modes frames``
or ``--modes latency``, or ``--only`` one of their contenders."""
BASELINE = {"tracker": "reference", "prebuilt": "reference", "frames": "pandas-frame", "latency": "latency-seed-plan"}
"""The contender each mode's "speed-up" column divides by."""
RSS_BOUND = 50 * MB
"""The memory bound of the issue's targets (MB = 10**6 bytes throughout)."""


# --- the S3 server, with a count of the bytes it receives ------------------------------------


class _CountingInput:
    """Wraps ``wsgi.input``: counts the request body bytes the server reads."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.count = 0

    def read(self, *args: Any) -> bytes:
        data = self._stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._stream.readline(*args)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int | None:
        n = self._stream.readinto(buffer)
        self.count += n or 0
        return n

    def __iter__(self) -> Any:
        for line in self._stream:
            self.count += len(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@dataclass
class Traffic:
    body_bytes: int = 0
    requests: int = 0
    copies: int = 0
    by_method: dict[str, int] = field(default_factory=dict)


class CountingApp:
    """WSGI middleware in front of moto: per request, the body bytes the client sent.

    A request's body size is the larger of its ``Content-Length`` and the bytes
    the server read, so a chunked body or an unread body both count. A
    server-side copy (``x-amz-copy-source``) has no body: it counts 0 bytes
    and is tallied as a copy.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.traffic = Traffic()

    def reset(self) -> Traffic:
        with self.lock:
            old, self.traffic = self.traffic, Traffic()
        return old

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        counter = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counter
        try:
            return self.app(environ, start_response)
        finally:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                declared = int(environ.get("CONTENT_LENGTH") or 0)
                with self.lock:
                    t = self.traffic
                    t.requests += 1
                    t.body_bytes += max(declared, counter.count)
                    method = environ.get("REQUEST_METHOD", "?")
                    t.by_method[method] = t.by_method.get(method, 0) + 1
                    if environ.get("HTTP_X_AMZ_COPY_SOURCE"):
                        t.copies += 1


class S3Server:
    """moto's S3 server on 127.0.0.1 (as ``ThreadedMotoServer`` runs it), behind :class:`CountingApp`."""

    def __init__(self) -> None:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.counter = CountingApp(DomainDispatcherApplication(create_backend_app))
        self.server = make_server("127.0.0.1", 0, self.counter, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        import boto3

        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
            region_name="us-east-1",
        )  # fmt: skip

    def fresh_bucket(self) -> None:
        """Forget every object (moto's reset), make an empty bucket, zero the counters."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).read()
        self.client.create_bucket(Bucket=BUCKET)
        self.counter.reset()

    def objects(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                out[item["Key"]] = item["Size"]
        return out

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


class CpuSampler:
    """This process's CPU time (the moto server's threads, as the parent only waits meanwhile), sampled
    every 20 ms, so the server's share of a child's clock can be read off afterwards."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), time.process_time()))
            self._stop.wait(0.02)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), time.process_time()))

    def between(self, start: float, stop: float) -> float:
        """CPU seconds from ``start`` to ``stop`` (wall-clock times), interpolated between samples."""
        return self._at(stop) - self._at(start)

    def _at(self, when: float) -> float:
        samples = self.samples
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t0 <= when <= t1:
                return c0 + (c1 - c0) * ((when - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return samples[-1][1] if when > samples[-1][0] else samples[0][1]


# --- running one measurement ---------------------------------------------------------------------


@dataclass
class Case:
    rows: int
    mode: str
    target: str
    contender: Contender

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.rows, self.mode, self.target, self.contender.name)


@dataclass
class Result:
    wall: float
    peak_rss: int
    rss_before: int
    uploaded: int | None = None
    requests: int | None = None
    copies: int | None = None
    stored: int | None = None
    """Size of the published .csv.gz (the latest object)."""
    list_rss: int | None = None
    output_ok: bool | None = None
    """The output check: the fixture's bytes, or for a contender with its own dialect the fixture's rows."""
    bytes_ok: bool | None = None
    """The published .csv.gz decompresses to the fixture CSV's bytes."""
    rows_ok: bool | None = None
    """It parses (csv module) to the fixture's rows."""
    cpu: float | None = None
    """CPU seconds of the contender's process while its clock ran."""
    server_cpu: float | None = None
    """CPU seconds of the moto server (this process) over the same interval."""
    library: str = ""
    """Hash of csvpublish's sources when this measurement ran (see :func:`library_fingerprint`)."""
    extra: dict[str, Any] = field(default_factory=dict)


def child_env() -> dict[str, str]:
    """The children's environment: no AWS or proxy settings of the caller, and this process's csvpublish.

    The folder this process imported csvpublish from goes first on ``PYTHONPATH`` (absolute),
    so a child measures the same sources (a worktree's ``src``, not an editable install's).
    """
    import csvpublish

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AWS_", "HTTP_PROXY", "HTTPS_PROXY"))}
    src = str(Path(csvpublish.__file__).resolve().parent.parent)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    env["PYTHONPATH"] = os.pathsep.join([src, *rest])
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONWARNINGS="ignore",
    )
    return env


def gunzip_sha256(data_or_path: bytes | Path) -> str:
    digest = hashlib.sha256()
    source = data_or_path if isinstance(data_or_path, Path) else io.BytesIO(data_or_path)
    with gzip.open(source, "rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def same_rows(data_or_path: bytes | Path, csv_path: Path) -> bool:
    """Whether the gzip parses, with the csv module, to the same rows as ``csv_path`` (any quoting, any line end)."""
    source = data_or_path if isinstance(data_or_path, Path) else io.BytesIO(data_or_path)
    with (
        gzip.open(source, "rt", encoding="utf-8", newline="") as got,
        open(csv_path, encoding="utf-8", newline="") as want,
    ):
        return all(a == b for a, b in itertools.zip_longest(csv.reader(got), csv.reader(want)))


def check_output(result: Result, data_or_path: bytes | Path, fixture: Fixture, same_bytes: bool) -> None:
    """Fill ``bytes_ok``, ``rows_ok`` and ``output_ok`` (rows are parsed only when the bytes differ)."""
    result.bytes_ok = gunzip_sha256(data_or_path) == fixture.csv_sha256
    result.rows_ok = True if result.bytes_ok else same_rows(data_or_path, fixture.csv)
    result.output_ok = result.bytes_ok if same_bytes else result.rows_ok


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_bucket(case: Case, fixture: Fixture, server: S3Server | None, proxy: DelayProxy | None) -> str | None:
    """An S3 case's fresh bucket, with the versions its contender wants already there; the endpoint its child uses.

    The latency mode's children go through the proxy; the versions are published straight
    to the server first, and neither they nor the proxy's log of them count for the run.
    """
    if case.target != "s3":
        return None
    assert server is not None
    server.fresh_bucket()
    if case.contender.versions:
        seed_versions(server.endpoint, server.client, BUCKET, str(fixture.csv), case.contender.versions)
        server.counter.reset()
    if case.mode != "latency":
        return server.endpoint
    assert proxy is not None
    proxy.log.clear()
    return proxy.endpoint


def proxy_seen(proxy: DelayProxy | None, data: dict[str, Any]) -> dict[str, Any]:
    """The latency mode: the delay, and what the proxy saw inside the child's clock (``data["window"]``)."""
    if proxy is None or "window" not in data:
        return {}
    return {"latency_ms": proxy.delay_ms, "proxy": asdict(proxy.log.stats(*data["window"]))}


def run_case(
    case: Case, fixture: Fixture, server: S3Server | None, workroot: Path, verify: bool, proxy: DelayProxy | None = None
) -> Result:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=workroot))
    endpoint = prepare_bucket(case, fixture, server, proxy)
    spec = Spec(
        contender=case.contender.name,
        mode=case.mode,
        target=case.target,
        rows=case.rows,
        db=str(fixture.db),
        csv=str(fixture.csv),
        gz=str(fixture.gz),
        work=str(work),
        endpoint=endpoint,
        bucket=BUCKET if case.target == "s3" else None,
        flat_db=str(fixture.flat_db) if fixture.flat_db else None,
        arrow=str(fixture.arrow) if fixture.arrow else None,
    )
    try:
        with CpuSampler() as sampler:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(spec))],
                capture_output=True, text=True, env=child_env(), timeout=3600, check=False,
            )  # fmt: skip
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(
                f"{case.contender.name} ({case.mode}, {case.target}, {case.rows} rows) failed "
                f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        data = json.loads(line[len("RESULT ") :])
        span = data.pop("span", None)
        result = Result(
            wall=data.pop("wall"),
            peak_rss=data.pop("peak_rss"),
            rss_before=data.pop("rss_before"),
            list_rss=data.pop("list_rss", None),
            cpu=data.pop("cpu", None),
            extra=data | proxy_seen(proxy, data),
        )
        if server is not None and span and span[1] > span[0]:
            result.server_cpu = sampler.between(*span)
        latest_key = "meta/books_latest.csv.gz"
        if case.target == "s3":
            assert server is not None
            traffic = server.counter.reset()
            result.uploaded, result.requests, result.copies = traffic.body_bytes, traffic.requests, traffic.copies
            objects = server.objects()
            result.stored = objects.get(latest_key)
            if verify and result.stored is not None:
                check_output(result, server.read(latest_key), fixture, case.contender.same_bytes)
        elif case.target == "local":
            path = work / "dest" / latest_key
            result.stored = path.stat().st_size if path.exists() else None
            if verify and result.stored is not None:
                check_output(result, path, fixture, case.contender.same_bytes)
        if verify and case.contender.writes_local_csv:
            local_csv = work / "staging" / "meta" / "books_latest.csv"
            ok = local_csv.exists() and file_sha256(local_csv) == fixture.csv_sha256
            result.output_ok = ok if result.output_ok is None else (result.output_ok and ok)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- reporting ------------------------------------------------------------------------------------


VERSIONS_OF = (
    "csvpublish", "fsspec", "s3fs", "botocore", "moto", "pandas", "smart_open", "boto3", "isal",
    "pyarrow", "polars", "duckdb", "duckdb-extension-httpfs", "duckdb-extension-sqlite-scanner",
)  # fmt: skip


def machine() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    from csvpublish.compression import DEFAULT_LEVEL, default_backend

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        ram = "RAM unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for package in VERSIONS_OF:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return [
        f"- csvpublish source: {library_fingerprint()}",
        f"- CPU: {model}, {os.cpu_count()} logical cores ({usable} usable), {ram}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- csvpublish compressor: {default_backend()} level {DEFAULT_LEVEL} (the fastest installed backend)",
        "- " + ", ".join(versions),
    ]


def library_fingerprint() -> str:
    """Which csvpublish was measured: its folder, git commit (+ dirty state) and a hash of its sources."""
    import csvpublish

    src = Path(csvpublish.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.strip()
        commit = f"git {head}{' + uncommitted changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        commit = "not a git checkout"
    return f"{src} ({commit}; sources sha256 {digest.hexdigest()[:12]})"


def median(values: list[float]) -> float:
    return statistics.median(values)


def yes_no(values: list[bool]) -> str:
    return "—" if not values else ("yes" if all(values) else "no")


def fmt_mb(n: float | None) -> str:
    return "—" if n is None else f"{n / MB:.1f}"


def table(rows: int, mode: str, target: str, cases: list[Case], results: dict[Any, list[Result]]) -> list[str]:
    shown = [c for c in cases if c.rows == rows and c.mode == mode and c.target in (target, "none")]
    if not any(c.target == target for c in shown):
        return []
    frames = mode == "frames"
    ref = results.get((rows, mode, target, BASELINE[mode]))
    ref_wall = median([r.wall for r in ref]) if ref else None
    title = f"### {rows:,} rows · {mode} source · {'moto S3 server' if target == 's3' else 'local folder'}"
    out = [title, ""]
    if frames:
        head = (
            "| contender | gzip level | median wall s | min–max s | CPU s: own + server | peak RSS MB "
            "| uploaded MB | requests (copies) | speed-up vs pandas to_csv | bytes = fixture | rows = fixture |"
        )
        out += [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    else:
        head = (
            "| contender | median wall s | min–max s | peak RSS MB | uploaded MB | requests (copies) "
            "| speed-up vs reference | output |"
        )
        out += [head, "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for case in shown:
        rs = results.get(case.key, [])
        if not rs:
            continue
        walls = [r.wall for r in rs]
        wall = median(walls)
        rss = median([r.peak_rss for r in rs])
        up = [r.uploaded for r in rs if r.uploaded is not None]
        uploaded = fmt_mb(median(up)) if up else "—"
        req = [r.requests for r in rs if r.requests is not None]
        cop = [r.copies for r in rs if r.copies is not None]
        requests = f"{int(median(req))} ({int(median(cop))})" if req else "—"
        speed = f"{ref_wall / wall:.2f}×" if ref_wall else "—"
        oks = [r.output_ok for r in rs if r.output_ok is not None]
        output = "—" if not oks else ("✓" if all(oks) else "✗")
        name = case.contender.label + (" ᶠ" if case.target == "none" else "")
        if frames:
            same_bytes = yes_no([r.bytes_ok for r in rs if r.bytes_ok is not None])
            same_rows = yes_no([r.rows_ok for r in rs if r.rows_ok is not None])
            out.append(
                f"| {name} (`{case.contender.name}`) | {case.contender.gzip} | {wall:.2f} "
                f"| {min(walls):.2f}–{max(walls):.2f} | {cpu_cell(rs)} | {rss / MB:.0f} | {uploaded} | {requests} "
                f"| {speed} | {same_bytes} | {same_rows} |"
            )
            continue
        out.append(
            f"| {name} | {wall:.2f} | {min(walls):.2f}–{max(walls):.2f} | {rss / MB:.0f} | {uploaded} "
            f"| {requests} | {speed} | {output} |"
        )
    out.append("")
    return out


def cpu_cell(rs: list[Result]) -> str:
    """Median CPU seconds of the contender's process and of the server: "own + server"."""
    own = [r.cpu for r in rs if r.cpu is not None]
    server = [r.server_cpu for r in rs if r.server_cpu is not None]
    if not own:
        return "—"
    return f"{median(own):.1f} + {median(server):.1f}" if server else f"{median(own):.1f}"


@dataclass
class Check:
    ok: bool | None
    text: str

    note: bool = False  # a measurement worth reading next to the targets, not a target

    def line(self) -> str:
        tag = "NOTE" if self.note else "SKIP" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return f"- {tag}: {self.text}"


# fmt: off
def checks(results: dict[Any, list[Result]], rows_list: list[int]) -> list[Check]:
    """The targets of issue 5, each as a PASS/FAIL/SKIP line."""
    big, small = max(rows_list), min(rows_list)
    at = f"{big:,} rows"
    if big < 1_000_000:
        at += " (the targets are stated at 1M rows: run without --quick to check them there)"

    def med(mode: str, name: str, rows: int = big, target: str = "s3", what: str = "wall") -> float | None:
        rs = results.get((rows, mode, target, name))
        return median([getattr(r, what) for r in rs]) if rs else None

    out: list[Check] = []

    def faster(mode: str, mine: str, other: str, need: float, what: str) -> None:
        a, b = med(mode, mine), med(mode, other)
        if a is None or b is None:
            out.append(Check(None, f"{what}: not measured"))
            return
        out.append(Check(b / a >= need, f"{what}: {b:.2f} s / {a:.2f} s = {b / a:.2f}× (need ≥ {need}×)"))

    faster("prebuilt", "csvpublish-stream", "reference", 2.0,
           f"prebuilt, S3, {at}: csvpublish (generator, with the local CSV the reference also writes) vs reference")
    for peer in ("pandas", "smart_open"):
        faster("prebuilt", "csvpublish-stream-upload", peer, 1.5,
               f"prebuilt, S3: csvpublish (generator, upload only, like {peer}) vs {peer}")
    floor = med("prebuilt", "floor-format", target="none")
    for name, label in (("csvpublish-stream-upload", "upload only"), ("csvpublish-stream", "with local CSV")):
        a = med("prebuilt", name)
        if a is None or floor is None:
            out.append(Check(None, f"prebuilt, S3: csvpublish ({label}) vs the formatting floor: not measured"))
            continue
        out.append(Check(a / floor <= 1.25, f"prebuilt, S3: csvpublish (generator, {label}) {a:.2f} s vs "
                                            f"csv.writer alone {floor:.2f} s = {a / floor:.2f}× (need ≤ 1.25×)"))
    own = med("prebuilt", "floor-format-csvpublish", target="none")
    for name, label in (("csvpublish-stream-upload", "upload only"), ("csvpublish-stream", "with local CSV")):
        a = med("prebuilt", name)
        if a is not None and own is not None:
            out.append(Check(None, f"prebuilt, S3: csvpublish (generator, {label}) {a:.2f} s vs its own formatter "
                                   f"alone {own:.2f} s = {a / own:.2f}× (csvpublish formats the same bytes faster "
                                   "than csv.writer, so this is the overlap without that gain)", note=True))
    faster("tracker", "csvpublish-stream", "reference", 1.25,
           "tracker, S3: csvpublish (generator, with local CSV, like the reference) vs reference")
    for peer in ("pandas", "smart_open"):
        faster("tracker", "csvpublish-stream-upload", peer, 1.0,
               f"tracker, S3: csvpublish (generator, upload only, like {peer}) faster than {peer}")

    bound = f"need ≤ +{RSS_BOUND / MB:.0f} MB"
    if big == small:
        out.append(Check(None, "peak RSS with a streaming source at 1M within 50 MB of 100k: needs both sizes"))
    for name in ("csvpublish-stream", "csvpublish-stream-upload"):
        a, b = med("tracker", name, what="peak_rss"), med("tracker", name, rows=small, what="peak_rss")
        if big == small or a is None or b is None:
            continue
        text = (f"tracker (generator source), S3, {name}: peak RSS {a / MB:.0f} MB at {big:,} rows, "
                f"{b / MB:.0f} MB at {small:,}: {(a - b) / MB:+.0f} MB ({bound})")
        out.append(Check(a - b <= RSS_BOUND, text))
    for mode in ("tracker", "prebuilt"):
        rs = results.get((big, mode, "s3", "csvpublish-list"))
        if not rs:
            continue
        peak = median([r.peak_rss for r in rs])
        base = median([float(r.list_rss or r.rss_before) for r in rs])
        text = (f"{mode}, S3, {at}: csvpublish with a list source: peak RSS {peak / MB:.0f} MB, "
                f"RSS once the list is built {base / MB:.0f} MB: {(peak - base) / MB:+.0f} MB ({bound})")
        out.append(Check(peak - base <= RSS_BOUND, text))

    worst: tuple[float, str] | None = None
    for (rows, mode, target, name), rs in results.items():
        if target != "s3" or not name.startswith("csvpublish"):
            continue
        for r in rs:
            if r.uploaded is not None and r.stored:
                ratio = r.uploaded / r.stored
                if worst is None or ratio > worst[0]:
                    worst = (ratio, f"{name}, {mode}, {rows:,} rows: {r.uploaded / MB:.2f} MB sent, "
                                    f"{r.stored / MB:.2f} MB object, {ratio:.4f}×")
    if worst:
        out.append(Check(worst[0] <= 1.02, f"bytes uploaded ≤ 1.02× the compressed size in every csvpublish S3 run "
                                           f"(worst: {worst[1]})"))
    return out


FRAME_PEERS = {
    "pandas": ("pandas-frame",),
    "polars": ("polars-write-csv",),
    "arrow": ("pyarrow-write-csv", "pyarrow-write-csv-gzip1", "duckdb-copy-arrow"),
}
"""For each in-memory frame, the peers that write that same frame to the same server."""


def checks_issue12(results: dict[Any, list[Result]], rows_list: list[int]) -> list[Check]:
    """The targets of issue 12 (the frames mode), each as a PASS/FAIL/SKIP line."""
    if not any(key[1] == "frames" for key in results):
        return [Check(None, "issue 12: the frames mode was not measured (run with --modes frames)")]
    big, small = max(rows_list), min(rows_list)
    at = f"{big:,} rows"
    if big < 1_000_000:
        at += " (the targets are stated at 1M rows: run without --quick to check them there)"

    def med(name: str, rows: int = big, what: str = "wall") -> float | None:
        for mode in ("frames", "prebuilt"):  # the floor and the Python-rows publish also run in prebuilt
            for target in ("s3", "none"):
                rs = results.get((rows, mode, target, name))
                if rs:
                    return median([getattr(r, what) for r in rs])
        return None

    out: list[Check] = []

    def faster(mine: str, other: str, need: float, what: str) -> None:
        a, b = med(mine), med(other)
        if a is None or b is None:
            out.append(Check(None, f"{what}: not measured"))
            return
        out.append(Check(b / a >= need, f"{what}: {b:.2f} s / {a:.2f} s = {b / a:.2f}× (need ≥ {need}×)"))

    a, floor = med("csvpublish-arrow"), med("floor-gzip-isal")
    if a is None or floor is None:
        out.append(Check(None, "frames, S3: csvpublish (Arrow table) vs gzip -1 alone (isal): not measured"))
    else:
        out.append(Check(a / floor <= 1.25, f"frames, S3, {at}: csvpublish (Arrow table) {a:.2f} s vs gzip -1 alone "
                                            f"(isal) {floor:.2f} s = {a / floor:.2f}× (need ≤ 1.25×)"))
    storage = med("floor-publish-storage")
    if a is not None and floor is not None and storage is not None:
        out.append(Check(None, f"frames, S3: csvpublish (Arrow table) {a:.2f} s vs gzip -1 alone plus the storage work "
                               f"of a publish alone (stream the .gz to the archive, copy it to the latest) "
                               f"{floor:.2f} + {storage:.2f} s = {a / (floor + storage):.2f}× (on moto the "
                               "server rewrites the object on completion and on copy, after the last byte)",
                         note=True))
    faster("csvpublish-arrow", "csvpublish-stream-upload", 2.5,
           "frames, S3: csvpublish (Arrow table) vs csvpublish (the same data as Python rows, prebuilt generator)")
    for kind, peers in FRAME_PEERS.items():
        for peer in peers:
            faster(f"csvpublish-{kind}", peer, 1.0, f"frames, S3: csvpublish ({kind} frame) faster than {peer}")
        faster(f"csvpublish-{kind}", "pandas-frame", 2.0, f"frames, S3: csvpublish ({kind} frame) vs pandas to_csv")
    faster("csvpublish-cursor", "duckdb-copy-sqlite", 1.5,
           "frames, S3: csvpublish (sqlite3 cursor) vs DuckDB sqlite_scan COPY to S3")

    if big == small:
        out.append(Check(None, "peak RSS of csvpublish from a RecordBatchReader at 1M within 50 MB of 100k: "
                               "needs both sizes"))
    else:
        a, b = med("csvpublish-reader", what="peak_rss"), med("csvpublish-reader", rows=small, what="peak_rss")
        if a is None or b is None:
            out.append(Check(None, "peak RSS of csvpublish from a RecordBatchReader: not measured"))
        else:
            out.append(Check(a - b <= RSS_BOUND, f"frames (RecordBatchReader source), S3, csvpublish-reader: peak RSS "
                                                 f"{a / MB:.0f} MB at {big:,} rows, {b / MB:.0f} MB at {small:,}: "
                                                 f"{(a - b) / MB:+.0f} MB (need ≤ +{RSS_BOUND / MB:.0f} MB)"))
    return out


def checks_latency(results: dict[Any, list[Result]], rows: int = LATENCY_ROWS) -> list[Check]:
    """The targets of issue 13 (the latency mode), each as a PASS/FAIL/SKIP line, and a NOTE on the waits."""
    runs = {key[3]: rs for key, rs in results.items() if key[:3] == (rows, "latency", "s3")}
    if not runs:
        return [Check(None, "issue 13: the latency mode was not measured (run with --modes latency)")]
    delays = sorted({r.extra["latency_ms"] for rs in runs.values() for r in rs if "latency_ms" in r.extra})
    at = f"latency, S3, {rows:,} rows, {' / '.join(f'{d:g}' for d in delays)} ms a request"

    def med(name: str) -> float | None:
        return median([r.wall for r in runs[name]]) if name in runs else None

    out: list[Check] = []

    def within(mine: str, other: str, bound: float | None, what: str) -> None:
        a, b = med(mine), med(other)
        if a is None or b is None:
            out.append(Check(None, f"{what}: not measured"))
            return
        need = f" (need ≤ {bound}×)" if bound else ""
        out.append(Check(None if bound is None else a / b <= bound,
                         f"{what}: {a:.3f} s / {b:.3f} s = {a / b:.2f}×{need}", note=bound is None))

    within("latency-csvpublish", "latency-seed-plan", 3.0,
           f"{at}: csvpublish (nothing published yet) vs the seed plan's two concurrent PUTs")
    within(f"latency-csvpublish-{MANY_VERSIONS}-versions", "latency-csvpublish-1-version", 1.2,
           f"{at}: csvpublish with {MANY_VERSIONS:,} versions already published vs with 1")
    within("latency-csvpublish-1-version", "latency-seed-plan", None,
           f"{at}: csvpublish with 1 version already published vs the seed plan's two concurrent PUTs")
    for name, rs in runs.items():
        seen = [r.extra["proxy"] for r in rs if "proxy" in r.extra]
        if name.startswith("latency-csvpublish") and seen and delays:
            depth, wall = median([s["depth"] for s in seen]), median([r.wall for r in rs])
            waits = depth * delays[-1] / 1000
            out.append(Check(None, f"{at}: {name}: {median([s['requests'] for s in seen]):.0f} requests in the "
                                   f"clock, {depth:.0f} one after another: {depth:.0f} × {delays[-1]:g} ms = "
                                   f"{waits:.2f} s, the least of its {wall:.3f} s spent waiting", note=True))
    return out
# fmt: on


# --- main -------------------------------------------------------------------------------------------


def build_cases(rows_list: list[int], only: set[str] | None, modes: list[str], targets: list[str]) -> list[Case]:
    cases = []
    for rows in rows_list:
        for mode in modes:
            for target in (*targets, "none"):
                for contender in CONTENDERS:
                    if only and contender.name not in only:
                        continue
                    if mode in contender.modes and target in contender.targets:
                        cases.append(Case(rows, mode, target, contender))
    return cases


def target_sections(results: dict[Any, list[Result]], rows_list: list[int], cases: list[Case]) -> list[str]:
    """The target checks of each issue, under a heading each; only issue 13's when the latency mode ran alone."""
    lines: list[str] = []
    if any(c.mode != "latency" for c in cases):
        lines += ["### Targets (issue 5)", ""]
        issue5 = checks(results, rows_list)
        if not any(key[1] in DEFAULT_MODES for key in results):  # a frames-only run: keep the bytes check
            issue5 = [Check(None, "the tracker and prebuilt modes were not measured"),
                      *(c for c in issue5 if c.ok is not None)]  # fmt: skip
        lines += [c.line() for c in issue5]
        lines += ["", "### Targets (issue 12)", ""]
        lines += [c.line() for c in checks_issue12(results, rows_list)]
        lines.append("")
    lines += ["### Targets (issue 13)", ""]
    lines += [c.line() for c in checks_latency(results)]
    return lines


def same_delay(record: dict[str, Any], latency_ms: float) -> bool:
    """Whether a logged measurement may join this session's: a latency run must have had the same delay."""
    return record["key"][1] != "latency" or record["result"]["extra"].get("latency_ms") == latency_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--rows", type=int, nargs="+", help="row counts (default 100000 1000000; --quick: 100000)")
    parser.add_argument("--repeats", type=int, help="repeats per contender (default 5 at ≤100k rows, 3 above)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"contenders to run: {', '.join(BY_NAME)}")
    parser.add_argument("--modes", nargs="+", choices=MODES,
                        help="source modes (default tracker prebuilt; frames is issue 12's and latency issue 13's, "
                             "run when asked for, or when --only names a contender that runs only there)")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="the latency mode: how long the proxy holds each request (default 20)")  # fmt: skip
    parser.add_argument("--targets", nargs="+", default=["s3", "local"], choices=["s3", "local"])
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "csvpublish-bench",
                        help="cache of the generated table and scratch space")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.md",
                        help="the report; every measurement also goes to the same name with .jsonl")  # fmt: skip
    parser.add_argument("--resume", action="store_true",
                        help="keep the measurements already in the .jsonl and take only the missing ones")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = run_child(Spec(**json.loads(args.child)))
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    rows_list = args.rows or ([100_000] if args.quick else [100_000, 1_000_000])
    only = set(args.only) if args.only else None
    if only and (unknown := only - set(BY_NAME)):
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    if args.modes is None:
        args.modes = list(DEFAULT_MODES)
        elsewhere = [BY_NAME[name].modes for name in only or () if not set(BY_NAME[name].modes) & set(DEFAULT_MODES)]
        args.modes += [m for m in MODES if any(m in modes for modes in elsewhere)]  # where they alone run
    command = "python benchmarks/bench.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    cases = build_cases(rows_list, only, [m for m in args.modes if m != "latency"], args.targets)
    if "latency" in args.modes:  # always the same small table, whatever --rows says
        cases += build_cases([LATENCY_ROWS], only, ["latency"], args.targets)
    if not cases:
        parser.error("no contender runs in these modes and targets (the frames and latency modes run on s3 only)")
    measured_rows = sorted({c.rows for c in cases})
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fingerprint = library_fingerprint()
    print(f"# preparing the table ({max(measured_rows):,} rows, seed {args.seed}) in {args.workdir}", flush=True)
    db = ensure_db(args.workdir, args.seed, max(measured_rows))
    fixtures = {rows: ensure_fixture(args.workdir, args.seed, db, rows) for rows in measured_rows}
    for rows, fx in fixtures.items():
        print(f"#   {rows:,} rows: CSV {fx.csv_size / MB:.1f} MB ({fx.csv_size / rows:.0f} B/row), "
              f".csv.gz {fx.gz_size / MB:.1f} MB", flush=True)  # fmt: skip
    if any(c.mode == "frames" for c in cases):
        print("#   the frames mode's sources: a flat SQLite table and an Arrow IPC stream", flush=True)
        framed = {c.rows for c in cases if c.mode == "frames"}
        fixtures = {rows: ensure_frame_sources(fx) if rows in framed else fx for rows, fx in fixtures.items()}
    wanted = {c.key for c in cases}
    log_path = args.out.with_suffix(".jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[Any, list[Result]] = {}
    sessions: list[dict[str, Any]] = []
    if args.resume and log_path.exists():
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if "session" in record:
                sessions.append(record["session"])
            elif tuple(record["key"]) in wanted and same_delay(record, args.latency_ms):
                results.setdefault(tuple(record["key"]), []).append(Result(**record["result"]))
        print(f"# resuming: {sum(map(len, results.values()))} measurements kept from {log_path}", flush=True)
    elif log_path.exists():
        log_path.unlink()
    session = {"command": command, "library": fingerprint, "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    sessions.append(session)
    with open(log_path, "a") as log:
        log.write(json.dumps({"session": session}) + "\n")

    server = S3Server() if any(c.target == "s3" for c in cases) else None
    proxy = DelayProxy(server.endpoint, args.latency_ms) if server and "latency" in args.modes else None
    workroot = Path(tempfile.mkdtemp(prefix="scratch-", dir=args.workdir))
    try:
        for rows in measured_rows:
            batch = [c for c in cases if c.rows == rows]
            repeats = args.repeats or (5 if rows <= 100_000 else 3)
            for rep in range(repeats):
                shift = rep % max(len(batch), 1)
                for case in batch[shift:] + batch[:shift]:  # round-robin, a different start each round
                    done = results.setdefault(case.key, [])
                    if len(done) > rep:
                        continue  # measured by an earlier, interrupted session
                    verify = not any(r.output_ok is not None for r in done)
                    result = run_case(case, fixtures[rows], server, workroot, verify=verify, proxy=proxy)
                    result.library = library_fingerprint().rsplit("sha256 ", 1)[-1].rstrip(")")
                    done.append(result)
                    with open(log_path, "a") as log:
                        log.write(json.dumps({"key": list(case.key), "result": asdict(result)}) + "\n")
                    up = f", sent {result.uploaded / MB:.1f} MB" if result.uploaded is not None else ""
                    wall = f"{result.wall:.3f}" if case.mode == "latency" else f"{result.wall:.2f}"
                    if seen := result.extra.get("proxy"):
                        up += f", {seen['requests']} requests in the clock, depth {seen['depth']}"
                    print(f"# [{rows:,} {case.mode} {case.target} {rep + 1}/{repeats}] {case.contender.name}: "
                          f"{wall} s, peak RSS {result.peak_rss / MB:.0f} MB{up}", flush=True)  # fmt: skip
    finally:
        if proxy:
            proxy.stop()
        if server:
            server.stop()
        shutil.rmtree(workroot, ignore_errors=True)

    lines = ["# csvpublish benchmark", "", f"Command: `{command}`", "", "Machine:", "", *machine(), ""]
    lines.append("Data: " + "; ".join(
        f"{rows:,} rows = {fx.csv_size / MB:.1f} MB of CSV, {fx.gz_size / MB:.1f} MB gzipped (isal -1)"
        for rows, fx in fixtures.items()) + f" (seed {args.seed}).")  # fmt: skip
    lines += [
        "",
        "Wall time is the median over the repeats (each in a fresh process, contenders interleaved). "
        "Peak RSS is the process's high-water mark while the clock ran (median), prebuilt rows included. "
        "Uploaded MB counts the request bodies the S3 server received (a server-side copy sends none). "
        "CPU s (frames tables): the contender's process, every thread, plus the moto server's, while the clock ran "
        "(medians; 2 cores give at most twice the wall). "
        "ᶠ floors touch no storage and are the same rows in both tables of a source mode. "
        "output ✓: the published .csv.gz (and the local CSV, where written) decompress to the expected CSV bytes. "
        "In the frames tables, bytes = fixture: the .csv.gz decompresses to the fixture CSV's bytes; "
        "rows = fixture: the csv module reads the same rows from both (peers keep their own quoting and line ends).",
        "",
    ]
    for rows in measured_rows:
        for mode in args.modes:
            if mode == "latency":
                lines += latency_table(rows, cases, results, BASELINE["latency"])
                continue
            for target in args.targets:
                lines += table(rows, mode, target, cases, results)
    lines += target_sections(results, rows_list, cases)
    lines += ["", f"Time of this session: {(time.monotonic() - started) / 60:.1f} min."]
    if len(sessions) > 1:
        lines.append(f"Measurements from {len(sessions)} sessions (resumed with --resume):")
        lines += [f"- {x['started']}: `{x['command']}` on {x['library']}" for x in sessions]
    versions = sorted({r.library for rs in results.values() for r in rs if r.library})
    if len(versions) > 1:
        lines.append(
            f"WARNING: csvpublish's sources changed during the measurements (source hashes {', '.join(versions)})."
        )
    lines.append("")
    text = "\n".join(lines)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"(written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
