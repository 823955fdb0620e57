"""Deterministic gzip: the same CSV bytes always give the same ``.gz`` bytes.

The gzip header carries no file name and a zero modification time, so hashes
and ETags of a snapshot depend only on its content, the backend and the level.
The deflate stream comes from the fastest installed backend that writes
standard deflate: ``isal`` (``pip install 'csvpublish[fast]'``), then
``zlib-ng``, then the standard library's ``zlib``. Every gzip reader reads the
result.

>>> import gzip
>>> c = GzipCompressor()
>>> gzip.decompress(c.compress(b"a,b\\r\\n") + c.flush())
b'a,b\\r\\n'
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

DEFAULT_LEVEL = 1
BLOCK = 256 * 2**10
"""Input is fed to the deflate engine in blocks of exactly this size: isal's and
zlib-ng's output depends on how the input is split into calls, so re-blocking
makes the bytes depend on the content alone, not on the caller's chunking."""


def _load_backends() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    try:
        from isal import isal_zlib

        found["isal"] = isal_zlib
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = zlib_ng
    except ImportError:
        pass
    found["zlib"] = zlib
    return found


BACKENDS = _load_backends()


def default_backend() -> str:
    """The name of the fastest installed deflate backend."""
    return next(iter(BACKENDS))


class GzipCompressor:
    """Streaming, deterministic gzip writer.

    Args:
        level: compression level; isal accepts 0-3, the zlib family 0-9.
        backend: ``"isal"``, ``"zlib-ng"`` or ``"zlib"``; default the fastest installed.
    """

    def __init__(self, level: int = DEFAULT_LEVEL, backend: str | None = None) -> None:
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            from .errors import InputError

            raise InputError(
                f"compression backend {self.backend!r} is not installed; "
                f"available: {', '.join(BACKENDS)} (pip install 'csvpublish[fast]' adds isal)"
            )
        module: Any = BACKENDS[self.backend]
        if self.backend == "isal":
            level = min(level, 3)
        self.level = level
        self._deflate = module.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc32: Callable[[bytes, int], int] = module.crc32
        self._crc = 0
        self._size = 0
        self._header_sent = False
        self._pending = bytearray()

    def _header(self) -> bytes:
        # magic, deflate, no flags, mtime 0, xfl 0, OS 255 (unknown): fixed bytes.
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def compress(self, data: bytes) -> bytes:
        """Compress a chunk; returns the bytes ready so far (may be empty)."""
        self._crc = self._crc32(data, self._crc)
        self._size += len(data)
        out: list[bytes] = []
        if not self._header_sent:
            self._header_sent = True
            out.append(self._header())
        view = memoryview(data)
        if self._pending:
            take = BLOCK - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < BLOCK:
                return b"".join(out)
            out.append(self._deflate.compress(bytes(self._pending)))
            self._pending.clear()
        whole = len(view) - len(view) % BLOCK
        for start in range(0, whole, BLOCK):
            out.append(self._deflate.compress(view[start : start + BLOCK]))
        self._pending += view[whole:]
        return b"".join(out)

    def flush(self) -> bytes:
        """Finish the stream and return the last bytes, trailer included."""
        head = b"" if self._header_sent else self._header()
        self._header_sent = True
        rest = bytes(self._deflate.compress(bytes(self._pending))) if self._pending else b""
        self._pending.clear()
        tail = rest + bytes(self._deflate.flush(zlib.Z_FINISH))
        return head + tail + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)


def gzip_bytes(data: bytes, level: int = DEFAULT_LEVEL, backend: str | None = None) -> bytes:
    """Compress ``data`` in one call, deterministically.

    >>> gzip_bytes(b"x") == gzip_bytes(b"x")
    True
    """
    c = GzipCompressor(level, backend)
    return c.compress(data) + c.flush()


WINDOW = 256 * 1024
"""Compressed bytes given to one call of the inflater (it copies what a capped call leaves unread)."""


class Gunzip:
    """Inflates a gzip file of one or more members (a partitioned publish writes one per partition).

    >>> g = Gunzip()
    >>> g.decompress(gzip_bytes(b"a,b\\r\\n") + gzip_bytes(b"1,2\\r\\n")), g.complete
    (b'a,b\\r\\n1,2\\r\\n', True)
    """

    def __init__(self) -> None:
        module: Any = BACKENDS.get("isal", zlib)  # isal inflates ~3x faster
        self._module = module
        self.errors: tuple[type[Exception], ...] = (zlib.error, module.error)
        self._inflate = module.decompressobj(wbits=31)
        self._started = False

    @property
    def complete(self) -> bool:
        """Every member read so far ended (and at least one began)."""
        return not self._started or bool(self._inflate.eof)

    def decompress(self, data: bytes) -> bytes:
        """The CSV bytes of ``data``; raises one of :attr:`errors` for bytes that are not gzip."""
        return b"".join(self.pieces(data, 0))

    def pieces(self, data: bytes, size: int) -> Iterator[bytes]:
        """The CSV bytes of ``data`` in pieces of at most ``size`` (0: any size); raises as :meth:`decompress`."""
        view = memoryview(data)
        for start in range(0, len(view), WINDOW):  # a short window: each capped call copies its unread tail
            window: bytes | memoryview = view[start : start + WINDOW]
            while window:
                if self._inflate.eof:
                    self._inflate = self._module.decompressobj(wbits=31)
                self._started = True
                piece = self._inflate.decompress(window, size)
                window = self._inflate.unused_data if self._inflate.eof else self._inflate.unconsumed_tail
                if piece:
                    yield piece
