"""Google Cloud Storage through gcsfs: resumable uploads, rewrites for copies, ``ifGenerationMatch=0`` creates."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from fsspec.asyn import sync

from csvpublish.errors import InputError

from .backend import Capabilities, ObjectState, RunBlocking, Tagged, Upload, WriteOptions
from .objectstore import ObjectStoreBackend
from .parts import STAGED, PartedUpload, PartsWriter, Piece, staging_of
from .translate import HTTP

COMPOSE_SOURCES = 32
"""Objects one compose request joins at most: more are composed in a tree of intermediate objects."""


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
        parallel_parts=True,  # staged objects, then compose
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

    # --- parts from several processes: staged objects, then compose in a tree ------------------

    async def begin_parts(self, full: str, options: WriteOptions) -> str:
        return STAGED

    def parts_writer(self, upload: PartedUpload, index: int, run: RunBlocking) -> PartsWriter:
        return GCSPartsWriter(self, upload, index, run)

    async def assemble(self, upload: PartedUpload, pieces: list[tuple[Piece, ...]]) -> None:
        """Compose the staged parts, 32 at a time, into ever fewer objects; the last compose makes the object."""
        names = [piece.tag for partition in pieces for piece in partition]
        level = 0
        while len(names) > COMPOSE_SOURCES:
            groups = [names[at : at + COMPOSE_SOURCES] for at in range(0, len(names), COMPOSE_SOURCES)]
            names = [f"{upload.staging}/compose-{level}-{k:05d}" for k in range(len(groups))]
            await asyncio.gather(*(self._compose(group, name, None) for group, name in zip(groups, names, strict=True)))
            level += 1
        await self._compose(names, upload.path, upload.options)
        await self.abort_parts(upload)

    async def _compose(self, sources: list[str], full: str, options: WriteOptions | None) -> None:
        """One compose request (``options``: the object's own headers, and ``ifGenerationMatch=0`` if exclusive)."""
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(full)
        destination: dict[str, Any] = {}
        condition: dict[str, Any] = {}
        if options is not None:
            destination = {"contentType": options.content_type or "application/octet-stream"}
            if options.cache_control:
                destination["cacheControl"] = options.cache_control
            if options.exclusive:
                condition["ifGenerationMatch"] = "0"
        body = {"sourceObjects": [{"name": fs.split_path(name)[1]} for name in sources], "destination": destination}
        await self.on_loop(
            fs._call(
                "POST", "b/{}/o/{}/compose", bucket, key, headers={"Content-Type": "application/json"}, json=body,
                json_out=True, **condition,
            )
        )  # fmt: skip
        fs.invalidate_cache(full)

    async def abort_parts(self, upload: PartedUpload) -> None:
        try:
            await self.call("rm", upload.staging, recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(upload.staging)

    async def incomplete_uploads(self, full_prefix: str) -> list[Upload]:
        """Staging folders of partitioned uploads under ``full_prefix`` (GCS lists no resumable sessions)."""
        fs: Any = self.fs
        bucket, prefix, _ = fs.split_path(full_prefix)
        found: set[str] = set()
        token = None
        while True:
            page = await self.on_loop(fs._call("GET", "b/{}/o", bucket, prefix=prefix, pageToken=token, json_out=True))
            for item in page.get("items", []):
                head, marker, _ = str(item["name"]).partition(".parts/")
                if marker and "/" not in head[len(prefix) :]:
                    found.add(f"{bucket}/{head}")
            token = page.get("nextPageToken")
            if not token:
                return [Upload(path, STAGED) for path in sorted(found)]

    async def abort_upload(self, upload: Upload) -> None:
        await self.abort_parts(PartedUpload(upload.path, upload.upload_id, WriteOptions(), stride=1))


class GCSPartsWriter(PartsWriter):
    """Each part an object of the staging folder (a retry uploads the same object again)."""

    def __init__(self, backend: GCSBackend, upload: PartedUpload, index: int, run: RunBlocking) -> None:
        super().__init__(upload, index, run)
        self.fs: Any = backend.fs

    def send(self, number: int, nth: int, body: bytes) -> Piece:
        path = f"{staging_of(self.upload.path)}/{number:06d}"
        self.run(self.name, lambda: sync(self.fs.loop, self.fs._pipe_file, path, body))
        return Piece(number, len(body), path, staged=True)
