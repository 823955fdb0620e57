"""Rows, faults and checks the publishing tests share (flow, lease, promotion, verify, maintenance)."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import random
from collections.abc import Callable
from typing import Any

from csvpublish import Publisher

from .conftest import Destination


def rows(n: int, tag: str = "a") -> list[dict[str, str]]:
    return [{"Barcode": f"{tag}{i}", "Title": f"Title {tag} {i}", "Note": "x" * (i % 7)} for i in range(n)]


def noisy_rows(n: int) -> list[dict[str, str]]:
    """Rows that barely compress: ~220 stored bytes each."""
    noise = base64.b64encode(random.Random(n).randbytes(n * 160)).decode()
    return [{"Barcode": str(i), "Title": "t", "Note": noise[i * 200 : i * 200 + 200]} for i in range(n)]


RESET: Callable[[], BaseException] = lambda: ConnectionResetError(104, "Connection reset by peer")  # noqa: E731


def snapshot(destination: Destination) -> dict[str, Any]:
    """A fingerprint of every object: its bytes, or on object stores its size and the store's checksum of them.

    The checksum, not the ETag or generation: on Azure and GCS those change when the same bytes are
    written again, as a put-back of the previous latest does.
    """
    st = destination.reader()
    if not destination.caps.object_store:
        return {rel: destination.read(rel) for rel in destination.files()}
    st.fs.invalidate_cache()
    found = st.fs.find(st.path(), withdirs=False, detail=True)
    return {st.relative(name): (info["size"], store_checksum(info)) for name, info in found.items()}


def content_settings(info: dict[str, Any]) -> tuple[str | None, str | None]:
    """The content type and content encoding in an fsspec ``info()`` of S3, GCS or Azure."""
    azure = info.get("content_settings") or {}
    kind = info.get("ContentType") or info.get("contentType") or azure.get("content_type")
    encoding = info.get("ContentEncoding") or info.get("contentEncoding") or azure.get("content_encoding")
    return kind, encoding


def store_checksum(info: dict[str, Any]) -> str:
    """The checksum the store keeps of an object's bytes: S3's ETag, GCS's md5Hash, Azure's Content-MD5."""
    azure_md5 = (info.get("content_settings") or {}).get("content_md5")
    found = info.get("ETag") or info.get("md5Hash") or (bytes(azure_md5).hex() if azure_md5 else None)
    assert found, f"no checksum in {info}"
    return str(found)


def incomplete_uploads(destination: Destination) -> list[Any]:
    """Uploads left unfinished under the destination's bucket, seen with the server's own API (none elsewhere)."""
    lister = destination.caps.unfinished
    return [] if lister is None else lister(destination)


def published_objects(publisher: Publisher, latest_suffix: str = ".csv.gz") -> set[str]:
    """What a clean destination holds: the latest, its manifest and descriptor, and each version's three."""
    expected = {f"books_latest{latest_suffix}", "books_latest.manifest.json", "books.datapackage.json"}
    for info in publisher.versions_sync():
        described = (f"timestamped/books_{info.version}.{kind}.json" for kind in ("manifest", "datapackage"))
        expected |= {info.path, *described}
    return expected


def latest_pair(destination: Destination) -> dict[str, bytes]:
    return {rel: destination.read(rel) for rel in ("books_latest.csv.gz", "books_latest.manifest.json")}


def latest_rows(destination: Destination) -> list[list[str]]:
    text = gzip.decompress(destination.read("books_latest.csv.gz")).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


async def assert_intact(
    destination: Destination, publisher: Publisher, before: dict[str, Any], latest: dict[str, bytes], step: str = ""
) -> None:
    """The previous latest pair is byte-identical, nothing earlier changed, and anything new is a complete version."""
    for rel, data in latest.items():
        assert destination.read(rel) == data, f"{step}: {rel} changed"
    after = snapshot(destination)
    for rel, fingerprint in before.items():
        assert after.get(rel) == fingerprint, f"{step}: {rel} changed or vanished"
    new = set(after) - set(before)
    versions = {rel.removeprefix("timestamped/books_").split(".")[0] for rel in new}
    for version in versions:
        whole = {f"timestamped/books_{version}.{kind}" for kind in ("csv.gz", "manifest.json", "datapackage.json")}
        assert new & whole == whole, f"{step}: {new} is not complete versions"
        assert (await publisher.verify(version)).ok, step
    assert len(new) == 3 * len(versions), f"{step}: {new} left behind"
    assert incomplete_uploads(destination) == [], step
    report = await publisher.verify()
    assert report.ok, (step, report.problems)
    assert report.notes == [], step
