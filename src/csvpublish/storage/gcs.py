"""Google Cloud Storage through gcsfs: resumable uploads, rewrites for copies, ``ifGenerationMatch=0`` creates."""

from __future__ import annotations

import asyncio
from typing import Any

from csvpublish.errors import InputError

from .backend import Capabilities, WriteOptions
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
        cache_control=True,
        presigned_urls=True,  # with a service account's key: see share_url
    )
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

    async def copy(self, src: str, dst: str, options: WriteOptions) -> None:
        """A rewrite (server-side), setting the content type, metadata and cache control of the copy."""
        fs: Any = self.fs
        sb, sk, _ = fs.split_path(src)
        db, dk, _ = fs.split_path(dst)
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
