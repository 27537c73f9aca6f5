"""Benchmark: a whole synthetic city, built in SQL, from densify to the tiles readers get.

Run: `python bench/scale.py` (size S, a throwaway cluster) or `python bench/scale.py --size S --size M`
(both, then the growth exponents between them). Sizes: S ≈ 50k images, M ≈ 490k, L ≈ 3.9M, or
`--images N` for any other. `--url` names a database of your own: its roads, points, images,
areas and models are DELETED.

The city is a Harbin-like street grid (UTM 52N, 120 m blocks, one road row per block edge,
named streets and avenues of three kinds), two core heritage areas and a buffer area, with
four headings per sample point, every image ok and segmented by one synthetic model whose
values drift across the city. Everything is made by INSERT … SELECT over generate_series, so
the build costs what the database costs, not a Python loop. Then it measures:

- densify: `streetaudit.densify_roads(30, 1)` over the grid;
- full refresh: `streetaudit stats refresh` (the flow: SQL refresh, scipy comparison, commit),
  first on the new city (the permutation draws made and kept), then `--full` again (draws
  read back: what every later full refresh costs), with the share spent in the comparison;
- +1% images: one more heading at 1% of the points, then a refresh, which is incremental
  (only those points, their roads, overview cells and tiles; the area statistics and the
  comparison whole), and its ratio to the full one; then a refresh with nothing changed
  (which recomputes nothing);
- reader wait: a thread connected as the reader role calls tiles (z10, z12, z14) and reads
  api.area_stats and api.data_version in a loop, alone (baseline) and during a full refresh:
  the p95 and max of its statements' wall time, and how many 10 ms samples of its backend
  found it waiting for a lock (a busy machine slows statements; only a lock is the refresh);
- tiles: for each zoom 0..--max-zoom, up to --tiles-per-zoom tiles covering the city, each
  fetched as the reader: p50, p95 and max size (the 500 KB budget is the figure to watch);
- database size;
- +1% roads: a diagonal lane across every fiftieth block, then `points densify` as the command
  runs it (only the new roads: densify_new_roads) and the same over every road (`--full`).

The figures that matter are the ratios (refresh wait vs baseline, +1% vs full) and, with two
sizes, the exponents k in cost ∝ images^k (1 = linear).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import psycopg.sql

from streetaudit.flows.points import densify
from streetaudit.flows.stats import refresh_stats
from streetaudit.sql.cluster import LocalCluster
from streetaudit.sql.migrate import migrate
from streetaudit.testing.grid_city import IMAGES_PER_NODE, build, city_tiles, grow, grow_roads

SIZES = {"S": 50_000, "M": 490_000, "L": 3_900_000}


@dataclass
class Result:
    label: str
    grid: int
    roads: int = 0
    points: int = 0
    images: int = 0
    densify_s: float = 0.0
    build_s: float = 0.0
    first_refresh_s: float = 0.0
    refresh_s: float = 0.0
    comparison_s: float = 0.0
    incremental_s: float = 0.0
    incremental_mode: str = ""
    incremental_points: int = 0
    incremental_comparison_s: float = 0.0
    unchanged_s: float = 0.0
    roads_added: int = 0
    densify_grown_s: float = 0.0
    densify_grown_full_s: float = 0.0
    baseline_p95_ms: float = 0.0
    baseline_max_ms: float = 0.0
    wait_p95_ms: float = 0.0
    wait_max_ms: float = 0.0
    reader_requests: int = 0
    lock_wait_samples: str = ""
    db_bytes: int = 0
    tiles: dict[int, dict] = field(default_factory=dict)


@contextlib.contextmanager
def databases(url: str | None, reader: str | None) -> Iterator[tuple[str, str]]:
    """(owner URL, reader URL): the given ones, or a throwaway cluster's (fsync off)."""
    if url is not None:
        migrate(url)
        yield url, reader or url
        return
    root = Path(tempfile.mkdtemp(prefix="sa-scale-"))
    cluster = LocalCluster(root, fast_unsafe=True)
    try:
        owner = cluster.up()
        migrate(owner)
        yield owner, cluster.reader_url()
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


class ReaderLoop:
    """A reader (as the API's role) asking for tiles and statistics until stopped.

    A second connection (the owner's) samples the reader's backend every 10 ms and counts
    the samples where it waits for a lock: that separates waiting on the refresh from a
    slow statement on a busy machine.
    """

    def __init__(self, reader_url: str, tiles: list[tuple[int, int, int]], owner_url: str):
        self.url, self.tiles, self.owner_url = reader_url, tiles, owner_url
        self.latencies: list[float] = []
        self.lock_samples = 0
        self.samples = 0
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._monitor = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            while not self._stop.is_set():
                if self._pid is not None:
                    waiting = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                        (self._pid,),
                    ).fetchone()[0]
                    self.samples += 1
                    self.lock_samples += waiting
                time.sleep(0.01)

    def _run(self) -> None:
        queries = [("SELECT api.roads(%s, %s, %s)", t) for t in self.tiles] + [
            ("SELECT * FROM api.area_stats", ()),
            ("SELECT version FROM api.data_version", ()),
        ]
        with psycopg.connect(self.url, autocommit=True) as conn:
            self._pid = conn.info.backend_pid
            i = 0
            while not self._stop.is_set():
                query, params = queries[i % len(queries)]
                start = time.perf_counter()
                conn.execute(query, params).fetchall()
                self.latencies.append(time.perf_counter() - start)
                i += 1

    def __enter__(self) -> ReaderLoop:
        self._thread.start()
        self._monitor.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._monitor.join()

    def figures(self) -> tuple[float, float]:
        lat = np.array(self.latencies) * 1000
        return float(np.percentile(lat, 95)), float(lat.max())


def reader_tiles(url: str) -> list[tuple[int, int, int]]:
    picked = []
    for z in (10, 12, 14):
        tiles = city_tiles(url, z)
        picked.append(tiles[len(tiles) // 2])
    return picked


def measure_tiles(reader_url: str, owner_url: str, max_zoom: int, per_zoom: int) -> dict[int, dict]:
    rng = random.Random(5)
    out = {}
    with psycopg.connect(reader_url, autocommit=True) as conn:
        for z in range(max_zoom + 1):
            tiles = city_tiles(owner_url, z)
            sample = tiles if len(tiles) <= per_zoom else rng.sample(tiles, per_zoom)
            times, sizes = [], []
            for t in sample:
                start = time.perf_counter()
                data = conn.execute("SELECT api.roads(%s, %s, %s)", t).fetchone()[0]
                times.append(time.perf_counter() - start)
                sizes.append(len(data))
            ms = np.array(times) * 1000
            out[z] = {
                "tiles": len(tiles),
                "sampled": len(sample),
                "p50": float(np.percentile(ms, 50)),
                "p95": float(np.percentile(ms, 95)),
                "max_kb": max(sizes) / 1024,
                "over": sum(s > 500_000 for s in sizes),
            }
    return out


def run_size(owner: str, reader: str, label: str, images: int, args) -> Result:
    grid = max(4, round(math.sqrt(images / IMAGES_PER_NODE)))
    result = Result(label, grid)
    print(f"[{label}] building a {grid} x {grid} grid city …", flush=True)
    city = build(owner, grid)
    model = city.model_id
    result.roads, result.points, result.images = city.roads, city.points, city.images
    result.build_s, result.densify_s = city.build_s, city.densify_s
    print(
        f"[{label}] {result.roads} roads, {result.points} points, {result.images} images; refreshing …",
        flush=True,
    )
    start = time.perf_counter()
    refresh_stats(owner, model=model)
    result.first_refresh_s = time.perf_counter() - start
    start = time.perf_counter()
    full = refresh_stats(owner, model=model, full=True)
    result.refresh_s = time.perf_counter() - start
    result.comparison_s = full.comparison_seconds
    tiles = reader_tiles(owner)
    with ReaderLoop(reader, tiles, owner) as alone:
        time.sleep(args.baseline_seconds)
    result.baseline_p95_ms, result.baseline_max_ms = alone.figures()
    with ReaderLoop(reader, tiles, owner) as during:
        # Nothing changed since the first refresh: --full, or it would recompute nothing.
        refresh_stats(owner, model=model, full=True)
    result.wait_p95_ms, result.wait_max_ms = during.figures()
    result.reader_requests = len(during.latencies)
    result.lock_wait_samples = f"{during.lock_samples}/{during.samples}"
    added = grow(owner, model)
    start = time.perf_counter()
    grown = refresh_stats(owner, model=model)
    result.incremental_s = time.perf_counter() - start
    result.incremental_mode, result.incremental_points = grown.mode, grown.recomputed_points
    result.incremental_comparison_s = grown.comparison_seconds
    start = time.perf_counter()
    refresh_stats(owner, model=model)
    result.unchanged_s = time.perf_counter() - start
    print(f"[{label}] +{added} images refreshed; tiles …", flush=True)
    result.tiles = measure_tiles(reader, owner, args.max_zoom, args.tiles_per_zoom)
    with psycopg.connect(owner) as conn:
        result.db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    # Last, so the tiles above are of the city as refreshed: +1% roads, densified as the
    # command does (only the new roads), then the same over every road (--full).
    result.roads_added = grow_roads(owner)
    start = time.perf_counter()
    grown = densify(owner)
    result.densify_grown_s = time.perf_counter() - start
    assert grown.new_roads == result.roads_added, grown
    start = time.perf_counter()
    densify(owner, full=True)
    result.densify_grown_full_s = time.perf_counter() - start
    return result


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: list[Result]) -> None:
    rows = [
        ("grid (streets per side)", [str(r.grid) for r in results]),
        ("roads", [str(r.roads) for r in results]),
        ("sample points", [str(r.points) for r in results]),
        ("images (segmented)", [str(r.images) for r in results]),
        ("build city in SQL, s", [fmt(r.build_s) for r in results]),
        ("densify, s", [fmt(r.densify_s) for r in results]),
        ("roads added (+1%)", [str(r.roads_added) for r in results]),
        ("densify after +1% roads (new roads only), s", [fmt(r.densify_grown_s) for r in results]),
        ("  the same over every road (--full), s", [fmt(r.densify_grown_full_s) for r in results]),
        ("first refresh (permutation draws made), s", [fmt(r.first_refresh_s) for r in results]),
        ("full refresh (--full), s", [fmt(r.refresh_s) for r in results]),
        ("  of which the comparison (scipy), s", [fmt(r.comparison_s) for r in results]),
        ("refresh after +1% images, s", [fmt(r.incremental_s) for r in results]),
        ("  its mode", [r.incremental_mode for r in results]),
        ("  points recomputed", [str(r.incremental_points) for r in results]),
        ("  of which the comparison (scipy), s", [fmt(r.incremental_comparison_s) for r in results]),
        ("  ratio to full", [fmt(r.incremental_s / r.refresh_s) for r in results]),
        ("refresh with nothing changed, s", [fmt(r.unchanged_s) for r in results]),
        ("reader p95 alone, ms", [fmt(r.baseline_p95_ms, ".1f") for r in results]),
        ("reader max alone, ms", [fmt(r.baseline_max_ms, ".1f") for r in results]),
        ("reader p95 during refresh, ms", [fmt(r.wait_p95_ms, ".1f") for r in results]),
        ("reader max during refresh, ms", [fmt(r.wait_max_ms, ".1f") for r in results]),
        ("  reader requests during refresh", [str(r.reader_requests) for r in results]),
        ("  samples reader waits on a lock", [r.lock_wait_samples for r in results]),
        ("database size, MB", [fmt(r.db_bytes / 2**20, ".1f") for r in results]),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"{'':{width}}  " + "  ".join(f"{r.label:>10}" for r in results))
    for name, values in rows:
        print(f"{name:{width}}  " + "  ".join(f"{v:>10}" for v in values))
    print()
    print("api.roads tiles as the reader (sampled tiles covering the city)")
    header = f"{'size':>4} {'z':>3} {'tiles':>7} {'sampled':>7} {'p50 ms':>8} {'p95 ms':>8} {'max KB':>8} {'>500KB':>6}"
    print(header)
    for r in results:
        for z, t in r.tiles.items():
            print(
                f"{r.label:>4} {z:>3} {t['tiles']:>7} {t['sampled']:>7} {t['p50']:>8.1f} {t['p95']:>8.1f} "
                f"{t['max_kb']:>8.1f} {t['over']:>6}"
            )
    for a, b in itertools.pairwise(results):
        scale = math.log(b.images / a.images)
        print()
        print(f"growth exponents {a.label} -> {b.label} (cost ∝ images^k; images x{b.images / a.images:.1f})")

        def k(x: float, y: float, scale: float = scale) -> str:
            return fmt(math.log(y / x) / scale) if x > 0 and y > 0 else "n/a"

        for name, x, y in [
            ("densify", a.densify_s, b.densify_s),
            ("full refresh", a.refresh_s, b.refresh_s),
            ("refresh after +1% (incremental)", a.incremental_s, b.incremental_s),
            ("reader max during refresh", a.wait_max_ms, b.wait_max_ms),
            ("database size", a.db_bytes, b.db_bytes),
        ]:
            print(f"  {name:28s} k = {k(x, y)}")
        zooms = sorted(set(a.tiles) & set(b.tiles))
        print(
            "  tile max size by zoom      "
            + " ".join(f"z{z}:{k(a.tiles[z]['max_kb'], b.tiles[z]['max_kb'])}" for z in zooms)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", action="append", choices=sorted(SIZES), help="S, M or L (repeat for growth exponents)"
    )
    parser.add_argument("--images", type=int, action="append", help="explicit image counts instead of --size")
    parser.add_argument("--max-zoom", type=int, default=16, help="measure tiles of zooms 0 .. this")
    parser.add_argument("--tiles-per-zoom", type=int, default=30, help="tiles sampled per zoom")
    parser.add_argument(
        "--baseline-seconds", type=float, default=2.0, help="reader loop alone, before a refresh"
    )
    parser.add_argument(
        "--url",
        help="Use this database instead of a throwaway cluster: its roads, areas, images and models are DELETED.",
    )
    parser.add_argument("--reader-url", help="The reader role's URL for --url (default: --url itself).")
    args = parser.parse_args()
    sizes = [(s, SIZES[s]) for s in args.size or []] + [(str(n), n) for n in args.images or []]
    if not sizes:
        sizes = [("S", SIZES["S"])]
    sizes.sort(key=lambda s: s[1])
    with databases(args.url, args.reader_url) as (owner, reader):
        results = [run_size(owner, reader, label, images, args) for label, images in sizes]
    report(results)


if __name__ == "__main__":
    main()
