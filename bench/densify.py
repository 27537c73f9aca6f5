"""Benchmark: our SQL densification against one raw ST_LineInterpolatePoints insert.

Run: `python bench/densify.py` (starts a throwaway cluster unless
STREETAUDIT_DATABASE_URL is set). Both are measured on the same 10,000 synthetic
~500 m roads in the same run; the figure that matters is the throughput ratio.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import shapely

from streetaudit.sql.cluster import LocalCluster
from streetaudit.sql.migrate import migrate
from streetaudit.sql.settings import DatabaseSettings

RAW_SQL = """
INSERT INTO bench_raw (road_id, geom)
SELECT id, (ST_Dump(ST_Transform(
           ST_LineInterpolatePoints(gm, LEAST(%(d)s / ST_Length(gm), 1.0), true), 4326))).geom
FROM (SELECT id, ST_Transform(geom, streetaudit.utm_srid(geom)) AS gm FROM streetaudit.road) AS r
"""


def synthetic_roads(n: int, seed: int = 7) -> list[shapely.LineString]:
    """Wiggly ~500 m roads scattered over a 10 km square near Helsinki."""
    rng = np.random.default_rng(seed)
    lat0, lon0 = 60.17, 24.94
    m_per_deg_lat = 111_320.0
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat0))
    roads = []
    for _ in range(n):
        x, y = rng.uniform(0, 10_000, 2)
        heading = rng.uniform(0, 2 * math.pi)
        coords = [(x, y)]
        for _ in range(10):
            heading += rng.normal(0, 0.1)
            x, y = x + 50 * math.cos(heading), y + 50 * math.sin(heading)
            coords.append((x, y))
        roads.append(
            shapely.LineString([(lon0 + cx / m_per_deg_lon, lat0 + cy / m_per_deg_lat) for cx, cy in coords])
        )
    return roads


def load(url: str, roads: list[shapely.LineString]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.road CASCADE")
        with conn.cursor().copy(
            "COPY streetaudit.road (source, source_id, geom, length_m) FROM STDIN"
        ) as copy:
            for i, wkb in enumerate(shapely.to_wkb(roads, hex=True, include_srid=True)):
                copy.write_row(("bench", str(i), wkb, 500.0))
        conn.execute("UPDATE streetaudit.road SET length_m = ST_Length(geom::geography)")
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute("CREATE TABLE bench_raw (road_id bigint, geom geometry(Point, 4326))")
        conn.execute("VACUUM ANALYZE streetaudit.road") if conn.autocommit else None


def time_ours(url: str, interval: float, dedupe: float) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.sample_point")
        conn.commit()
        start = time.perf_counter()
        points = conn.execute(
            "SELECT points FROM streetaudit.densify_roads(%s, %s)", (interval, dedupe)
        ).fetchone()[0]
        conn.commit()
        return time.perf_counter() - start, points


def time_raw(url: str, interval: float) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE bench_raw")
        conn.commit()
        start = time.perf_counter()
        cur = conn.execute(RAW_SQL, {"d": interval})
        conn.commit()
        return time.perf_counter() - start, cur.rowcount


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roads", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--dedupe-within", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = DatabaseSettings()
    cluster = None
    url = settings.database_url
    if url is None:
        cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="sa-bench-")), fast_unsafe=True)
        url = cluster.up()
    try:
        migrate(url)
        load(url, synthetic_roads(args.roads))
        ours, raw = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            ours.append(time_ours(url, args.interval, args.dedupe_within))
            raw.append(time_raw(url, args.interval))
        ours_t, ours_n = min(ours)
        raw_t, raw_n = min(raw)
        ours_rate, raw_rate = ours_n / ours_t, raw_n / raw_t
        print(f"roads: {args.roads}  interval: {args.interval} m  dedupe: {args.dedupe_within} m")
        print(f"ours  densify_roads      : {ours_n:8d} points  {ours_t:6.3f} s  {ours_rate:10.0f} points/s")
        print(f"raw   ST_LineInterpolate : {raw_n:8d} points  {raw_t:6.3f} s  {raw_rate:10.0f} points/s")
        print(f"ratio ours/raw throughput: {ours_rate / raw_rate:.2f}  (goal >= 0.80)")
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()
