"""S3 and S3-compatible stores (R2, MinIO, SeaweedFS) through s3fs, and botocore's calls where s3fs has no option.

Uploads are multipart uploads driven request by request (each part retried on
its own), or one PutObject under a part; exclusive ones are created with
``If-None-Match: *``. The latest is a CopyObject that also sets its metadata.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from typing import IO, Any

from fsspec.asyn import sync

from csvpublish.errors import InputError

from .backend import Capabilities, ObjectState, RunBlocking, Tagged, Upload, WriteOptions, Writer
from .buffered import PartBuffer, PartedWriter
from .parts import STAGED
from .s3_parts import S3Parts
from .s3_read import S3Stream
from .translate import HTTP

logger = logging.getLogger("csvpublish")

PARTS_PER_STEP = 1000
"""S3 allows 10,000 parts per upload: every this many parts, the part size grows
by ``part_size``, so 5 MiB parts reach 268 GiB (see :func:`part_target`)."""

COPY_OBJECT_LIMIT = 5 * 2**30
"""CopyObject copies objects up to 5 GiB; s3fs copies larger ones part by part."""

SIGV4_LONGEST = 7 * 24 * 3600
"""Seconds a SigV4 presigned URL may last at most: 7 days."""


def part_target(part_size: int, parts_done: int) -> int:
    """Bytes to gather for the next S3 part once ``parts_done`` parts are uploaded.

    Parts stay at ``part_size`` for objects up to ``PARTS_PER_STEP * part_size``
    (about 5 GB), so memory stays bounded by one part; beyond that they grow in
    steps, so 10,000 parts hold 55,000 x ``part_size``.

    >>> part_target(5, 0), part_target(5, 999), part_target(5, 1000)
    (5, 5, 10)
    """
    return part_size * (1 + parts_done // PARTS_PER_STEP)


def _code(exc: BaseException) -> str | None:
    """botocore's error code (``NoSuchKey``, ``SlowDown``), else the HTTP status of its response."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    if code:  # some S3-compatible servers send an empty code: then the status says it
        return str(code)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None if status is None else str(status)


ERRORS = HTTP.extend(
    code_of=_code,
    missing_bucket={"NoSuchBucket"},
    not_found={"NoSuchKey", "NotFound"},
    denied={"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"},
    transient={
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        # 409: a conditional write raced another request on the same key and decided nothing; S3 says to
        # retry, and the retry is answered 200 or 412 (s3fs reads neither code, so it raises a bare OSError)
        "ConditionalRequestConflict",
        "OperationAborted",
    },
    transient_names={  # botocore, urllib3; a streamed GET cut or stalled (storage/s3_read.py)
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "AioReadTimeoutError",
    },
    unreachable_names={"EndpointConnectionError"},
    # 412: the object exists, someone else's create won (s3fs raises FileExistsError only when the
    # answer names the If-None-Match condition, as AWS does; SeaweedFS's does not, moto's does)
    precondition={"PreconditionFailed"},
)


class S3Backend(S3Parts):
    """``s3://`` and ``s3a://``."""

    capabilities = Capabilities(
        object_store=True,
        server_side_copy=True,
        user_metadata=True,
        multipart_uploads=True,
        endpoint_url=True,
        conditional_copy=True,
        cache_control=True,
        presigned_urls=True,
        parallel_parts=True,  # storage/s3_parts.py
    )
    errors = ERRORS
    header_loggers = ("botocore.auth", "botocore.endpoint")  # Authorization, X-Amz-Security-Token, signatures
    max_share_seconds = SIGV4_LONGEST
    stale_tag = '"csvpublish-probe-not-an-etag"'

    @classmethod
    def with_endpoint(cls, options: dict[str, Any], endpoint_url: str) -> dict[str, Any]:
        client_kwargs = options.get("client_kwargs") or {}
        if not isinstance(client_kwargs, dict):
            raise InputError("the storage option client_kwargs must be a mapping (a JSON object)")
        return {**options, "client_kwargs": {**client_kwargs, "endpoint_url": endpoint_url}}

    async def probe_bucket(self, bucket: str) -> None:
        # Ask the service itself: a plain exists() answers False for any error,
        # so an unreachable endpoint would look like a missing bucket.
        await self.s3("head_bucket", Bucket=bucket)

    def headers(self, options: WriteOptions) -> dict[str, Any]:
        headers = {"ContentType": options.content_type, "CacheControl": options.cache_control}
        return {name: value for name, value in headers.items() if value}

    def open_writer(self, full: str, options: WriteOptions, part_size: int, run: RunBlocking | None) -> Writer:
        assert run is not None, "the S3 writer sends its own requests: give it the storage's retries"
        return S3Writer(self, full, options, part_size, run)

    def open_reader(self, full: str, block_size: int) -> IO[bytes]:
        """One streamed GET of the whole object (s3fs sends a ranged GET per block; storage/s3_read.py)."""
        return S3Stream.open(self.fs, *self._split(full), block_size, ERRORS)

    def endpoint(self) -> str:
        fs: Any = self.fs
        return str((fs.client_kwargs or {}).get("endpoint_url") or getattr(fs, "endpoint_url", None) or "aws")

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        if options.if_match is None:
            await super().write_bytes(full, data, options)
            return
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        try:
            await self.s3(
                "put_object", Bucket=bucket, Key=key, Body=data, IfMatch=options.if_match, **self.headers(options)
            )
        finally:
            fs.invalidate_cache(full)

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        """CopyObject, replacing the copy's headers and metadata; s3fs's multipart copy from 5 GiB.

        ``options.if_match`` / ``exclusive`` become CopyObject's ``IfMatch`` / ``IfNoneMatch: *`` on the destination.
        """
        fs: Any = self.fs
        sb, sk, _ = fs.split_path(src)
        db, dk, _ = fs.split_path(dst)
        info = await self.call("info", src) if size is None or not options.content_type else {"size": size}
        # REPLACE: the copy takes these headers, never the source's (an archive's immutable Cache-Control)
        content_type = options.content_type or info.get("ContentType") or "application/octet-stream"
        headers = {**self.headers(options), "ContentType": content_type, "Metadata": options.metadata}
        if int(info.get("size") or 0) >= COPY_OBJECT_LIMIT:
            await self.call("cp_file", src, dst, **headers)  # a new multipart upload: it takes the same headers
            return
        condition: dict[str, Any] = {}
        if options.if_match is not None:
            condition["IfMatch"] = options.if_match
        elif options.exclusive:
            condition["IfNoneMatch"] = "*"
        source = {"Bucket": sb, "Key": sk}
        await self.s3(
            "copy_object", Bucket=db, Key=dk, CopySource=source, MetadataDirective="REPLACE", **headers, **condition
        )

    async def share_url(self, full: str, expires: int) -> str:
        """A presigned GetObject URL, signed with SigV4 on this machine (no request is sent)."""
        fs: Any = self.fs
        if fs.anon:
            raise InputError(f"{self.display_uri(full)}: anonymous access (anon=True) signs no share URL; {_NEEDS}")
        bucket, key, _ = fs.split_path(full)

        async def sign() -> str:
            await fs.set_session()
            client = await fs.get_s3(bucket)
            client.meta.events.register_first("choose-signer.s3", _presign_with_sigv4, unique_id=_SIGV4_HOOK)
            params = {"Bucket": bucket, "Key": key}
            return str(await client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires))

        try:
            return await self.on_loop(sign())
        except Exception as exc:
            if type(exc).__name__ != "NoCredentialsError":  # botocore found no credentials anywhere
                raise
            raise InputError(f"{self.display_uri(full)}: no credentials to sign a share URL with; {_NEEDS}") from None

    async def state(self, full: str) -> ObjectState | None:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        try:
            head = await self.s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        meta = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
        return ObjectState(str(head["ETag"]), meta)

    async def read_tagged(self, full: str) -> Tagged:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)

        async def get() -> Tagged:  # on s3fs's loop, where the body's stream lives
            response = await fs._call_s3("get_object", Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                data = await body.read()
            finally:
                body.close()
            return Tagged(bytes(data), str(response["ETag"]))

        return await self.on_loop(get())

    async def list_prefix(self, folder: str, prefix: str) -> builtins.list[dict[str, Any]]:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(f"{folder}/{prefix}")
        out: builtins.list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key, "Delimiter": "/"}
        while True:
            page = await self.s3("list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):  # a folder marker (SeaweedFS lists the folder itself), not a file
                    continue
                out.append(
                    {
                        "name": f"{bucket}/{item['Key']}",
                        "size": item.get("Size", 0),
                        "type": "file",
                        "LastModified": item.get("LastModified"),
                    }
                )
            if not page.get("IsTruncated"):
                return out
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    async def metadata(self, full: str) -> dict[str, Any]:
        info = await self.call("info", full)
        meta = info.get("metadata") or info.get("Metadata") or {}
        return dict(meta or await self.call("metadata", full))

    async def incomplete_uploads(self, full_prefix: str) -> builtins.list[Upload]:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full_prefix)
        out: builtins.list[Upload] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
        while True:
            page = await self.s3("list_multipart_uploads", **kwargs)
            for upload in page.get("Uploads", []):
                out.append(Upload(f"{bucket}/{upload['Key']}", upload["UploadId"], upload.get("Initiated")))
            if not page.get("IsTruncated"):
                return out + await self.staged_uploads(full_prefix)
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")

    async def abort_upload(self, upload: Upload) -> None:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(upload.path)
        if upload.upload_id != STAGED:
            await self.s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload.upload_id)
        await self.drop_staging(upload.path)


_NEEDS = "give an access key (key= and secret=, a profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
_SIGV4_HOOK = "csvpublish-presign-sigv4"


def _presign_with_sigv4(signature_version: str, **kwargs: Any) -> str | None:
    """botocore presigns with SigV2 in regions that still take it: SigV4 instead, which R2 and every region take.

    A handler of botocore's ``choose-signer.s3`` event, called before botocore's own; it changes presigned
    URLs only (a request is signed with ``v4``, a presigned URL asks for ``v4-query``).
    """
    return "s3v4-query" if signature_version in {"v4-query", "s3v4-query", "s3-query"} else None


class S3Writer(PartedWriter):
    """A multipart upload driven request by request, so each request is retried on its own.

    Data under ``part_size`` goes up in one PutObject at commit. Either way the
    object appears only on commit, created conditionally (``If-None-Match: *``)
    when exclusive; ``discard`` aborts the multipart upload.
    """

    errors = ERRORS

    def __init__(self, backend: S3Backend, full: str, options: WriteOptions, part_size: int, run: RunBlocking) -> None:
        fs: Any = backend.fs
        self.fs = fs
        self.run = run
        self.full = full
        self.bucket, self.key, _ = fs.split_path(full)
        self.headers = backend.headers(options)
        self.match: dict[str, Any] = {"IfNoneMatch": "*"} if options.exclusive else {}
        self.part_size = part_size
        self.pending = PartBuffer()
        self.parts: builtins.list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.finished = False

    def _s3(self, method: str, *, retry: bool = True, **kwargs: Any) -> Any:
        fs = self.fs
        return self.run(
            self.name,
            lambda: sync(fs.loop, fs._call_s3, method, Bucket=self.bucket, Key=self.key, **kwargs),
            retry=retry,
        )

    def write(self, data: bytes) -> None:
        """Buffer ``data``; upload a part once ``part_size`` bytes are waiting.

        Parts are at least ``part_size`` (S3 wants 5 MiB but for the last one),
        so a part is whatever is waiting, joined once, not cut to an exact size;
        very large uploads use larger parts (:func:`part_target`).
        """
        if not data:
            return
        self.pending.add(data)
        if self.pending.size >= part_target(self.part_size, len(self.parts)):
            self._send_part(self.pending.take())

    def _started(self) -> bool:
        return self.upload_id is not None

    def _send_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self._s3("create_multipart_upload", **self.headers)["UploadId"]
        number = len(self.parts) + 1
        out = self._s3("upload_part", UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": out["ETag"]})

    def _assemble(self) -> None:
        # CompleteMultipartUpload is idempotent for one upload id, so retrying it is safe
        parts = {"Parts": self.parts}
        self._s3("complete_multipart_upload", UploadId=self.upload_id, MultipartUpload=parts, **self.match)

    def _forget(self) -> None:
        self.fs.invalidate_cache(self.full)

    def _put(self, body: bytes) -> None:
        try:
            self._s3("put_object", Body=body, **self.headers, **self.match)
        except FileExistsError:
            if not self._holds(body):
                raise
            # a retried conditional PUT whose first attempt landed: the object is ours

    def _holds(self, body: bytes) -> bool:
        try:
            etag = self._s3("head_object", retry=False).get("ETag", "")
        except Exception:
            return False
        return bool(etag.strip('"') == hashlib.md5(body, usedforsecurity=False).hexdigest())

    def discard(self) -> None:
        self.pending.clear()
        if self.finished or self.upload_id is None:
            return
        upload_id, self.upload_id = self.upload_id, None
        try:
            self._s3("abort_multipart_upload", UploadId=upload_id)
        except Exception as exc:  # best effort: cleanup() aborts what is left
            logger.warning("could not abort the upload of %s: %s", self.name, type(exc).__name__)
