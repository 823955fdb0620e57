"""Uploads in parts: the bytes waiting to become a part, and the commit every parted writer shares.

:class:`PartedWriter` is the S3 and Azure writers' common shape: parts go up as
the bytes come; at commit, data that never filled a part goes up in one PUT,
else the last part is sent and one request assembles the object. Either way the
object appears only on commit; a failed commit discards the parts.
"""

from __future__ import annotations

from .backend import Writer


class PartBuffer:
    """Bytes written since the last part, joined once when the part is taken: one copy of its bytes.

    >>> buffer = PartBuffer()
    >>> buffer.add(b"ab"); buffer.add(memoryview(b"c")); buffer.size, buffer.take(), buffer.size
    (3, b'abc', 0)
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def add(self, data: bytes | memoryview) -> None:
        self._chunks.append(bytes(data))
        self.size += len(data)

    def take(self) -> bytes:
        """Everything buffered, which is then dropped."""
        body = b"".join(self._chunks)
        self.clear()
        return body

    def clear(self) -> None:
        self._chunks, self.size = [], 0


class PartedWriter(Writer):
    """A writer that sends parts as they fill; its subclass says how each request is made."""

    pending: PartBuffer
    finished: bool

    def _started(self) -> bool:
        """Whether a part has been sent (the object is then assembled, not PUT)."""
        raise NotImplementedError

    def _send_part(self, body: bytes) -> None:
        raise NotImplementedError

    def _put(self, body: bytes) -> None:
        """The whole object in one request (it never filled a part)."""
        raise NotImplementedError

    def _assemble(self) -> None:
        """The one request that makes the object of the parts sent."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop what the filesystem cached of the target."""

    def commit(self) -> None:
        try:
            if not self._started():
                self._put(self.pending.take())
            else:
                if self.pending:
                    self._send_part(self.pending.take())
                self._assemble()
            self.finished = True
        except Exception as exc:
            self.discard()
            if isinstance(exc, FileExistsError):  # the service's answer to a conditional create that lost
                raise FileExistsError(self.name) from None
            raise
        finally:
            self._forget()
