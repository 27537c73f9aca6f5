"""Benchmark: achieved requests/s of `collect` against the ceiling its settings allow.

Run: `python bench/collect.py` (starts a throwaway cluster; `--url` names a database whose
roads, points and images it deletes). A local Baidu-protocol server with a fixed latency runs on asyncio in its own process (so
it neither competes with the client for the GIL nor burns CPU on threads while it waits). Two runs, each measured in this run:
  * concurrency-bound: ceiling = concurrency / latency;
  * rate-bound (`--rate` below that): ceiling = rate.
The figure that matters is achieved / ceiling (goal >= 0.9). The whole pipeline is timed:
requests, checks, temp+rename stores and database upserts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from streetaudit.sql.connect import scratch_database
from streetaudit.testing.sample_rows import along, make_points

KEY = "bench-key"


def serve(latency: float, ready, stop) -> None:
    """A Baidu-protocol endpoint on asyncio: one thread, so a fixed latency costs no CPU."""
    import asyncio

    from streetaudit.testing.local_server import base_jpeg, unique_jpeg

    jpeg = base_jpeg()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                line = request.split(b"\r\n", 1)[0].decode()
                await asyncio.sleep(latency)
                body = unique_jpeg(jpeg, line) if f"ak={KEY}" in line else b'{"status": 200}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client closed its connection: normal at the end of a run
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        ready.put(f"http://127.0.0.1:{port}")
        while not stop.is_set():
            await asyncio.sleep(0.2)
        server.close()

    asyncio.run(main())


async def raw_httpx(base: str, views: int, concurrency: int) -> float:
    """The same GETs with bare httpx, nothing stored: what this machine allows right now."""
    import httpx

    todo = iter(range(views))

    async def worker() -> None:
        async with httpx.AsyncClient() as client:
            for i in todo:
                params = {"ak": KEY, "location": f"{116.3 + i * 1e-5:.7f},39.9", "heading": "0"}
                (await client.get(f"{base}/panorama/v2", params=params)).raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return views / (time.perf_counter() - start)


def run_once(url: str, data: Path, *, concurrency: int, rate: float | None) -> tuple[int, float]:
    from streetaudit.flows.collect import collect

    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.image CASCADE")
        conn.commit()
    shutil.rmtree(data / "images", ignore_errors=True)
    start = time.perf_counter()
    report = collect(url, "baidu", concurrency=concurrency, rate=rate, progress=False)
    seconds = time.perf_counter() - start
    assert report.error == 0, report.errors
    return report.requests, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=250, help="sample points (4 views each)")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency in seconds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=None, help="rate limit (default: half the ceiling)")
    parser.add_argument(
        "--url",
        help="Use this database instead of a throwaway cluster: its roads, points and images are DELETED.",
    )
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="sa-bench-collect-"))
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(args.latency, ready, stop), daemon=True)
    server.start()
    try:
        with scratch_database(args.url) as url:
            measure(url, data, ready, args)
    finally:
        stop.set()
        server.join(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


def measure(url: str, data: Path, ready, args) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.road CASCADE")
    make_points(url, along((116.3, 39.9), 0.00035, args.points), spacing=30.0, source="bench")
    os.environ.update(
        {
            "STREETAUDIT_DATA_DIR": str(data),
            "STREETAUDIT_BAIDU_AK": KEY,
            "STREETAUDIT_BAIDU_URL": f"{ready.get(timeout=60)}/panorama/v2",
        }
    )
    views = args.points * 4
    print(f"{views} views, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    ceiling = args.concurrency / args.latency
    base = os.environ["STREETAUDIT_BAIDU_URL"].removesuffix("/panorama/v2")
    bare = asyncio.run(raw_httpx(base, views, args.concurrency))
    requests, seconds = run_once(url, data, concurrency=args.concurrency, rate=None)
    achieved = requests / seconds
    print(
        f"concurrency-bound: {achieved:7.1f} req/s of ceiling {ceiling:7.1f} "
        f"(concurrency/latency)  ratio {achieved / ceiling:.2f}  (goal >= 0.90)"
    )
    print(
        f"bare httpx       : {bare:7.1f} req/s, nothing stored       "
        f"ratio collect / bare {achieved / bare:.2f}  (what the machine allowed in this run)"
    )
    rate = args.rate or ceiling / 2
    requests, seconds = run_once(url, data, concurrency=args.concurrency, rate=rate)
    achieved = requests / seconds
    print(
        f"rate-bound       : {achieved:7.1f} req/s of ceiling {rate:7.1f} "
        f"(--rate)               ratio {achieved / rate:.2f}  (goal >= 0.90, and never above 1.0 by more than a burst)"
    )


if __name__ == "__main__":
    main()
