"""Benchmark: vector tiles from our API against raw ST_AsMVT SQL and against tipg.

Run: `python bench/tiles.py` (starts a throwaway cluster unless --url is given). Data:
the demo's real OSM roads of central Helsinki with sample points every --interval metres
and one seeded synthetic segmentation model, refreshed into the `api` views. Then, for
every tile covering the data at z10, z12 and z14, in the same run:

- ours: GET /api.roads/{z}/{x}/{y}.pbf from `uvicorn streetaudit.api.app:app`
  (a separate process, --workers of them), no If-None-Match, Accept-Encoding: identity;
- raw: the textbook query, ST_AsMVT over ST_AsMVTGeom(ST_Transform(geom, 3857)) of
  api.road_stats with the same attributes, sent by psycopg straight to PostGIS;
- tipg: GET /ogc/collections/api.road_stats/tiles/WebMercatorQuad/{z}/{x}/{y}
  from the same server (tipg mounted at /ogc), same attributes;
- ours+cache: as ours, from a second server with the in-process tile cache on (the
  first has it off, so "ours" measures the database every time).

Each is driven by --concurrency client threads for --seconds (HTTP: the standard
library's keep-alive client, the leanest Python has, since it shares the CPU with the
server); tiles/s is requests over wall time, latency is per request. The ratios printed are ours / raw and ours / tipg.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import math
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import numpy as np
import psycopg
import psycopg.sql

from streetaudit.flows.stats import ELEMENTS, refresh_stats
from streetaudit.sql.cluster import free_port
from streetaudit.sql.connect import scratch_database
from streetaudit.testing.seeded_results import helsinki_with_synthetic

ZOOMS = (10, 12, 14)
PROPERTIES = ["name", "kind", "length_m", "n_points"] + [
    f"{e}_{s}" for e in ELEMENTS for s in ("mean", "std")
]
RAW_SQL = f"""
SELECT ST_AsMVT(q, 'segments', 4096, 'geom') FROM (
    SELECT road_id, {", ".join(PROPERTIES)},
           ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom
    FROM api.road_stats
    WHERE geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 64.0 / 4096), 4326)
) AS q
"""


def tiles_covering(bounds: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    def tile(lon: float, lat: float) -> tuple[int, int]:
        n = 2**z
        return int((lon + 180) / 360 * n), int(
            (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        )

    x0, y0 = tile(bounds[0], bounds[3])
    x1, y1 = tile(bounds[2], bounds[1])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def drive(fetch: Callable[[tuple[int, int, int]], bytes], tiles, concurrency: int, seconds: float) -> dict:
    """Run `fetch` over the tiles round-robin from `concurrency` threads for `seconds`."""
    latencies: list[float] = []
    sizes: dict[tuple[int, int, int], int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        i = offset
        mine = []
        while time.perf_counter() < stop:
            t = tiles[i % len(tiles)]
            start = time.perf_counter()
            data = fetch(t)
            mine.append(time.perf_counter() - start)
            sizes[t] = len(data)
            i += 1
        with lock:
            latencies.extend(mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - began
    lat = np.array(latencies)
    return {
        "tps": len(lat) / wall,
        "p50": float(np.percentile(lat, 50)) * 1000,
        "p95": float(np.percentile(lat, 95)) * 1000,
        "max_kb": max(sizes.values()) / 1024,
    }


def start_server(url: str, cache_mb: int, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "STREETAUDIT_API_DATABASE_URL": url,
        "STREETAUDIT_API_TILE_CACHE_MB": str(cache_mb),
        "STREETAUDIT_API_POOL_MAX": "16",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "streetaudit.api.app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the API server did not start")


def reader_login(url: str) -> str:
    """The API refuses to serve as the owner: a throwaway cluster's reader gets a password here."""
    password = secrets.token_urlsafe(12)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE streetaudit_reader LOGIN PASSWORD {}").format(
                psycopg.sql.Literal(password)
            )
        )
    parts = urlsplit(url)
    netloc = f"streetaudit_reader:{quote(password)}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="Use this (empty or demo) database instead of a throwaway cluster.")
    parser.add_argument(
        "--reader-url",
        help="With --url: the read-only role's URL for that database (what the API logs in as).",
    )
    parser.add_argument("--interval", type=float, default=30.0, help="Metres between sample points.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Seconds per method and zoom.")
    parser.add_argument("--concurrency", type=int, default=4, help="Client threads.")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the API.")
    args = parser.parse_args()
    if args.url and not args.reader_url:
        parser.error("--url needs --reader-url (the API logs in as the read-only role)")

    with scratch_database(args.url) as url:
        if args.url is None:  # a fresh throwaway cluster: fill it
            helsinki_with_synthetic(url, interval=args.interval, seeds=(1,))
        refresh_stats(url)
        with psycopg.connect(url) as conn:
            bounds = conn.execute(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                "FROM (SELECT ST_Extent(geom) AS e FROM api.road_stats) AS x"
            ).fetchone()
            roads = conn.execute("SELECT count(*) FROM api.road_stats").fetchone()[0]
        api_url = args.reader_url or reader_login(url)
        proc, base = start_server(api_url, 0, args.workers)
        cached_proc, cached_base = start_server(api_url, 64, args.workers)
        try:
            run(url, base, cached_base, bounds, roads, args)
        finally:
            for p in (proc, cached_proc):
                p.terminate()
                p.wait(timeout=10)


def run(url: str, base: str, cached_base: str, bounds, roads: int, args) -> None:
    local = threading.local()

    def get(server: str, path: str) -> bytes:
        """One keep-alive GET per thread and server with the standard library's client: on a
        two-core machine the client shares the CPU with the server, and httpx costs about
        1 ms per request (four times http.client, as much as psycopg costs raw), which would
        be charged to the HTTP servers alone."""
        connections = local.__dict__.setdefault("http", {})
        if server not in connections:
            parts = urlsplit(server)
            connections[server] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        c = connections[server]
        try:
            c.request("GET", path, headers={"Accept-Encoding": "identity"})
            r = c.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):  # idle past the server's keep-alive
            c.close()
            c.request("GET", path, headers={"Accept-Encoding": "identity"})
            r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status} for {path}: {data[:200]!r}")
        return data

    def conn() -> psycopg.Connection:
        if not hasattr(local, "db"):
            local.db = psycopg.connect(url, autocommit=True)
            local.db.execute("SET ROLE streetaudit_reader")
        return local.db

    def ours(t):
        return get(base, f"/api.roads/{t[0]}/{t[1]}/{t[2]}.pbf")

    def raw(t):
        return bytes(
            conn().execute(RAW_SQL, {"z": t[0], "x": t[1], "y": t[2]}, prepare=True).fetchone()[0] or b""
        )

    def cached(t):
        return get(cached_base, f"/api.roads/{t[0]}/{t[1]}/{t[2]}.pbf")

    query = urlencode({"properties": ",".join(["road_id", *PROPERTIES])})

    def tipg(t):
        return get(
            base, f"/ogc/collections/api.road_stats/tiles/WebMercatorQuad/{t[0]}/{t[1]}/{t[2]}?{query}"
        )

    tipg_ok = True
    try:
        tipg((14, *tiles_covering(bounds, 14)[0][1:]))
    except (RuntimeError, OSError) as error:
        tipg_ok = False
        print(f"tipg tiles unavailable: {error}")

    print(
        f"data: {roads} road segments of central Helsinki; concurrency {args.concurrency}, "
        f"{args.workers} API worker(s), {args.seconds:g} s each"
    )
    header = (
        f"{'zoom':>4} {'tiles':>5} | {'method':<10} {'tiles/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'max KB':>7}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    for z in ZOOMS:
        tiles = tiles_covering(bounds, z)
        methods = {"ours": ours, "raw": raw} | ({"tipg": tipg} if tipg_ok else {}) | {"ours+cache": cached}
        for fetch in methods.values():  # warm caches and prepared statements
            for t in tiles:
                fetch(t)
        results = {
            name: drive(fetch, tiles, args.concurrency, args.seconds) for name, fetch in methods.items()
        }
        for name, r in results.items():
            print(
                f"{z:>4} {len(tiles):>5} | {name:<10} {r['tps']:>8.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['max_kb']:>7.1f}"
            )
        gz = max(len(gzip.compress(ours(t), 6)) for t in tiles) / 1024
        ratio = {k: results["ours"]["tps"] / results[k]["tps"] for k in ("raw", "tipg") if k in results}
        ratio["raw, with the cache"] = results["ours+cache"]["tps"] / results["raw"]["tps"]
        summary.append((z, ratio, gz, results["ours"]))
    print()
    for z, ratio, gz, ours_r in summary:
        parts = ", ".join(f"ours/{k} throughput {v:.2f}x" for k, v in ratio.items())
        print(
            f"z{z}: {parts}; ours p95 {ours_r['p95']:.1f} ms; largest tile {ours_r['max_kb']:.0f} KB ({gz:.0f} KB gzipped)"
        )
    print("goals: ours >= 0.8x raw, >= 2x tipg; z10 city tile p95 < 50 ms and < 500 KB")


if __name__ == "__main__":
    main()
