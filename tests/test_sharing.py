"""Share links: a signed URL downloads the latest or a version without credentials, and never shows in the logs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from csvpublish import InputError, Manifest, Storage, StorageNotFoundError, VersionNotFoundError

from .conftest import BACKENDS, backends, gcs_options
from .helpers import rows


def download(url: str) -> bytes:
    """What a reader without credentials gets: a plain GET of the URL."""
    assert url.startswith("http://127.0.0.1:"), "tests only ever reach this machine"
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("backend", backends("share_urls"))
async def test_a_share_url_downloads_the_latest_or_a_version(make_destination: Any, backend: str) -> None:
    """The URL of the latest and of each version (by identifier or VersionInfo) gives the bytes its manifest hashes."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(3, "a"))
    second = await publisher.publish(rows(5, "b"))
    latest = await publisher.latest()
    assert latest is not None and latest.version == second.version
    assert sha256(await asyncio.to_thread(download, await publisher.share_url())) == latest.sha256
    older = next(v for v in await publisher.versions() if v.version == first.version)
    for version in (first.version, older):
        url = await publisher.share_url(version, expires=600)
        manifest = Manifest.from_json(destination.read(f"timestamped/books_{first.version}.manifest.json"))
        assert sha256(await asyncio.to_thread(download, url)) == manifest.sha256 == first.sha256
    assert publisher.share_url_sync(second.version) != publisher.share_url_sync(first.version)


NO_EXPIRY_SERVER = pytest.param(
    None, marks=pytest.mark.skip(reason="no server of the capability table refuses an expired URL (moto checks none)")
)


@pytest.mark.parametrize("backend", backends("share_urls", "expired_urls_refused") or [NO_EXPIRY_SERVER])
async def test_an_expired_share_url_is_refused(make_destination: Any, backend: str) -> None:
    """A URL signed for one second downloads at once, and the server refuses it once that second is over."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(2))
    fresh, short = await publisher.share_url(expires=600), await publisher.share_url(expires=1)
    await asyncio.sleep(2.5)  # past the expiry, with room for a second of clock rounding
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(download, short)
    assert refused.value.code in {400, 401, 403}
    assert await asyncio.to_thread(download, fresh)  # the object is there: only the expiry was refused


async def test_s3_share_urls_are_sigv4_with_the_expiry_asked(make_destination: Any) -> None:
    """botocore would presign with SigV2 in us-east-1; the URL is SigV4 and lasts what ``expires`` says."""
    destination = make_destination("s3")
    publisher = destination.publisher()
    await publisher.publish(rows(2))
    query = parse_qs(urlsplit(await publisher.share_url(expires=604800)).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["604800"]
    assert "Signature" not in query and "AWSAccessKeyId" not in query


@pytest.mark.parametrize("expires", [0, -5, 1.5, "60", True, 604801])
async def test_a_bad_expiry_is_refused_before_any_request(make_destination: Any, expires: Any) -> None:
    """expires must be whole seconds, 1 or more, and at most SigV4's 7 days on S3."""
    destination = make_destination("s3")
    with pytest.raises(InputError, match="expires"):
        await destination.publisher().share_url(expires=expires)  # nothing is published: no request was needed


@pytest.mark.parametrize("backend", [name for name, b in BACKENDS.items() if not b.object_store])
async def test_a_folder_or_memory_cannot_sign(make_destination: Any, backend: str) -> None:
    """A destination that nothing can sign a URL for says so (an InputError), also for a blocking call."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(2))
    with pytest.raises(InputError, match="cannot sign share URLs; only object stores do"):
        await publisher.share_url()
    with pytest.raises(InputError, match="cannot sign share URLs"):
        await asyncio.to_thread(publisher.share_url_sync, expires=60)
    assert not destination.storage().capabilities.presigned_urls


async def test_gcs_with_anonymous_credentials_says_which_credentials_sign(make_destination: Any) -> None:
    """The suite's anonymous GCS credentials cannot sign: the error says a service account's key is needed."""
    destination = make_destination("gcs")
    publisher = destination.publisher()
    await publisher.publish(rows(2))
    with pytest.raises(InputError, match="service account's private key") as refused:
        await publisher.share_url()
    assert "(anonymous) have none" in str(refused.value) and "GOOGLE_APPLICATION_CREDENTIALS" in str(refused.value)


def _service_account() -> dict[str, str]:
    """A throwaway service-account key: signing needs only the private key, never Google's servers."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "test-key",
        "private_key": pem.decode(),
        "client_email": "signer@test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


async def test_gcs_signs_a_v4_url_with_a_service_account_key(
    gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a service account's key the URL is a V4 signed URL of the object at the endpoint, for ``expires`` seconds.

    fake-gcs-server serves signed URLs only at its public host, so the URL is checked, not fetched.
    """
    connect = socket.socket.connect

    def local_only(sock: socket.socket, address: Any) -> None:  # signing must not reach Google
        assert address[0] == "127.0.0.1", address
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    options = {**gcs_options(gcs_endpoint), "token": _service_account()}
    url = await Storage("gs://some-bucket/meta", **options).share_url("books_latest.csv.gz", expires=900)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == gcs_endpoint
    assert parts.path == "/some-bucket/meta/books_latest.csv.gz"
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["900"]
    assert query["X-Goog-Credential"][0].startswith("signer@test.iam.gserviceaccount.com/")


async def test_s3_anonymous_access_cannot_sign(s3_endpoint: str) -> None:
    """anon=True has no key to sign with: an InputError that says what to give."""
    st = Storage("s3://some-bucket/meta", anon=True, client_kwargs={"endpoint_url": s3_endpoint})
    with pytest.raises(InputError, match="anonymous access"):
        await st.share_url("books_latest.csv.gz")


async def test_nothing_published_or_an_unknown_version(make_destination: Any) -> None:
    """Sharing the latest of an empty destination, or a version that is not there, fails with what is missing."""
    destination = make_destination("s3")
    publisher = destination.publisher()
    with pytest.raises(StorageNotFoundError, match="nothing is published as 'books'"):
        await publisher.share_url()
    await publisher.publish(rows(1))
    with pytest.raises(VersionNotFoundError, match="20000101_000000"):
        await publisher.share_url("20000101_000000")


@pytest.mark.parametrize("backend", backends("share_urls"))
async def test_a_share_url_never_reaches_the_logs(
    make_destination: Any, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, on every logger (botocore logs the signature it computes), neither the URL nor its signature shows."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(2))
    caplog.set_level(logging.DEBUG)
    url = await publisher.share_url(expires=300)
    signature = next(value for key, value in parse_qs(urlsplit(url).query).items() if "ignature" in key or key == "sig")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert any("Signature:" in record.getMessage() for record in caplog.records) or backend != "s3"
    assert signature[0] not in logged
    assert url not in logged and urlsplit(url).query not in logged


def test_the_redactor_masks_signed_urls_in_any_record() -> None:
    """A record that quotes a signed URL (S3, GCS, Azure) comes out with its signature masked."""
    from csvpublish.credentials import Redactor

    urls = [
        "http://h/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=c0ffee1234&X-Amz-Security-Token=FwoGZXI",
        "https://storage.googleapis.com/b/k?X-Goog-Expires=60&X-Goog-Signature=8f9e7d6c5b",
        "https://acct.blob.core.windows.net/c/k?se=2026-12-01T00%3A00Z&sp=r&sv=2024&sr=b&sig=AbC%2Bd%3D",
        "Signature:\n" + "ab" * 32,
    ]
    for url in urls:
        record = logging.LogRecord("botocore.auth", logging.DEBUG, __file__, 1, "signed %s", (url,), None)
        assert Redactor().filter(record)
        shown = record.getMessage()
        assert "***" in shown
        for secret in ("c0ffee1234", "FwoGZXI", "8f9e7d6c5b", "AbC%2Bd%3D", "ab" * 32):
            assert secret not in shown
