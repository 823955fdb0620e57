"""Google Cloud Storage through gcsfs: resumable uploads, rewrites for copies, ``ifGenerationMatch=0`` creates."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .backend import Capabilities, ObjectState, Tagged, WriteOptions
from .objectstore import ObjectStoreBackend
from .translate import HTTP


def _code(exc: BaseException) -> str | None:
    """The HTTP status of a gcsfs error: its HttpError carries it; a few statuses come as other exceptions."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return str(code)
    # gcsfs.retry.validate_response raises 502 as requests' ProxyError and 403 as OSError("Forbidden: <path>...")
    if type(exc).__name__ == "ProxyError":
        return "502"
    if type(exc) is OSError and str(exc).startswith("Forbidden: "):
        return "403"
    return None


class GCSBackend(ObjectStoreBackend):
    """``gs://`` and ``gcs://``."""

    capabilities = Capabilities(
        object_store=True, server_side_copy=True, user_metadata=True, endpoint_url=True, conditional_copy=True
    )
    stale_tag = "1"  # generations are microsecond timestamps: 1 is none
    errors = HTTP.extend(code_of=_code, precondition_text=("conditionNotMet",))  # the reason of a failed precondition
    header_loggers = ("gcsfs",)

    @classmethod
    def with_endpoint(cls, options: dict[str, Any], endpoint_url: str) -> dict[str, Any]:
        return {**options, "endpoint_url": endpoint_url}

    def headers(self, options: WriteOptions) -> dict[str, Any]:
        return {"content_type": options.content_type} if options.content_type else {}

    def endpoint(self) -> str:
        fs: Any = self.fs
        return str(getattr(fs, "_location", "") or "google")

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        if options.if_match is None:
            await super().write_bytes(full, data, options)
            return
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        try:
            await self.on_loop(
                fs._call(
                    "POST",
                    f"{fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                    uploadType="media",
                    name=key,
                    ifGenerationMatch=options.if_match,
                    headers={"Content-Type": options.content_type or "application/octet-stream"},
                    data=data,
                    json_out=True,
                )
            )
        finally:
            fs.invalidate_cache(full)

    async def state(self, full: str) -> ObjectState | None:
        self.fs.invalidate_cache(full)
        try:
            info = await self.call("info", full)
        except FileNotFoundError:
            return None
        meta = {str(k).lower(): str(v) for k, v in (info.get("metadata") or {}).items()}
        return ObjectState(str(info["generation"]), meta)

    async def read_tagged(self, full: str) -> Tagged:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        headers, data = await self.on_loop(fs._call("GET", "b/{}/o/{}", bucket, key, alt="media"))
        return Tagged(bytes(data), str(headers.get("X-Goog-Generation") or headers.get("x-goog-generation")))

    async def list_prefix(self, folder: str, prefix: str) -> list[dict[str, Any]]:
        fs: Any = self.fs
        fs.invalidate_cache(folder)
        found = await self.on_loop(fs._find(folder, prefix=prefix, detail=True, maxdepth=1))
        return [i for i in found.values() if i.get("type") != "directory"]

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        """A rewrite (server-side), setting the content type and metadata of the copy.

        ``options.if_match`` / ``exclusive`` become ``ifGenerationMatch=<generation>`` / ``=0``.
        """
        fs: Any = self.fs
        sb, sk, _ = fs.split_path(src)
        db, dk, _ = fs.split_path(dst)
        condition: dict[str, Any] = {}
        if options.if_match is not None:
            condition["ifGenerationMatch"] = options.if_match
        elif options.exclusive:
            condition["ifGenerationMatch"] = "0"
        body: dict[str, Any] = {}
        if options.content_type:
            body["contentType"] = options.content_type
        if options.metadata:
            body["metadata"] = options.metadata

        async def rewrite() -> None:
            token = None
            while True:
                out = await fs._call(
                    "POST",
                    "b/{}/o/{}/rewriteTo/b/{}/o/{}",
                    sb,
                    sk,
                    db,
                    dk,
                    headers={"Content-Type": "application/json"},
                    json=body,
                    rewriteToken=token,
                    json_out=True,
                    **condition,
                )
                if out.get("done", True):
                    return
                token = out["rewriteToken"]

        await self.on_loop(rewrite())
