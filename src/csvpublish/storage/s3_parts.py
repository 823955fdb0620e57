"""S3's side of a partitioned upload: one multipart upload, parts from many processes, and small partitions.

S3 wants every part but the last to be 5 MiB or more, and a worker cannot know
whether the partition after its own is small. So each partition's first part
(its *head*, or the whole partition when it is under 5 MiB) is staged as an
object in ``<archive>.parts/``, and its other parts are uploaded as parts of
the upload under the partition's own numbers. At the commit the coordinator
walks the partitions in order:

* a head of 5 MiB or more becomes its part by UploadPartCopy: a server-side
  copy, no bytes through the coordinator;
* a run of small partitions is downloaded and joined with the head that follows
  it (at most about three parts' worth at once), and uploaded as parts under the
  run's numbers; a run at the very end is the object's last part, which may be small.

Then one CompleteMultipartUpload (``If-None-Match: *``) and the staging folder is removed.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable
from typing import Any

from fsspec.asyn import sync

from .backend import RunBlocking, Upload, WriteOptions
from .objectstore import ObjectStoreBackend
from .parts import STAGED, PartedUpload, PartsWriter, Piece, staging_of

MIN_PART = 5 * 2**20
"""S3's smallest part, except the last one."""
CONCURRENCY = 8
"""Requests of an assembly in flight at once (part copies, merged uploads)."""

PartList = builtins.list[dict[str, Any]]


async def _ready(parts: PartList) -> PartList:
    return parts


class S3Parts(ObjectStoreBackend):
    """The S3 backend's partitioned uploads (:class:`~csvpublish.storage.s3.S3Backend` derives from it)."""

    async def s3(self, method: str, **kwargs: Any) -> Any:
        """One S3 API call through s3fs (its error translation included)."""
        fs: Any = self.fs
        return await self.on_loop(fs._call_s3(method, **kwargs))

    def _split(self, full: str) -> tuple[str, str]:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        return str(bucket), str(key)

    async def begin_parts(self, full: str, options: WriteOptions) -> str:
        bucket, key = self._split(full)
        out = await self.s3("create_multipart_upload", Bucket=bucket, Key=key, **self.headers(options))
        return str(out["UploadId"])

    def parts_writer(self, upload: PartedUpload, index: int, run: RunBlocking) -> PartsWriter:
        return S3PartsWriter(self, upload, index, run)

    async def assemble(self, upload: PartedUpload, pieces: builtins.list[tuple[Piece, ...]]) -> None:
        jobs: builtins.list[Awaitable[PartList]] = []
        run: builtins.list[Piece] = []
        for partition in (p for p in pieces if p):
            head, rest = partition[0], partition[1:]
            if not rest and head.size < MIN_PART:
                run.append(head)
                continue
            jobs.append(self._merge(upload, run, head) if run else self._copy(upload, head))
            jobs.append(_ready([{"PartNumber": p.number, "ETag": p.tag} for p in rest]))
            run = []
        if run:
            jobs.append(self._merge(upload, run, None))
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(job: Awaitable[PartList]) -> PartList:
            async with gate:
                return await job

        done = await asyncio.gather(*(gated(job) for job in jobs))
        parts = sorted((part for some in done for part in some), key=lambda part: int(part["PartNumber"]))
        bucket, key = self._split(upload.path)
        match = {"IfNoneMatch": "*"} if upload.options.exclusive else {}
        await self.s3(
            "complete_multipart_upload",
            Bucket=bucket, Key=key, UploadId=upload.upload_id, MultipartUpload={"Parts": parts}, **match,
        )  # fmt: skip
        self.fs.invalidate_cache(upload.path)
        await self.drop_staging(upload.path)

    async def _copy(self, upload: PartedUpload, head: Piece) -> PartList:
        """A head big enough to be a part, copied into the upload by the service."""
        bucket, key = self._split(upload.path)
        source_bucket, source_key = self._split(head.tag)
        out = await self.s3(
            "upload_part_copy",
            Bucket=bucket, Key=key, UploadId=upload.upload_id, PartNumber=head.number,
            CopySource={"Bucket": source_bucket, "Key": source_key},
        )  # fmt: skip
        return [{"PartNumber": head.number, "ETag": out["CopyPartResult"]["ETag"]}]

    async def _merge(self, upload: PartedUpload, run: builtins.list[Piece], head: Piece | None) -> PartList:
        """Small partitions joined (with the head after them) into parts of 5 MiB or more, under their numbers."""
        out: PartList = []
        number, buffer = run[0].number, bytearray()
        for piece in run:
            buffer += await self.call("cat_file", piece.tag)
            if len(buffer) >= MIN_PART:
                out.append(await self._part(upload, number, bytes(buffer)))
                number, buffer = number + 1, bytearray()
        if head is not None:
            buffer += await self.call("cat_file", head.tag)
            number = head.number
        if buffer:
            out.append(await self._part(upload, number, bytes(buffer)))
        return out

    async def _part(self, upload: PartedUpload, number: int, body: bytes) -> dict[str, Any]:
        bucket, key = self._split(upload.path)
        out = await self.s3(
            "upload_part", Bucket=bucket, Key=key, UploadId=upload.upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": out["ETag"]}

    async def abort_parts(self, upload: PartedUpload) -> None:
        bucket, key = self._split(upload.path)
        try:
            await self.s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload.upload_id)
        except FileNotFoundError:  # NoSuchUpload: completed or aborted already
            pass
        await self.drop_staging(upload.path)

    async def drop_staging(self, full: str) -> None:
        """Delete the staged heads of ``full``'s upload, if any."""
        try:
            await self.call("rm", staging_of(full), recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(staging_of(full))

    async def staged_uploads(self, full_prefix: str) -> builtins.list[Upload]:
        """Staging folders under ``full_prefix`` (left by a coordinator that died): unfinished uploads too."""
        bucket, prefix = self._split(full_prefix)
        found: set[str] = set()
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = await self.s3("list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                head, marker, _ = str(item["Key"]).partition(".parts/")
                if marker and "/" not in head[len(prefix) :]:
                    found.add(f"{bucket}/{head}")
            if not page.get("IsTruncated"):
                return [Upload(path, STAGED) for path in sorted(found)]
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


class S3PartsWriter(PartsWriter):
    """A partition's head as a staged object, its other parts as parts of the upload (each retried on its own)."""

    min_part = MIN_PART

    def __init__(self, backend: S3Parts, upload: PartedUpload, index: int, run: RunBlocking) -> None:
        super().__init__(upload, index, run)
        self.fs: Any = backend.fs
        self.bucket, self.key = backend._split(upload.path)

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self.run(self.name, lambda: sync(self.fs.loop, self.fs._call_s3, method, Bucket=self.bucket, **kwargs))

    def send(self, number: int, nth: int, body: bytes) -> Piece:
        if nth == 0:
            key = f"{self.key}.parts/{number:06d}"
            self._call("put_object", Key=key, Body=body)
            return Piece(number, len(body), f"{self.bucket}/{key}", staged=True)
        out = self._call("upload_part", Key=self.key, UploadId=self.upload.upload_id, PartNumber=number, Body=body)
        return Piece(number, len(body), str(out["ETag"]))
