"""Credentials given in storage options never show: not in reprs, log records at DEBUG, or exception text.

Every credential option carries a sentinel. Log records are captured at DEBUG
for every logger, from the client libraries too (botocore prints request
headers at DEBUG); only the in-process S3 server's own loggers (moto,
werkzeug) are left out, as they stand for the remote service.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

import fsspec
import pytest
from botocore.exceptions import ClientError

from csvpublish import CsvPublishError, Publisher, RetryPolicy, Storage, StorageNotFoundError

from .conftest import make_s3_bucket, s3_options
from .faults import Faults, faulty_s3
from .servers import AZURITE_KEY

SERVER_LOGGERS = ("moto", "werkzeug")


@pytest.fixture
def sentinel() -> str:
    return f"sentinel{uuid.uuid4().hex}"


@pytest.fixture
def options(s3_endpoint: str, sentinel: str) -> dict[str, Any]:
    """S3 options whose access key id, secret key and session token all carry the sentinel (moto accepts any)."""
    return {**s3_options(s3_endpoint), "key": f"AKIA{sentinel}", "secret": sentinel, "token": f"tok{sentinel}"}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, captured."""
    caplog.set_level(logging.DEBUG)
    return caplog


def client_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """The message, arguments and traceback of every record not logged by the S3 server itself."""
    formatter = logging.Formatter("%(name)s %(message)s")
    out = []
    for record in caplog.records:
        if record.name.split(".")[0] in SERVER_LOGGERS:
            continue
        out.append(formatter.format(record))
        out.append(repr(record.args))
    return "\n".join(out)


def exception_text(exc: BaseException) -> str:
    """``str``, ``repr`` and the full traceback, chained causes included."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def assert_hidden(sentinel: str, *texts: str) -> None:
    for text in texts:
        assert sentinel not in text


async def test_a_successful_publish_shows_no_credential(
    s3_endpoint: str, options: dict[str, Any], sentinel: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Publishing, listing, verifying, restoring, pruning and cleaning up show no credential in reprs or DEBUG logs."""
    bucket = make_s3_bucket(s3_endpoint)
    storage = Storage(f"s3://{bucket}/meta", **options)
    publisher = Publisher(f"s3://{bucket}/meta", name="books", storage_options=options, keep=1)
    first = await publisher.publish([{"Barcode": "1", "Title": "Dune"}])
    second = await publisher.publish([{"Barcode": "2", "Title": "Emma"}])
    shown = [
        storage,
        publisher,
        publisher.storage,
        first,
        second,
        await publisher.versions(),
        await publisher.verify(),
        await publisher.restore(second.version),
        await publisher.prune(1),
        await publisher.cleanup(),
        await publisher.latest(),
    ]
    assert sum(r.name.startswith("botocore") for r in debug_logs.records) > 0  # the client libraries did log at DEBUG
    assert_hidden(sentinel, *(repr(obj) for obj in shown), *(str(obj) for obj in shown), client_log_text(debug_logs))


async def test_a_publish_to_a_missing_bucket_shows_no_credential(
    options: dict[str, Any], sentinel: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A failing publish (no such bucket) names the bucket, not the credentials, in its error and logs."""
    publisher = Publisher("s3://no-such-bucket-secrets/meta", name="books", storage_options=options)
    with pytest.raises(StorageNotFoundError) as caught:
        await publisher.publish([{"Barcode": "1"}])
    assert "no-such-bucket-secrets" in str(caught.value)
    assert_hidden(sentinel, exception_text(caught.value), repr(publisher), client_log_text(debug_logs))


async def test_a_failure_inside_a_publish_shows_no_credential(
    s3_endpoint: str, options: dict[str, Any], sentinel: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A backend error in the middle of a publish, and the retries before it, show no credential."""
    bucket = make_s3_bucket(s3_endpoint)
    faults = Faults().fail("copy", lambda: ClientError({"Error": {"Code": "SlowDown"}}, "CopyObject"), times=None)
    publisher = Publisher(
        Storage(faulty_s3(faults, **options), f"s3://{bucket}/meta", retry=RetryPolicy(attempts=2, initial=0.01)),
        name="books",
    )
    with pytest.raises(CsvPublishError) as caught:
        await publisher.publish([{"Barcode": "1"}])
    assert any("retrying" in record.getMessage() for record in debug_logs.records)
    assert_hidden(sentinel, exception_text(caught.value), repr(publisher), client_log_text(debug_logs))


def test_unreachable_endpoint_error_shows_no_credential(sentinel: str, debug_logs: pytest.LogCaptureFixture) -> None:
    """Connection refused by the endpoint is a StorageError naming the endpoint, never the credentials."""
    options = {
        "key": f"AKIA{sentinel}",
        "secret": sentinel,
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        "skip_instance_cache": True,
    }
    publisher = Publisher("s3://bucket/meta", name="books", storage_options=options)
    with pytest.raises(CsvPublishError) as caught:
        publisher.publish_sync([{"Barcode": "1"}])
    assert_hidden(sentinel, exception_text(caught.value), client_log_text(debug_logs))


def test_a_filesystem_built_by_the_caller_is_not_shown(options: dict[str, Any], sentinel: str) -> None:
    """Storage(fs, root) and its Publisher show the root, never the filesystem's options."""
    fs = fsspec.filesystem("s3", **options)
    storage = Storage(fs, "bucket/meta")
    assert repr(storage) == "Storage('s3://bucket/meta')"
    assert_hidden(sentinel, repr(storage), repr(Publisher(storage, name="books")))


async def test_an_azure_publish_shows_no_account_key(
    make_destination: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    """On Azure (Azurite) the account key in the connection string shows in no repr, result or DEBUG log."""
    destination = make_destination("azure")
    publisher = Publisher(destination.url, name="books", storage_options=destination.options, keep=1)
    first = await publisher.publish([{"Barcode": "1", "Title": "Dune"}])
    second = await publisher.publish([{"Barcode": "2", "Title": "Emma"}])
    shown = [publisher, publisher.storage, first, second, await publisher.versions(), await publisher.verify()]
    shown += [await publisher.cleanup()]
    assert sum(r.name.startswith("azure") for r in debug_logs.records) > 0  # azure-core did log at DEBUG
    for secret in (AZURITE_KEY, destination.options["connection_string"]):
        assert_hidden(secret, *(repr(obj) for obj in shown), *(str(obj) for obj in shown), client_log_text(debug_logs))
