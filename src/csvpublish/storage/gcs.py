"""Google Cloud Storage through gcsfs: resumable uploads, rewrites for copies, ``ifGenerationMatch=0`` creates."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from csvpublish.errors import InputError

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
        object_store=True,
        server_side_copy=True,
        user_metadata=True,
        endpoint_url=True,
        conditional_copy=True,
        cache_control=True,
        presigned_urls=True,  # with a service account's key: see share_url
    )
    stale_tag = "1"  # generations are microsecond timestamps: 1 is none
    errors = HTTP.extend(code_of=_code, precondition_text=("conditionNotMet",))  # the reason of a failed precondition
    header_loggers = ("gcsfs",)
    max_share_seconds = 7 * 24 * 3600  # a V4 signed URL lasts 7 days at most

    @classmethod
    def with_endpoint(cls, options: dict[str, Any], endpoint_url: str) -> dict[str, Any]:
        return {**options, "endpoint_url": endpoint_url}

    def headers(self, options: WriteOptions) -> dict[str, Any]:
        headers: dict[str, Any] = {"content_type": options.content_type} if options.content_type else {}
        if options.cache_control:
            headers["fixed_key_metadata"] = {"cache_control": options.cache_control}
        return headers

    def endpoint(self) -> str:
        fs: Any = self.fs
        return str(getattr(fs, "_location", "") or "google")

    async def write_bytes(self, full: str, data: bytes, options: WriteOptions) -> None:
        if options.if_match is None:
            await super().write_bytes(full, data, options)
            return
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        resource: dict[str, Any] = {"name": key, "contentType": options.content_type or "application/octet-stream"}
        if options.cache_control:
            resource["cacheControl"] = options.cache_control
        # gcsfs's own multipart/related body (gcsfs.core.simple_upload), with the condition it cannot send
        body = (
            (
                f"--==0==\nContent-Type: application/json; charset=UTF-8\n\n{json.dumps(resource)}\n--==0=="
                f"\nContent-Type: {resource['contentType']}\n\n"
            ).encode()
            + data
            + b"\n--==0==--"
        )
        try:
            await self.on_loop(
                fs._call(
                    "POST",
                    f"{fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                    uploadType="multipart",
                    ifGenerationMatch=options.if_match,
                    headers={"Content-Type": 'multipart/related; boundary="==0=="'},
                    data=body,
                    json_out=True,
                )
            )
        finally:
            fs.invalidate_cache(full)

    async def state(self, full: str) -> ObjectState | None:
        """One objects.get of the metadata (gcsfs's ``info`` may also list the folder)."""
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        try:
            info = await self.on_loop(fs._call("GET", "b/{}/o/{}", bucket, key, json_out=True))
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
        """One objects.list request per 1,000 names (gcsfs's ``find`` adds a look at the folder when it is empty)."""
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(f"{folder}/{prefix}")
        out: list[dict[str, Any]] = []
        token = None
        while True:
            page = await self.on_loop(
                fs._call("GET", "b/{}/o", bucket, prefix=key, delimiter="/", pageToken=token, json_out=True)
            )
            for item in page.get("items", []):
                out.append({**item, "name": f"{bucket}/{item['name']}", "size": int(item.get("size") or 0)})
            token = page.get("nextPageToken")
            if not token:
                return out

    async def copy(self, src: str, dst: str, options: WriteOptions, size: int | None = None) -> None:
        """A rewrite (server-side), setting the content type, metadata and cache control of the copy.

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
        if options.cache_control:
            body["cacheControl"] = options.cache_control

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

    async def share_url(self, full: str, expires: int) -> str:
        """A V4 signed URL, signed on this machine with the service account's private key (gcsfs ``sign``)."""
        fs: Any = self.fs
        try:
            return str(await asyncio.to_thread(fs.sign, full, expires, version="v4"))
        except AttributeError as exc:  # google-auth: "you need a private key to sign credentials"
            if "private key" not in str(exc):
                raise
            held = getattr(fs.credentials, "credentials", None)  # None for token="anon"
            kind = "anonymous" if held is None or "Anonymous" in type(held).__name__ else type(held).__name__
            raise InputError(
                f"{self.display_uri(full)}: a GCS share URL is signed with a service account's private key, and "
                f"these credentials ({kind}) have none; give token= a service-account key file (or its JSON) "
                "or set GOOGLE_APPLICATION_CREDENTIALS to one"
            ) from None
