"""Reading a whole S3 object in one streamed GET.

s3fs reads a file one ranged GET per block: an 832 MB object read in 16 MiB
blocks costs 50 requests, each a round trip (and on moto's server, each a copy
of the whole object). A check reads every byte once, front to back, so one GET
of the whole object serves it: :class:`S3Stream` is that response body as a
blocking binary file, read on s3fs's event loop.
"""

from __future__ import annotations

import io
from typing import IO, Any

from fsspec.asyn import sync


class S3Stream(io.RawIOBase):
    """The body of one GetObject, read block by block from a blocking thread."""

    def __init__(self, fs: Any, body: Any) -> None:
        self._fs, self._body = fs, body

    @classmethod
    def open(cls, fs: Any, bucket: str, key: str, block_size: int) -> IO[bytes]:
        """GetObject ``key``: raises FileNotFoundError (s3fs's translation) when it is not there."""
        response = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key)
        return io.BufferedReader(cls(fs, response["Body"]), buffer_size=block_size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = sync(self._fs.loop, self._fill, len(view))
        view[: len(data)] = data
        return len(data)

    async def _fill(self, size: int) -> bytes:
        """Up to ``size`` bytes: the body gives what has arrived, so ask until it is full or ends."""
        chunks, got = [], 0
        while got < size:
            chunk = await self._body.read(size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
