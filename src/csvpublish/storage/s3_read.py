"""Reading a whole S3 object in one streamed GET.

s3fs reads a file one ranged GET per block: an 832 MB object read in 16 MiB
blocks costs 50 requests, each a round trip (and on moto's server, each a copy
of the whole object). A check reads every byte once, front to back, so one GET
of the whole object serves it: :class:`S3Stream` is that response body as a
blocking binary file, read on s3fs's event loop. A read that fails mid-body
(a dropped connection) raises; the next read resumes where the bytes stopped,
with a ranged GET conditional on the same ETag, so a retried read continues
the same version of the object or fails.
"""

from __future__ import annotations

import io
from typing import IO, Any

from fsspec.asyn import sync

from csvpublish.errors import IntegrityError

from .translate import ErrorCodes, is_precondition_failure


class S3Stream(io.RawIOBase):
    """The body of one GetObject, read block by block from a blocking thread."""

    def __init__(self, fs: Any, bucket: str, key: str, response: dict[str, Any], errors: ErrorCodes) -> None:
        self._fs, self._bucket, self._key, self._errors = fs, bucket, key, errors
        self._body: Any = response["Body"]
        self._etag: str | None = response.get("ETag")
        self._at = 0

    @classmethod
    def open(cls, fs: Any, bucket: str, key: str, block_size: int, errors: ErrorCodes) -> IO[bytes]:
        """GetObject ``key``: raises FileNotFoundError (s3fs's translation) when it is not there."""
        response = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key)
        return io.BufferedReader(cls(fs, bucket, key, response, errors), buffer_size=block_size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = sync(self._fs.loop, self._fill, len(view))
        view[: len(data)] = data
        self._at += len(data)
        return len(data)

    async def _fill(self, size: int) -> bytes:
        """Up to ``size`` bytes: the body gives what has arrived, so ask until it is full or ends."""
        if self._body is None:  # the last read broke off: the rest of the same version, from here
            condition = {"IfMatch": self._etag} if self._etag else {}
            try:
                response = await self._fs._call_s3(
                    "get_object", Bucket=self._bucket, Key=self._key, Range=f"bytes={self._at}-", **condition
                )
            except Exception as exc:
                if is_precondition_failure(exc, self._errors):
                    raise IntegrityError(
                        f"{self._bucket}/{self._key} was replaced while it was read: read it again"
                    ) from None
                raise
            self._body = response["Body"]
        chunks, got = [], 0
        try:
            while got < size:
                chunk = await self._body.read(size - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except BaseException:
            self._body.close()
            self._body = None  # nothing of this call counts: the next one asks again from self._at
            raise
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed and self._body is not None:
            self._body.close()
        super().close()
