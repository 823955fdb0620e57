"""Backend errors, built as each client library raises them, read into csvpublish errors by each backend's table."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from gcsfs.retry import HttpError
from s3fs.errors import translate_boto_error

from csvpublish.errors import (
    AccessDeniedError,
    InputError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
)
from csvpublish.storage.azure import AzureBackend
from csvpublish.storage.backend import Backend
from csvpublish.storage.filesystem import FilesystemBackend, MemoryBackend
from csvpublish.storage.gcs import GCSBackend
from csvpublish.storage.local import LocalBackend
from csvpublish.storage.objectstore import ObjectStoreBackend
from csvpublish.storage.s3 import S3Backend
from csvpublish.storage.translate import GENERIC, ErrorCodes, is_precondition_failure, is_transient, translate

from .faults import azure_error, gcsfs_error

WHAT = "s3://bucket/key"
ENDPOINT = "http://127.0.0.1:9"

BACKEND_CLASSES: dict[str, type[Backend]] = {
    "local": LocalBackend,
    "memory": MemoryBackend,
    "filesystem": FilesystemBackend,
    "objectstore": ObjectStoreBackend,
    "s3": S3Backend,
    "gcs": GCSBackend,
    "azure": AzureBackend,
}


def client_error(code: str | None, status: int, operation: str = "PutObject") -> ClientError:
    """A ClientError as botocore builds it from a parsed S3 error response (``code=None``: no Error.Code)."""
    error: dict[str, Any] = {"Message": f"the service said {code or status}"}
    if code is not None:
        error["Code"] = code
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` as caught after ``raise outer from inner`` (cause and context set by the interpreter)."""
    try:
        try:
            raise inner
        except BaseException as caught:
            raise outer from caught
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


def s3fs_error(code: str, status: int) -> BaseException:
    """What s3fs raises for a ClientError: ``translate_boto_error``'s OSError, raised from the ClientError."""
    boto = client_error(code, status)
    return raised_from(translate_boto_error(boto), boto)


def aws_if_none_match_failed() -> BaseException:
    """AWS's 412 to a conditional create names its condition: s3fs then raises FileExistsError itself."""
    boto = ClientError(
        {
            "Error": {
                "Code": "PreconditionFailed",
                "Message": "At least one of the pre-conditions you specified did not hold",
                "Condition": "If-None-Match",
            },
            "ResponseMetadata": {"HTTPStatusCode": 412},
        },
        "PutObject",
    )
    return raised_from(translate_boto_error(boto), boto)


def connector_error() -> aiohttp.ClientConnectorError:
    """aiohttp's refused connection, as gcsfs's session raises it for an endpoint nobody listens on."""
    key = ConnectionKey(
        host="127.0.0.1", port=9, is_ssl=False, ssl=True, proxy=None, proxy_auth=None, proxy_headers_hash=None
    )
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"))


# Python's own exceptions: the same verdict on every backend.
PYTHON_CASES: list[tuple[str, Callable[[], BaseException], type[BaseException], str]] = [
    ("PermissionError", lambda: PermissionError(13, "Permission denied"), AccessDeniedError, "access denied"),
    ("FileNotFoundError", lambda: FileNotFoundError(2, "No such file"), StorageNotFoundError, "not found"),
    (
        "ConnectionResetError",
        lambda: ConnectionResetError(104, "Connection reset by peer"),
        TransientStorageError,
        "temporary error",
    ),
    ("TimeoutError", TimeoutError, TransientStorageError, "temporary error (TimeoutError)"),
    (
        "ETIMEDOUT",
        lambda: OSError(errno.ETIMEDOUT, "Connection timed out"),
        TransientStorageError,
        "Connection timed out",
    ),
    ("EPIPE", lambda: OSError(errno.EPIPE, "Broken pipe"), TransientStorageError, "Broken pipe"),
    (
        "ConnectionRefusedError",
        lambda: ConnectionRefusedError(111, "Connection refused"),
        StorageError,
        "cannot reach the storage endpoint",
    ),
    ("ENOSPC", lambda: OSError(errno.ENOSPC, "No space left on device"), StorageError, "No space left on device"),
]

S3_ROWS = [
    pytest.param(
        S3Backend,
        client_error("NoSuchBucket", 404),
        StorageNotFoundError,
        "bucket does not exist",
        id="s3-NoSuchBucket",
    ),
    pytest.param(S3Backend, client_error("NoSuchKey", 404), StorageNotFoundError, "not found", id="s3-NoSuchKey"),
    pytest.param(
        S3Backend, client_error("AccessDenied", 403), AccessDeniedError, "access denied", id="s3-AccessDenied"
    ),
    pytest.param(
        S3Backend,
        client_error("InvalidAccessKeyId", 403),
        AccessDeniedError,
        "check the credentials",
        id="s3-InvalidAccessKeyId",
    ),
    pytest.param(
        S3Backend,
        client_error("SignatureDoesNotMatch", 403),
        AccessDeniedError,
        "access denied",
        id="s3-SignatureDoesNotMatch",
    ),
    pytest.param(S3Backend, client_error("SlowDown", 503), TransientStorageError, "(SlowDown)", id="s3-SlowDown"),
    pytest.param(
        S3Backend, client_error("InternalError", 500), TransientStorageError, "temporary error", id="s3-InternalError"
    ),
    pytest.param(
        S3Backend,
        client_error("ServiceUnavailable", 503),
        TransientStorageError,
        "try again later",
        id="s3-ServiceUnavailable",
    ),
    pytest.param(
        S3Backend, client_error("RequestTimeout", 400), TransientStorageError, "temporary error", id="s3-RequestTimeout"
    ),
    pytest.param(S3Backend, client_error("PreconditionFailed", 412), FileExistsError, WHAT, id="s3-PreconditionFailed"),
    pytest.param(S3Backend, client_error(None, 503), TransientStorageError, "temporary error", id="s3-no-code-503"),
    pytest.param(S3Backend, client_error("", 503), TransientStorageError, "temporary error", id="s3-empty-code-503"),
    pytest.param(
        S3Backend,
        EndpointConnectionError(endpoint_url=ENDPOINT),
        StorageError,
        "cannot reach the storage endpoint",
        id="s3-EndpointConnectionError",
    ),
    pytest.param(
        S3Backend,
        ConnectionClosedError(endpoint_url=ENDPOINT),
        TransientStorageError,
        "ConnectionClosedError",
        id="s3-ConnectionClosedError",
    ),
    pytest.param(
        S3Backend,
        ReadTimeoutError(endpoint_url=ENDPOINT),
        TransientStorageError,
        "Read timeout",
        id="s3-ReadTimeoutError",
    ),
    # s3fs raises its own OSError subclasses from the ClientError; the code is read from the cause
    pytest.param(
        S3Backend,
        s3fs_error("NoSuchBucket", 404),
        StorageNotFoundError,
        "bucket does not exist",
        id="s3fs-NoSuchBucket",
    ),
    pytest.param(S3Backend, s3fs_error("NoSuchKey", 404), StorageNotFoundError, "not found", id="s3fs-NoSuchKey"),
    pytest.param(
        S3Backend, s3fs_error("AccessDenied", 403), AccessDeniedError, "access denied", id="s3fs-AccessDenied"
    ),
    pytest.param(S3Backend, s3fs_error("SlowDown", 503), TransientStorageError, "temporary error", id="s3fs-SlowDown"),
    pytest.param(S3Backend, s3fs_error("PreconditionFailed", 412), FileExistsError, WHAT, id="s3fs-PreconditionFailed"),
    # concurrent conditional writes to one key: 409 is "try again", 412 is "someone else's create won"
    pytest.param(
        S3Backend,
        client_error("ConditionalRequestConflict", 409),
        TransientStorageError,
        "temporary error",
        id="s3-409-ConditionalRequestConflict",
    ),
    pytest.param(
        S3Backend,
        s3fs_error("ConditionalRequestConflict", 409),
        TransientStorageError,
        "temporary error (OSError",
        id="s3fs-409-ConditionalRequestConflict",
    ),
    pytest.param(
        S3Backend, s3fs_error("OperationAborted", 409), TransientStorageError, "temporary error", id="s3fs-409-Aborted"
    ),
    pytest.param(S3Backend, client_error(None, 412), FileExistsError, WHAT, id="s3-412-no-code"),
    pytest.param(S3Backend, s3fs_error("", 412), FileExistsError, WHAT, id="s3fs-412-empty-code"),
    pytest.param(S3Backend, client_error(None, 409), StorageError, "the service said 409", id="s3-409-no-code"),
]


GCS_ROWS = [
    # as gcsfs itself raises them: some statuses arrive as other exceptions than HttpError
    pytest.param(GCSBackend, gcsfs_error(403), AccessDeniedError, "access denied", id="gcsfs-403-Forbidden"),
    pytest.param(GCSBackend, gcsfs_error(502), TransientStorageError, "temporary error", id="gcsfs-502-ProxyError"),
    pytest.param(GCSBackend, gcsfs_error(408), TransientStorageError, "temporary error", id="gcsfs-408"),
    pytest.param(GCSBackend, gcsfs_error(503), TransientStorageError, "temporary error", id="gcsfs-503"),
    pytest.param(GCSBackend, gcsfs_error(404), StorageNotFoundError, "not found", id="gcsfs-404"),
    pytest.param(
        GCSBackend,
        HttpError({"code": 503, "message": "Backend Error"}),
        TransientStorageError,
        "Backend Error, 503",
        id="gcs-503",
    ),
    pytest.param(
        GCSBackend,
        HttpError({"code": 429, "message": "rateLimitExceeded"}),
        TransientStorageError,
        "temporary error",
        id="gcs-429",
    ),
    pytest.param(
        GCSBackend, HttpError({"code": 403, "message": "Forbidden"}), AccessDeniedError, "access denied", id="gcs-403"
    ),
    pytest.param(
        GCSBackend,
        HttpError({"code": 404, "message": "No such object"}),
        StorageNotFoundError,
        "not found",
        id="gcs-404",
    ),
    pytest.param(
        GCSBackend, HttpError({"code": 412, "message": "Precondition Failed"}), FileExistsError, WHAT, id="gcs-412"
    ),
    pytest.param(
        GCSBackend,
        HttpError({"code": 400, "message": "conditionNotMet: the object exists"}),
        FileExistsError,
        WHAT,
        id="gcs-conditionNotMet",
    ),
    pytest.param(
        GCSBackend,
        HttpError({"code": 404, "message": "The specified bucket does not exist."}),
        StorageNotFoundError,
        "bucket does not exist",
        id="gcs-404-bucket",
    ),
    pytest.param(
        GCSBackend,
        aiohttp.ServerDisconnectedError(),
        TransientStorageError,
        "ServerDisconnectedError",
        id="gcs-ServerDisconnectedError",
    ),
    pytest.param(
        GCSBackend, connector_error(), StorageError, "cannot reach the storage endpoint", id="gcs-ClientConnectorError"
    ),
]


def azure_transport_error(outer: type[BaseException], inner: BaseException) -> BaseException:
    """azure-core's wrapper of an aiohttp error, raised from it as its aiohttp transport does."""
    return raised_from(outer(str(inner), error=inner), inner)


AZURE_ROWS = [
    # as azure-storage-blob raises them, from a canned HTTP answer (tests/faults.py's azure_error)
    pytest.param(
        AzureBackend, azure_error(404, "BlobNotFound"), StorageNotFoundError, "not found", id="az-BlobNotFound"
    ),
    pytest.param(
        AzureBackend,
        azure_error(404, "ContainerNotFound"),
        StorageNotFoundError,
        "bucket does not exist",
        id="az-ContainerNotFound",
    ),
    pytest.param(AzureBackend, azure_error(404, None), StorageNotFoundError, "not found", id="az-404-no-code"),
    pytest.param(
        AzureBackend,
        azure_error(403, "AuthorizationPermissionMismatch"),
        AccessDeniedError,
        "access denied",
        id="az-AuthorizationPermissionMismatch",
    ),
    pytest.param(
        AzureBackend,
        azure_error(403, "AuthenticationFailed"),
        AccessDeniedError,
        "check the credentials",
        id="az-AuthenticationFailed",
    ),
    pytest.param(
        AzureBackend, azure_error(403, "AuthorizationFailure"), AccessDeniedError, "access denied", id="az-Failure"
    ),
    pytest.param(
        AzureBackend,
        ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"),
        AccessDeniedError,
        "access denied",
        id="az-ClientAuthenticationError-no-response",
    ),
    pytest.param(
        AzureBackend, azure_error(503, "ServerBusy"), TransientStorageError, "temporary error", id="az-ServerBusy"
    ),
    pytest.param(
        AzureBackend, azure_error(500, "InternalError"), TransientStorageError, "try again later", id="az-InternalError"
    ),
    pytest.param(
        AzureBackend,
        azure_error(500, "OperationTimedOut"),
        TransientStorageError,
        "temporary error",
        id="az-OperationTimedOut",
    ),
    pytest.param(AzureBackend, azure_error(429, None), TransientStorageError, "temporary error", id="az-429"),
    # an exclusive create that found the blob
    pytest.param(AzureBackend, azure_error(409, "BlobAlreadyExists"), FileExistsError, WHAT, id="az-BlobAlreadyExists"),
    pytest.param(AzureBackend, azure_error(412, "ConditionNotMet"), FileExistsError, WHAT, id="az-ConditionNotMet"),
    pytest.param(AzureBackend, azure_error(412, None), FileExistsError, WHAT, id="az-412-no-code"),
    pytest.param(
        AzureBackend, azure_error(409, "LeaseIdMissing"), StorageError, "ResourceExistsError", id="az-409-Lease"
    ),
    # adlfs's own wrappers, with the service's error as their cause
    pytest.param(
        AzureBackend,
        raised_from(RuntimeError("Failed to upload block: busy!"), azure_error(503, "ServerBusy")),
        TransientStorageError,
        "RuntimeError: Failed to upload block",
        id="adlfs-RuntimeError-from-ServerBusy",
    ),
    pytest.param(
        AzureBackend,
        raised_from(FileNotFoundError(2, "No such file or directory"), azure_error(404, "BlobNotFound")),
        StorageNotFoundError,
        "not found",
        id="adlfs-FileNotFoundError",
    ),
    # azure-core's transport errors
    pytest.param(
        AzureBackend,
        azure_transport_error(ServiceRequestError, connector_error()),
        StorageError,
        "cannot reach the storage endpoint",
        id="az-ServiceRequestError-refused",
    ),
    pytest.param(
        AzureBackend,
        azure_transport_error(ServiceResponseError, aiohttp.ServerDisconnectedError()),
        TransientStorageError,
        "temporary error (ServiceResponseError",
        id="az-ServiceResponseError-disconnected",
    ),
]

PYTHON_ROWS = [
    pytest.param(backend, make(), expected, fragment, id=f"{name}-{case}")
    for name, backend in BACKEND_CLASSES.items()
    for case, make, expected, fragment in PYTHON_CASES
]

# Each table is its own: a code one backend's library raises means nothing under another's.
LEAK_ROWS = [
    pytest.param(LocalBackend, client_error("SlowDown", 503), StorageError, "SlowDown", id="local-s3-SlowDown"),
    pytest.param(
        MemoryBackend, client_error("NoSuchBucket", 404), StorageError, "NoSuchBucket", id="memory-s3-NoSuchBucket"
    ),
    pytest.param(
        LocalBackend, client_error("AccessDenied", 403), StorageError, "AccessDenied", id="local-s3-AccessDenied"
    ),
    pytest.param(
        LocalBackend,
        HttpError({"code": 503, "message": "Backend Error"}),
        StorageError,
        "Backend Error",
        id="local-gcs-503",
    ),
    pytest.param(
        LocalBackend,
        HttpError({"code": 412, "message": "Precondition Failed"}),
        StorageError,
        "Precondition Failed",
        id="local-gcs-412",
    ),
    pytest.param(
        ObjectStoreBackend, client_error("SlowDown", 503), StorageError, "SlowDown", id="objectstore-s3-SlowDown"
    ),
    pytest.param(GCSBackend, client_error("SlowDown", 503), StorageError, "SlowDown", id="gcs-s3-SlowDown"),
    pytest.param(GCSBackend, client_error("AccessDenied", 403), StorageError, "AccessDenied", id="gcs-s3-AccessDenied"),
    pytest.param(AzureBackend, client_error("SlowDown", 503), StorageError, "SlowDown", id="az-s3-SlowDown"),
    pytest.param(S3Backend, azure_error(503, "ServerBusy"), StorageError, "HttpResponseError", id="s3-az-ServerBusy"),
    pytest.param(
        LocalBackend, azure_error(409, "BlobAlreadyExists"), StorageError, "ResourceExistsError", id="local-az-exists"
    ),
    pytest.param(
        S3Backend, HttpError({"code": 503, "message": "Backend Error"}), StorageError, "Backend Error", id="s3-gcs-503"
    ),
    pytest.param(
        GCSBackend,
        ConnectionClosedError(endpoint_url=ENDPOINT),
        StorageError,
        "ConnectionClosedError",
        id="gcs-botocore-ConnectionClosedError",
    ),
    pytest.param(
        LocalBackend,
        EndpointConnectionError(endpoint_url=ENDPOINT),
        StorageError,
        "EndpointConnectionError",
        id="local-botocore-EndpointConnectionError",
    ),
]

CHAINED_ROWS = [
    pytest.param(
        LocalBackend,
        raised_from(OSError("write failed"), TransientStorageError("gave up")),
        TransientStorageError,
        "temporary error",
        id="local-OSError-from-TransientStorageError",
    ),
    pytest.param(
        ObjectStoreBackend,
        raised_from(OSError("upload failed"), FileExistsError("/b/o")),
        FileExistsError,
        WHAT,
        id="objectstore-OSError-from-FileExistsError",
    ),
    pytest.param(
        GCSBackend,
        raised_from(RuntimeError("upload failed"), HttpError({"code": 503, "message": "Backend Error"})),
        TransientStorageError,
        "RuntimeError: upload failed",
        id="gcs-RuntimeError-from-503",
    ),
]


@pytest.mark.parametrize(
    ("backend", "exc", "expected", "fragment"),
    [*S3_ROWS, *GCS_ROWS, *AZURE_ROWS, *PYTHON_ROWS, *LEAK_ROWS, *CHAINED_ROWS],
)
def test_translate(backend: type[Backend], exc: BaseException, expected: type[BaseException], fragment: str) -> None:
    """Each backend error becomes exactly the csvpublish error its backend's table says, its message led by ``what``."""
    result = translate(exc, WHAT, backend.errors)

    assert type(result) is expected, f"{type(exc).__name__}: {exc} -> {type(result).__name__}: {result}"
    assert str(result).startswith(WHAT)
    assert fragment in str(result)


UNCHANGED_CASES: list[tuple[str, Callable[[], BaseException]]] = [
    ("FileExistsError", lambda: FileExistsError(17, "File exists")),
    ("TypeError", lambda: TypeError("unsupported operand")),
]

UNCHANGED_ROWS = [
    *(
        pytest.param(backend, make(), id=f"{name}-{case}")
        for name, backend in BACKEND_CLASSES.items()
        for case, make in UNCHANGED_CASES
    ),
    pytest.param(S3Backend, StorageError("s3://bucket/key: already said"), id="s3-StorageError"),
    pytest.param(S3Backend, TransientStorageError("s3://bucket/key: gave up"), id="s3-TransientStorageError"),
    pytest.param(GCSBackend, AccessDeniedError("gs://bucket/key: access denied"), id="gcs-AccessDeniedError"),
    pytest.param(LocalBackend, StorageNotFoundError("/out: not found"), id="local-StorageNotFoundError"),
    pytest.param(MemoryBackend, InputError("bad name"), id="memory-InputError"),
    pytest.param(ObjectStoreBackend, asyncio.CancelledError(), id="objectstore-CancelledError"),
    pytest.param(LocalBackend, KeyboardInterrupt(), id="local-KeyboardInterrupt"),
]


@pytest.mark.parametrize(("backend", "exc"), UNCHANGED_ROWS)
def test_translate_returns_unchanged(backend: type[Backend], exc: BaseException) -> None:
    """Programming errors, a lost conditional create, csvpublish errors and non-Exceptions come back as they are."""
    assert translate(exc, WHAT, backend.errors) is exc


@pytest.mark.parametrize(
    ("exc", "table", "expected"),
    [
        pytest.param(TimeoutError(), GENERIC, True, id="TimeoutError"),
        pytest.param(asyncio.TimeoutError(), GENERIC, True, id="asyncio-TimeoutError"),
        pytest.param(ConnectionResetError(104, "reset"), GENERIC, True, id="ConnectionResetError"),
        pytest.param(OSError(errno.EAGAIN, "try again"), GENERIC, True, id="EAGAIN"),
        pytest.param(OSError(errno.EBUSY, "busy"), GENERIC, True, id="EBUSY"),
        pytest.param(ConnectionRefusedError(111, "refused"), GENERIC, False, id="ConnectionRefusedError"),
        pytest.param(ConnectionRefusedError(111, "refused"), S3Backend.errors, False, id="s3-ConnectionRefusedError"),
        pytest.param(OSError(errno.ENOSPC, "full"), GENERIC, False, id="ENOSPC"),
        pytest.param(PermissionError(13, "denied"), GENERIC, False, id="PermissionError"),
        pytest.param(client_error("SlowDown", 503), S3Backend.errors, True, id="s3-SlowDown"),
        pytest.param(client_error("SlowDown", 503), GENERIC, False, id="generic-s3-SlowDown"),
        pytest.param(client_error("NoSuchKey", 404), S3Backend.errors, False, id="s3-NoSuchKey"),
        pytest.param(s3fs_error("InternalError", 500), S3Backend.errors, True, id="s3fs-InternalError"),
        pytest.param(
            s3fs_error("ConditionalRequestConflict", 409), S3Backend.errors, True, id="s3fs-ConditionalRequestConflict"
        ),
        pytest.param(s3fs_error("PreconditionFailed", 412), S3Backend.errors, False, id="s3fs-PreconditionFailed"),
        pytest.param(
            client_error("ConditionalRequestConflict", 409), GCSBackend.errors, False, id="gcs-s3-409-Conflict"
        ),
        pytest.param(
            EndpointConnectionError(endpoint_url=ENDPOINT), S3Backend.errors, False, id="s3-EndpointConnectionError"
        ),
        pytest.param(HttpError({"code": 503, "message": "x"}), GCSBackend.errors, True, id="gcs-503"),
        pytest.param(HttpError({"code": 503, "message": "x"}), GENERIC, False, id="generic-gcs-503"),
        pytest.param(HttpError({"code": 404, "message": "x"}), GCSBackend.errors, False, id="gcs-404"),
        pytest.param(connector_error(), GCSBackend.errors, False, id="gcs-ClientConnectorError"),
        pytest.param(azure_error(503, "ServerBusy"), AzureBackend.errors, True, id="az-ServerBusy"),
        pytest.param(azure_error(503, "ServerBusy"), GENERIC, False, id="generic-az-ServerBusy"),
        pytest.param(azure_error(404, "BlobNotFound"), AzureBackend.errors, False, id="az-BlobNotFound"),
        pytest.param(
            azure_transport_error(ServiceRequestError, connector_error()), AzureBackend.errors, False, id="az-refused"
        ),
        pytest.param(TransientStorageError("gave up"), GENERIC, True, id="TransientStorageError"),
        pytest.param(
            raised_from(OSError("wrapped"), TransientStorageError("gave up")),
            GENERIC,
            True,
            id="OSError-from-TransientStorageError",
        ),
        pytest.param(StorageError("not transient"), GENERIC, False, id="StorageError"),
        pytest.param(
            raised_from(StorageError("decided"), TimeoutError()), GENERIC, False, id="StorageError-from-TimeoutError"
        ),
    ],
)
def test_is_transient(exc: BaseException, table: ErrorCodes, expected: bool) -> None:
    """Throttling, 5xx and dropped or timed-out connections are transient; refused connections and verdicts are not."""
    assert is_transient(exc, table) is expected


@pytest.mark.parametrize(
    ("exc", "table", "expected"),
    [
        pytest.param(FileExistsError(17, "File exists"), GENERIC, True, id="FileExistsError"),
        pytest.param(
            raised_from(OSError("upload"), FileExistsError("/b/o")), GENERIC, True, id="OSError-from-FileExistsError"
        ),
        pytest.param(client_error("PreconditionFailed", 412), S3Backend.errors, True, id="s3-PreconditionFailed"),
        pytest.param(client_error(None, 412), S3Backend.errors, True, id="s3-no-code-412"),
        pytest.param(aws_if_none_match_failed(), S3Backend.errors, True, id="s3fs-If-None-Match-FileExistsError"),
        pytest.param(s3fs_error("PreconditionFailed", 412), S3Backend.errors, True, id="s3fs-412-no-condition"),
        pytest.param(
            s3fs_error("ConditionalRequestConflict", 409), S3Backend.errors, False, id="s3fs-409-is-no-verdict"
        ),
        pytest.param(client_error("PreconditionFailed", 412), GENERIC, False, id="generic-s3-PreconditionFailed"),
        pytest.param(HttpError({"code": 412, "message": "x"}), GCSBackend.errors, True, id="gcs-412"),
        pytest.param(
            HttpError({"code": 400, "message": "conditionNotMet"}), GCSBackend.errors, True, id="gcs-conditionNotMet"
        ),
        pytest.param(
            HttpError({"code": 400, "message": "conditionNotMet"}), S3Backend.errors, False, id="s3-gcs-conditionNotMet"
        ),
        pytest.param(HttpError({"code": 412, "message": "x"}), GENERIC, False, id="generic-gcs-412"),
        pytest.param(azure_error(409, "BlobAlreadyExists"), AzureBackend.errors, True, id="az-BlobAlreadyExists"),
        pytest.param(azure_error(412, "ConditionNotMet"), AzureBackend.errors, True, id="az-ConditionNotMet"),
        pytest.param(azure_error(409, "BlobAlreadyExists"), S3Backend.errors, False, id="s3-az-BlobAlreadyExists"),
        pytest.param(azure_error(409, "LeaseIdMissing"), AzureBackend.errors, False, id="az-409-is-no-verdict"),
        pytest.param(OSError("s3://bucket/412/key: failed"), S3Backend.errors, False, id="s3-digits-in-message"),
        pytest.param(client_error("NoSuchKey", 404), S3Backend.errors, False, id="s3-NoSuchKey"),
        pytest.param(FileNotFoundError(2, "No such file"), GENERIC, False, id="FileNotFoundError"),
    ],
)
def test_is_precondition_failure(exc: BaseException, table: ErrorCodes, expected: bool) -> None:
    """A conditional create that found the object is told by its error code or FileExistsError, never by digits."""
    assert is_precondition_failure(exc, table) is expected
