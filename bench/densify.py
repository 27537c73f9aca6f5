"""Benchmark: our SQL densification against raw ST_LineInterpolatePoints inserts.

Run: `python bench/densify.py` (starts a throwaway cluster; `--url` names a database
whose roads, points and images it deletes). On the same 10,000 synthetic ~500 m roads, in the
same run, interleaved:

- ours: `streetaudit.densify_roads()` into `streetaudit.sample_point` (start points,
  seq and distance, merging of near points, keeping unchanged rows, the table's
  primary key, unique (road_id, seq), foreign key to road and GiST index);
- raw: one `INSERT … SELECT ST_LineInterpolatePoints(…)` into a bare table (no keys,
  no index): the floor for computing and writing the points;
- raw, same table shape: the same insert into a table shaped like sample_point (same
  keys, foreign key and GiST index), i.e. what a naive densify would cost.

The figures that matter are the throughput ratios.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import psycopg
import shapely

from streetaudit.sql.connect import scratch_database

RAW_SQL = """
INSERT INTO {table} (road_id, geom)
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
        conn.execute("DROP TABLE IF EXISTS bench_raw, bench_shaped")
        conn.execute("CREATE TABLE bench_raw (road_id bigint, geom geometry(Point, 4326))")
        conn.execute(
            """CREATE TABLE bench_shaped (
                   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   road_id bigint NOT NULL REFERENCES streetaudit.road (id) ON DELETE CASCADE,
                   seq integer, distance_m double precision, geom geometry(Point, 4326) NOT NULL)"""
        )
        conn.execute("CREATE INDEX ON bench_shaped USING gist (geom)")
        conn.execute("CREATE INDEX ON bench_shaped (road_id, seq)")


def time_ours(url: str, interval: float, dedupe: float) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.sample_point CASCADE")
        conn.commit()
        start = time.perf_counter()
        points = conn.execute(
            "SELECT points FROM streetaudit.densify_roads(%s, %s)", (interval, dedupe)
        ).fetchone()[0]
        conn.commit()
        return time.perf_counter() - start, points


def time_raw(url: str, interval: float, table: str = "bench_raw") -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {table}")
        conn.commit()
        start = time.perf_counter()
        cur = conn.execute(RAW_SQL.format(table=table), {"d": interval})
        conn.commit()
        return time.perf_counter() - start, cur.rowcount


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roads", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--dedupe-within", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--url",
        help="Use this database instead of a throwaway cluster: its roads, points and images are DELETED.",
    )
    args = parser.parse_args()

    with scratch_database(args.url) as url:
        load(url, synthetic_roads(args.roads))
        ours, raw, shaped = [], [], []
        for _ in range(args.repeat):  # interleaved, so drift hits all alike
            ours.append(time_ours(url, args.interval, args.dedupe_within))
            raw.append(time_raw(url, args.interval))
            shaped.append(time_raw(url, args.interval, "bench_shaped"))
        rates = {}
        print(
            f"roads: {args.roads}  interval: {args.interval} m  dedupe: {args.dedupe_within} m  (best of {args.repeat})"
        )
        for label, runs in [
            ("ours  densify_roads()", ours),
            ("raw   bare table", raw),
            ("raw   sample_point shape", shaped),
        ]:
            seconds, points = min(runs)
            rates[label] = points / seconds
            print(f"{label:26s}: {points:8d} points  {seconds:6.3f} s  {rates[label]:10.0f} points/s")
        ours_rate = rates["ours  densify_roads()"]
        print(
            f"ratio ours / raw bare table       : {ours_rate / rates['raw   bare table']:.2f}  (goal >= 0.80)"
        )
        print(f"ratio ours / raw same table shape : {ours_rate / rates['raw   sample_point shape']:.2f}")


if __name__ == "__main__":
    main()
