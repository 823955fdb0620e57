"""The ``csvpublish`` command, run as a user runs it: a subprocess against a temp folder and the S3 server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fsspec
import pytest

import csvpublish

from .conftest import make_s3_bucket, s3_options

COMMAND = [sys.executable, "-m", "csvpublish"]
SCRIPT = Path(sys.executable).parent / "csvpublish"
SUBCOMMANDS = ["publish", "versions", "verify", "get", "show", "diff", "restore", "cleanup", "url"]
SENTINEL = "SENTINEL-s3cr3t-9f2c41d7"
CSV = b'Barcode,Title\nB1,Dune\nB2,"Emma, a\nnovel"\nB3,Ulysses\n'  # 3 records, one spanning two lines
FAST_FAIL = ["--storage-option", 'config_kwargs={"retries": {"max_attempts": 1}}']  # botocore: no retries

Result = subprocess.CompletedProcess[str]


def run_many(
    commands: Sequence[Sequence[str]], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> list[Result]:
    """Run several ``csvpublish`` invocations at once (they are independent) and wait for all of them."""
    full_env = {**os.environ, **(env or {})}
    procs = [
        subprocess.Popen(
            [*COMMAND, *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    try:
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=60)
            results.append(subprocess.CompletedProcess([*COMMAND, *args], proc.returncode, out, err))
    finally:
        for proc in procs:  # after a timeout, leave no command running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def run(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Result:
    return run_many([args], cwd=cwd, env=env)[0]


def ok_json(result: Result) -> Any:
    """The one JSON object a successful ``--json`` run printed."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("csvpublish: error: "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def books(tmp_path: Path) -> Path:
    path = tmp_path / "books.csv"
    path.write_bytes(CSV)
    return path


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """What a user's shell sets to reach an S3-compatible endpoint: botocore reads AWS_ENDPOINT_URL."""
    return {"AWS_ENDPOINT_URL": s3_endpoint}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- entry points and help ---------------------------------------------------------------------


def test_both_entry_points_print_the_version() -> None:
    """``csvpublish --version`` and ``python -m csvpublish --version`` print the package version."""
    script = subprocess.Popen([SCRIPT, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (module,) = run_many([["--version"]])
    out, err = script.communicate(timeout=60)
    for code, stdout, stderr in ((script.returncode, out, err), (module.returncode, module.stdout, module.stderr)):
        assert code == 0, stderr
        assert stdout.strip() == f"csvpublish {csvpublish.__version__}"


def test_every_subcommand_help_shows_an_example() -> None:
    """Each subcommand's ``--help`` exits 0 and ends with an example of that subcommand."""
    results = run_many([[name, "--help"] for name in SUBCOMMANDS])
    for name, result in zip(SUBCOMMANDS, results, strict=True):
        assert result.returncode == 0, result.stderr
        example = re.split(r"^examples?:\n", result.stdout, maxsplit=1, flags=re.MULTILINE)[1]
        assert f"csvpublish {name} " in example


# --- local folder --------------------------------------------------------------------------------


def test_local_folder_publish_versions_verify_restore_cleanup_json(tmp_path: Path, books: Path) -> None:
    """Every subcommand's happy path on a local folder, each printing one JSON object that tells the truth."""
    dest = tmp_path / "published"
    first = ok_json(run("publish", str(books), str(dest), "--json"))
    assert first["record_count"] == 3
    assert first["columns"] == ["Barcode", "Title"]
    assert first["latest_uri"] == str(dest / "books_latest.csv.gz")
    assert gzip.decompress((dest / "books_latest.csv.gz").read_bytes()) == CSV
    assert Path(first["archive_uri"]).read_bytes() == (dest / "books_latest.csv.gz").read_bytes()

    books.write_bytes(CSV + b"B4,Walden\n")
    second = ok_json(run("publish", str(books), str(dest), "--name", "books", "--json"))
    assert second["record_count"] == 4
    assert second["version"] > first["version"]

    listed, latest, old = run_many(
        [
            ["versions", str(dest), "--name", "books", "--json"],
            ["verify", str(dest), "--name", "books", "--json"],
            ["verify", str(dest), "--name", "books", "--version", first["version"], "--json"],
        ]
    )
    listed_data = ok_json(listed)
    assert [v["version"] for v in listed_data["versions"]] == [second["version"], first["version"]]
    assert listed_data["latest"] == second["version"]
    assert [v["is_latest"] for v in listed_data["versions"]] == [True, False]
    assert [v["record_count"] for v in listed_data["versions"]] == [4, 3]
    latest_report, old_report = ok_json(latest), ok_json(old)
    assert latest_report["ok"] is True
    assert latest_report["problems"] == []
    assert latest_report["target"] == "latest"
    assert latest_report["version"] == second["version"]
    assert old_report["ok"] is True
    assert old_report["target"] == first["version"]

    restored = ok_json(run("restore", str(dest), first["version"], "--name", "books", "--json"))
    assert restored["version"] == first["version"]
    assert restored["record_count"] == 3
    assert gzip.decompress((dest / "books_latest.csv.gz").read_bytes()) == CSV

    leftover = dest / ".books_latest.csv.gz.999999999-0123456789ab.tmp"  # a temp file of a dead process
    leftover.write_bytes(b"partial")
    cleaned = ok_json(run("cleanup", str(dest), "--name", "books", "--json"))
    assert cleaned == {"removed": [str(leftover)], "aborted_uploads": []}
    assert not leftover.exists()


def test_text_output_goes_to_stdout_and_no_progress_bar_when_piped(tmp_path: Path, books: Path) -> None:
    """Without ``--json`` results are text on stdout; a piped stderr stays empty: no progress bar, no logs."""
    dest = tmp_path / "published"
    published = run("publish", str(books), str(dest))
    assert published.returncode == 0
    assert published.stderr == ""
    assert "published books: 3 records" in published.stdout
    assert f"latest:   {dest / 'books_latest.csv.gz'}" in published.stdout
    assert "archive:  " + str(dest / "timestamped" / "books_") in published.stdout

    listed, verified, quiet = run_many(
        [
            ["versions", str(dest), "--name", "books"],
            ["verify", str(dest), "--name", "books"],
            ["cleanup", str(dest), "--name", "books", "--quiet"],
        ]
    )
    for result in (listed, verified, quiet):
        assert result.returncode == 0
        assert result.stderr == ""
    header, row = listed.stdout.splitlines()
    assert header.split() == ["VERSION", "CREATED", "(UTC)", "SIZE", "RECORDS", "LATEST", "URI"]
    assert row.split()[-3:-1] == ["3", "*"]
    assert verified.stdout.startswith(f"ok: {dest / 'books_latest.csv.gz'} matches its manifest")
    assert quiet.stdout == ""


def test_verify_of_a_tampered_latest_exits_1_with_the_problems(tmp_path: Path, books: Path) -> None:
    """A latest whose bytes no longer match the manifest fails verify: exit 1, problems on stderr and in the JSON."""
    dest = tmp_path / "published"
    assert run("publish", str(books), str(dest), "--no-compress", "--json").returncode == 0
    (dest / "books_latest.csv").write_bytes(CSV.replace(b"Dune", b"Dusk"))

    text, as_json = run_many(
        [["verify", str(dest), "--name", "books"], ["verify", str(dest), "--name", "books", "--json"]]
    )
    line = assert_one_line_error(text)
    assert "sha256" in line
    assert str(dest / "books_latest.csv") in line
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["problems"]
    assert any("sha256" in p for p in report["problems"])


def test_failed_operations_exit_1_with_one_line(tmp_path: Path, books: Path) -> None:
    """A missing CSV, a refused snapshot, an unknown version or an empty destination: exit 1, one line, no traceback."""
    dest = tmp_path / "published"
    assert run("publish", str(books), str(dest)).returncode == 0
    missing, refused, unknown, nothing, no_folder = run_many(
        [
            ["publish", str(tmp_path / "nope.csv"), str(dest)],
            ["publish", str(books), str(dest), "--min-records", "10"],
            ["restore", str(dest), "20000101_000000", "--name", "books"],
            ["verify", str(dest), "--name", "other"],
            ["versions", str(tmp_path / "typo"), "--name", "books"],
        ]
    )
    assert "no such CSV file" in assert_one_line_error(missing)
    assert "fewer than min_records=10" in assert_one_line_error(refused)
    assert "20000101_000000" in assert_one_line_error(unknown)
    assert "nothing published" in assert_one_line_error(nothing)
    assert "no such folder" in assert_one_line_error(no_folder)
    assert not (tmp_path / "typo").exists()


def test_publish_options_skip_unchanged_and_keep(tmp_path: Path, books: Path) -> None:
    """``--skip-unchanged`` writes nothing for identical bytes, ``--keep`` prunes older archives."""
    dest = tmp_path / "published"
    first = ok_json(run("publish", str(books), str(dest), "--json"))
    same = ok_json(run("publish", str(books), str(dest), "--skip-unchanged", "--json"))
    assert same["skipped"] is True
    assert same["version"] == first["version"]
    books.write_bytes(CSV + b"B4,Walden\n")
    kept = ok_json(run("publish", str(books), str(dest), "--keep", "1", "--json"))
    assert kept["pruned"] == [first["version"]]
    assert [p.name for p in (dest / "timestamped").glob("*.csv.gz")] == [Path(kept["archive_uri"]).name]


BAD_USAGE = [
    [],
    ["versions", "dest"],
    ["publish", "books.csv", "dest", "--keep", "0"],
    ["publish", "books.csv", "dest", "--name", "a/b"],
    ["publish", "books.csv", "dest", "--storage-option", "no-equals-sign"],
    ["publish", "books.csv", "dest", "--endpoint-url", "http://127.0.0.1:9"],
    ["versions", "s3://bucket/x", "--name", "books", "--endpoint-url", "127.0.0.1:9000"],
    ["publish", "books.csv", "dest", "--delimiter", "x"],
]


def test_publish_a_tab_separated_file_without_a_header(tmp_path: Path) -> None:
    """--delimiter tab publishes .tsv.gz; --no-header counts every line; the manifest has the file's dialect."""
    path = tmp_path / "books.tsv"
    path.write_bytes(b'B1\tDune\nB2\t"Emma\tx"\n')
    dest = tmp_path / "dest"
    result = ok_json(run("publish", str(path), str(dest), "--delimiter", "tab", "--no-header", "--json"))
    assert result["latest_uri"].endswith("books_latest.tsv.gz")
    assert (result["record_count"], result["columns"]) == (2, [])
    assert gzip.decompress((dest / "books_latest.tsv.gz").read_bytes()) == path.read_bytes()
    manifest = json.loads((dest / "books_latest.manifest.json").read_text())
    assert manifest["dialect"]["delimiter"] == "\t"
    assert manifest["dialect"]["header"] is False
    assert manifest["dialect"]["lineTerminator"] == "\n"
    assert ok_json(run("verify", str(dest), "--name", "books", "--json"))["ok"]


def test_bad_usage_exits_2(tmp_path: Path, books: Path) -> None:
    """Wrong arguments exit 2 with argparse's usage line and an error, touching nothing."""
    for args, result in zip(BAD_USAGE, run_many(BAD_USAGE, cwd=tmp_path), strict=True):
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == "", args
        assert result.stderr.startswith("usage: csvpublish"), (args, result.stderr)
        assert "error: " in result.stderr.splitlines()[-1], (args, result.stderr)
    assert not (tmp_path / "dest").exists()


# --- get and show --------------------------------------------------------------------------------


def run_binary(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """A ``csvpublish`` run whose stdout is bytes (``get -o -``)."""
    command = [*COMMAND, *args]
    return subprocess.run(command, check=False, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)


def test_get_downloads_to_a_file_or_stdout_checked(tmp_path: Path, books: Path) -> None:
    """``get`` writes the latest (or a version) as stored or decompressed, to its own name, -o FILE or stdout."""
    dest, work = tmp_path / "published", tmp_path / "work"
    work.mkdir()
    first = ok_json(run("publish", str(books), str(dest), "--json"))
    stored = (dest / "books_latest.csv.gz").read_bytes()
    named, plain, old = run_many(
        [
            ["get", str(dest), "--name", "books"],
            ["get", str(dest), "--name", "books", "--decompress", "-o", "out/books.csv", "--json"],
            ["get", str(dest), "--name", "books", "--version", first["version"]],
        ],
        cwd=work,
    )
    piped, piped_gzip = (run_binary("get", str(dest), "--name", "books", *more, "-o", "-", cwd=work)
                         for more in (["--decompress"], []))  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert f"downloaded books version {first['version']} to {work / 'books_latest.csv.gz'}" in named.stdout
    assert (work / "books_latest.csv.gz").read_bytes() == stored
    result = ok_json(plain)
    assert (work / "out" / "books.csv").read_bytes() == CSV
    assert (result["path"], result["decompressed"], result["record_count"]) == (str(work / "out/books.csv"), True, 3)
    assert result["sha256"] == hashlib.sha256(CSV).hexdigest() == result["manifest"]["csv_sha256"]
    assert (piped.returncode, piped.stderr, piped.stdout) == (0, b"", CSV)
    assert (piped_gzip.returncode, piped_gzip.stderr, piped_gzip.stdout) == (0, b"", stored)
    assert old.returncode == 0, old.stderr
    assert (work / f"books_{first['version']}.csv.gz").read_bytes() == stored


def test_get_datapackage_writes_a_descriptor_that_frictionless_validates(tmp_path: Path, books: Path) -> None:
    """``get --decompress --datapackage`` leaves the CSV and ``books.datapackage.json`` describing it, valid."""
    import frictionless

    dest, work = tmp_path / "published", tmp_path / "work"
    work.mkdir()
    assert run("publish", str(books), str(dest)).returncode == 0
    got = run("get", str(dest), "--name", "books", "--decompress", "--datapackage", "-o", "books.csv", cwd=work)
    assert got.returncode == 0, got.stderr
    assert f"package:  {work / 'books.datapackage.json'}" in got.stdout
    assert frictionless.validate(str(work / "books.datapackage.json")).valid


def test_get_of_a_tampered_latest_exits_1_and_leaves_no_file(tmp_path: Path, books: Path) -> None:
    """A latest that does not match its manifest: exit 1 with one line and no file; on stdout, the line says discard."""
    dest, work = tmp_path / "published", tmp_path / "work"
    work.mkdir()
    assert run("publish", str(books), str(dest)).returncode == 0
    latest = dest / "books_latest.csv.gz"
    latest.write_bytes(latest.read_bytes()[:-4])
    to_file, both = run_many(
        [
            ["get", str(dest), "--name", "books", "-o", "books.csv.gz"],
            ["get", str(dest), "--name", "books", "-o", "-", "--json"],
        ],
        cwd=work,
    )
    to_stdout = run_binary("get", str(dest), "--name", "books", "-o", "-", cwd=work)
    assert "the manifest says" in assert_one_line_error(to_file)
    assert list(work.iterdir()) == []  # no file, no temp file
    assert to_stdout.returncode == 1
    assert to_stdout.stdout == latest.read_bytes()  # the bytes went out before the check could fail
    (line,) = to_stdout.stderr.decode().splitlines()
    assert line.startswith("csvpublish: error: ") and "the manifest says" in line and "discard them" in line
    assert both.returncode == 2 and both.stdout == ""


def test_show_prints_the_manifest(tmp_path: Path, books: Path) -> None:
    """``show --json`` prints the stored manifest itself; the text names the version, hashes and columns."""
    dest = tmp_path / "published"
    published = ok_json(run("publish", str(books), str(dest), "--json"))
    as_json, text, missing = run_many(
        [
            ["show", str(dest), "--name", "books", "--json"],
            ["show", str(dest), "--name", "books", "--version", published["version"]],
            ["show", str(dest), "--name", "books", "--version", "20000101_000000"],
        ]
    )
    assert ok_json(as_json) == json.loads((dest / "books_latest.manifest.json").read_bytes())
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"books version {published['version']}\n")
    assert f"sha256:       {published['sha256']}" in text.stdout
    assert "columns:      Barcode, Title" in text.stdout
    assert "no archived version" in assert_one_line_error(missing)


# --- S3 ------------------------------------------------------------------------------------------


def test_s3_publish_versions_verify_restore_cleanup_json(s3_endpoint: str, s3_env: dict[str, str], books: Path) -> None:
    """Every subcommand against the S3 server, by ``--endpoint-url`` or by environment; tampering fails verify."""
    bucket = make_s3_bucket(s3_endpoint)
    dest = f"s3://{bucket}/exports"
    fs = fsspec.filesystem("s3", **s3_options(s3_endpoint))
    first = ok_json(run("publish", str(books), dest, "--endpoint-url", s3_endpoint, "--json"))  # no AWS_ENDPOINT_URL
    assert first["latest_uri"] == f"{dest}/books_latest.csv.gz"
    assert first["archive_uri"] == f"{dest}/timestamped/books_{first['version']}.csv.gz"
    assert first["record_count"] == 3
    books.write_bytes(CSV + b"B4,Walden\n")
    second = ok_json(run("publish", str(books), dest, "--json", env=s3_env))
    assert second["version"] > first["version"]
    assert gzip.decompress(fs.cat_file(f"{bucket}/exports/books_latest.csv.gz")) == CSV + b"B4,Walden\n"

    verified, restored = run_many(
        [
            ["verify", dest, "--name", "books", "--json"],
            ["restore", dest, first["version"], "--name", "books", "--json"],
        ],
        env=s3_env,
    )
    assert ok_json(verified)["ok"] is True  # run alongside the restore: either latest verifies
    assert ok_json(restored)["version"] == first["version"]
    assert gzip.decompress(fs.cat_file(f"{bucket}/exports/books_latest.csv.gz")) == CSV

    fs.pipe_file(f"{bucket}/exports/timestamped/books_{second['version']}.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    listed, cleaned, tampered = run_many(
        [
            ["versions", dest, "--name", "books", "--json"],
            ["cleanup", dest, "--name", "books", "--json"],
            ["verify", dest, "--name", "books", "--version", second["version"], "--json"],
        ],
        env=s3_env,
    )
    listed_data = ok_json(listed)
    assert [v["version"] for v in listed_data["versions"]] == [second["version"], first["version"]]
    assert listed_data["latest"] == first["version"]
    assert listed_data["versions"][1]["uri"] == first["archive_uri"]
    assert ok_json(cleaned) == {"removed": [], "aborted_uploads": []}
    assert tampered.returncode == 1
    assert json.loads(tampered.stdout)["ok"] is False
    assert "sha256" in tampered.stderr


def test_url_prints_a_share_url_on_stdout_and_nowhere_else(s3_endpoint: str, books: Path) -> None:
    """``url`` prints one URL that downloads the latest (or a version); the logs of -vv never show it."""
    bucket = make_s3_bucket(s3_endpoint)
    dest = f"s3://{bucket}/exports"
    # an access key id long enough to be masked everywhere else: the URL carries it and must stay whole
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "AKIASHAREURLTEST0001"}
    published = ok_json(run("publish", str(books), dest, "--json", env=env))
    latest, version, quiet = run_many(
        [
            ["-vv", "url", dest, "--name", "books"],
            ["url", dest, "--name", "books", "--version", published["version"], "--expires", "600", "--json"],
            ["url", dest, "--name", "books", "--quiet"],
        ],
        env=env,
    )
    assert latest.returncode == 0, latest.stderr
    url = latest.stdout.strip()
    assert latest.stdout == url + "\n"
    assert parse_qs(urlsplit(url).query)["X-Amz-Credential"][0].startswith("AKIASHAREURLTEST0001/")
    with urllib.request.urlopen(url, timeout=30) as response:
        assert hashlib.sha256(response.read()).hexdigest() == published["sha256"]
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    assert "url s3://" in latest.stderr  # -vv logged the command...
    assert signature not in latest.stderr and "X-Amz" not in latest.stderr  # ...and not its URL
    shown = ok_json(version)
    assert (shown["version"], shown["expires"]) == (published["version"], 600)
    assert parse_qs(urlsplit(shown["url"]).query)["X-Amz-Expires"] == ["600"]
    assert f"timestamped/books_{published['version']}.csv.gz" in shown["url"]
    assert quiet.returncode == 0 and quiet.stdout.startswith("http://127.0.0.1:")


def test_url_of_a_folder_or_with_a_bad_expiry_fails(tmp_path: Path, books: Path) -> None:
    """A local folder cannot sign: exit 1 with one line; ``--expires 0`` is bad usage: exit 2."""
    dest = tmp_path / "published"
    assert run("publish", str(books), str(dest)).returncode == 0
    folder, zero = run_many(
        [["url", str(dest), "--name", "books"], ["url", str(dest), "--name", "books", "--expires", "0"]]
    )
    assert "cannot sign share URLs" in assert_one_line_error(folder)
    assert folder.stdout == ""
    assert zero.returncode == 2 and "--expires" in zero.stderr


def test_missing_bucket_exits_1_with_one_line(s3_env: dict[str, str], books: Path) -> None:
    """Publishing to, or listing, a bucket that does not exist fails with exit 1 and one line naming the bucket."""
    results = run_many(
        [
            ["publish", str(books), "s3://no-such-bucket-csvpublish/x"],
            ["versions", "s3://no-such-bucket-csvpublish/x", "--name", "books"],
        ],
        env=s3_env,
    )
    for result in results:
        line = assert_one_line_error(result)
        assert "s3://no-such-bucket-csvpublish" in line
        assert "bucket does not exist" in line


def test_unreachable_endpoint_exits_1_with_one_line(books: Path) -> None:
    """An endpoint where nothing listens fails fast with exit 1 and one line saying it cannot be reached."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run("publish", str(books), "s3://bucket/x", "--endpoint-url", endpoint, *FAST_FAIL)
    line = assert_one_line_error(result)
    assert line.startswith("csvpublish: error: s3://bucket: cannot reach the storage endpoint")
    assert "bucket does not exist" not in line


def test_a_secret_storage_option_never_appears_in_any_output(
    s3_endpoint: str, s3_env: dict[str, str], books: Path
) -> None:
    """A sentinel given with ``--storage-option`` is masked on success, on failure with --debug -v, in usage errors."""
    bucket = make_s3_bucket(s3_endpoint)
    secret = [
        "--storage-option",
        "key=testing",
        "--storage-option",
        f"secret={SENTINEL}",
        "--storage-option",
        f'client_kwargs={{"aws_session_token": "{SENTINEL}-token"}}',
    ]
    success, failure, typo = run_many(
        [
            ["-v", "publish", str(books), f"s3://{bucket}/x", *secret, "--json"],
            ["--debug", "-vv", "publish", str(books), "s3://no-such-bucket-csvpublish/x", *secret],
            ["publish", str(books), f"s3://{bucket}/x", "--storage-optoin", f"secret={SENTINEL}"],
        ],
        env=s3_env,
    )
    assert success.returncode == 0, success.stderr
    shown = "storage options {'key': '***', 'secret': '***', 'client_kwargs': {'aws_session_token': '***'}}"
    assert shown in success.stderr
    assert failure.returncode == 1
    assert "Traceback (most recent call last)" in failure.stderr  # --debug shows it
    assert failure.stderr.splitlines()[-1].startswith("csvpublish: error: s3://no-such-bucket-csvpublish")
    assert typo.returncode == 2
    assert "--storage-optoin secret=***" in typo.stderr
    for result in (success, failure, typo):
        assert SENTINEL not in result.stdout
        assert SENTINEL not in result.stderr


# --- progress bar ----------------------------------------------------------------------------------


def test_progress_bar_is_drawn_on_a_terminal(tmp_path: Path, books: Path) -> None:
    """Under a pseudo-terminal stderr shows tqdm bars for reading and uploading; stdout keeps only the result.

    The piped case (no bar) is ``test_text_output_goes_to_stdout_and_no_progress_bar_when_piped``.
    """
    fcntl = pytest.importorskip("fcntl")
    pty = pytest.importorskip("pty")
    termios = pytest.importorskip("termios")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(
            [*COMMAND, "publish", str(books), str(tmp_path / "tty")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        out, _ = proc.communicate(timeout=60)
        reader.join(10)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, terminal
    assert "read books.csv: 100%" in terminal
    assert "upload: " in terminal
    assert out.decode().startswith("published books: 3 records")
    assert "%|" not in out.decode()
