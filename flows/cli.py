"""The `streetaudit` command line.

Commands import their stage lazily, so `--help` and `db` stay quick; Prefect's server is
only involved under `streetaudit run …`.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

from streetaudit.sql.errors import DatabaseSetupError, StreetauditError

console = Console()
err_console = Console(stderr=True)


class StreetauditGroup(TyperGroup):
    """Turns errors the user can act on into one red line and exit status 2, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StreetauditError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


def _typer(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, cls=StreetauditGroup)


app = _typer(
    "Audit a city's streetscape from street-view imagery: roads and heritage areas in, "
    "sample points, images, segmentation, statistics and vector tiles out. "
    "Uses STREETAUDIT_DATABASE_URL, or a private PostGIS under STREETAUDIT_DATA_DIR (default ./.streetaudit)."
)
db_app = _typer("Start, stop and migrate the database.")
roads_app = _typer("Road centre lines.")
areas_app = _typer("Heritage (historic core) areas.")
points_app = _typer("Sample points along the roads.")
run_app = _typer("Run a stage as a Prefect flow (uses or starts a Prefect server).")
app.add_typer(db_app, name="db")
app.add_typer(roads_app, name="roads")
app.add_typer(areas_app, name="areas")
app.add_typer(points_app, name="points")
app.add_typer(run_app, name="run")


def ready_url() -> str:
    from streetaudit.sql.connect import ready_database

    return ready_database()


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _print_skipped(skipped: list[tuple[int, str]], limit: int = 20) -> None:
    for row, reason in skipped[:limit]:
        console.print(f"  skipped row {row}: {reason}")
    if len(skipped) > limit:
        console.print(f"  … and {len(skipped) - limit} more skipped rows")


# -- db ----------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Initialise (once) and start the private PostGIS cluster, then apply migrations."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.migrate import migrate
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        console.print("STREETAUDIT_DATABASE_URL is set; using that server (nothing to start).")
        url = settings.database_url
    else:
        cluster = local_cluster(settings)
        url = cluster.up()
        console.print(f"PostGIS running: data in {cluster.state().pgdata}, port {cluster.state().port}")
    applied = migrate(url)
    console.print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


@db_app.command("down")
def db_down() -> None:
    """Stop the private cluster (its data stays)."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        console.print("STREETAUDIT_DATABASE_URL is set: that server is not ours to stop.")
        return
    stopped = local_cluster(settings).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Say which database is used and whether the private cluster runs."""
    from streetaudit.sql.connect import local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if settings.database_url:
        import psycopg

        try:
            with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        except psycopg.Error as error:
            raise DatabaseSetupError(f"STREETAUDIT_DATABASE_URL does not answer: {error}") from error
        console.print(f"using STREETAUDIT_DATABASE_URL: reachable, PostGIS {version}")
        return
    cluster = local_cluster(settings)
    state = cluster.state()
    if state is None:
        console.print(f"no private cluster under {settings.data_dir} (run `streetaudit db up`)")
        raise typer.Exit(1)
    running = cluster.running()
    console.print(f"private cluster {'running' if running else 'stopped'}: {state.pgdata}, port {state.port}")
    if not running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url(
    reader: bool = typer.Option(False, "--reader", help="URL of the read-only role streetaudit_reader."),
) -> None:
    """Print a libpq URL for psql, QGIS or pandas (on the last line)."""
    from streetaudit.sql.connect import database_url, local_cluster
    from streetaudit.sql.settings import DatabaseSettings

    settings = DatabaseSettings()
    if reader and not settings.database_url:
        local_cluster(settings).up()
        print(local_cluster(settings).reader_url())
        return
    print(database_url(settings))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations in order; refuses if an applied file changed."""
    from streetaudit.sql.connect import database_url
    from streetaudit.sql.migrate import migrate

    applied = migrate(database_url())
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


# -- roads, areas, points -------------------------------------------------------------------
@roads_app.command("load")
def roads_load(
    path: Path = typer.Argument(..., help="GeoJSON, GeoPackage, Shapefile or OSM PBF (highway ways)."),
    layer: str = typer.Option(None, help="Layer to read (default: the first; 'lines' for OSM)."),
    name_field: str = typer.Option(None, help="Field with the road name ('name' for OSM)."),
    kind_field: str = typer.Option(None, help="Field with the road class ('highway' for OSM)."),
    kinds: str = typer.Option(
        None, help="Keep only these kinds, comma-separated (e.g. primary,residential)."
    ),
    source: str = typer.Option(
        None, help="Source name; reloading a source replaces its roads. Default: the file path."
    ),
) -> None:
    """Load road centre lines (any CRS; multi-lines split; degenerate rows skipped and reported)."""
    from streetaudit.flows.roads import load_roads

    url = ready_url()
    with console.status(f"reading {path.name} and writing roads…"):
        report = load_roads(
            url,
            path,
            layer=layer,
            name_field=name_field,
            kind_field=kind_field,
            kinds=_split(kinds),
            source=source,
        )
    console.print(
        f"loaded {report.loaded} road lines ({report.length_km:.1f} km) from {report.rows} rows of {path}"
        + (f"; removed {report.deleted} no longer in the file" if report.deleted else "")
    )
    _print_skipped(report.skipped)


@areas_app.command("load")
def areas_load(
    path: Path = typer.Argument(..., help="Polygon file (GeoJSON, GeoPackage, Shapefile)."),
    name_field: str = typer.Option(..., help="Field with the area name."),
    kind: str = typer.Option("core", help="Kind given to every area (heritage core by default)."),
    kind_field: str = typer.Option(None, help="Field with a per-area kind, overriding --kind."),
    layer: str = typer.Option(None, help="Layer to read."),
    source: str = typer.Option(
        None, help="Source name; reloading replaces its areas. Default: the file path."
    ),
) -> None:
    """Load heritage areas (invalid polygons repaired, empty ones skipped and reported)."""
    from streetaudit.flows.areas import load_areas

    report = load_areas(
        ready_url(), path, name_field=name_field, kind=kind, kind_field=kind_field, layer=layer, source=source
    )
    console.print(f"loaded {report.loaded} areas from {report.rows} rows of {path}")
    _print_skipped(report.skipped)


@points_app.command("densify")
def points_densify(
    interval: float = typer.Option(30.0, help="Metres between sample points along each road."),
    dedupe_within: float = typer.Option(
        1.0,
        help="Drop a point when a point of an earlier-loaded road lies within this many metres (0: keep all).",
    ),
    srid: int = typer.Option(None, help="Metric CRS to measure in (default: each road's UTM zone)."),
) -> None:
    """Place sample points at 0, d, 2d, … metres along every road, in PostGIS. Idempotent."""
    from streetaudit.flows.points import densify

    url = ready_url()
    with console.status(f"placing sample points every {interval:g} m…"):
        report = densify(url, interval=interval, dedupe_within=dedupe_within, srid=srid)
    console.print(
        f"{report.points} sample points every {interval:g} m: {report.inserted} new, {report.deleted} removed, "
        f"{report.merged} merged into nearby points of other roads; {report.seconds:.2f} s"
    )


# -- collect, images -----------------------------------------------------------------------
images_app = _typer("Collected street-view images: cleaning.")
app.add_typer(images_app, name="images")


def _floats(value: str, option: str) -> list[float]:
    from streetaudit.flows.errors import InputError

    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated numbers, got {value!r}") from None


def _size(value: str) -> tuple[int, int]:
    from streetaudit.flows.errors import InputError

    width, sep, height = value.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InputError(f"--size must look like 1024x512, got {value!r}")
    return int(width), int(height)


@app.command("collect")
def collect_cmd(
    provider: str = typer.Option(
        ..., help="baidu, google, mapillary, synthetic, or folder:/path (keys from STREETAUDIT_* variables)."
    ),
    headings: str = typer.Option(
        "0,90,180,270", help="Compass headings of the views, comma-separated degrees."
    ),
    pitch: float = typer.Option(0.0, help="Vertical angle of the views in degrees."),
    fov: float = typer.Option(90.0, help="Horizontal field of view in degrees."),
    size: str = typer.Option("1024x512", help="Image size WIDTHxHEIGHT (Baidu serves at most 1024x512)."),
    limit: int = typer.Option(None, help="Collect only N points, spread over the city (same N on reruns)."),
    where_area: str = typer.Option(None, help="Only points inside the heritage area of this name."),
    concurrency: int = typer.Option(8, help="Requests in flight at once."),
    rate: float = typer.Option(None, help="At most R requests per second (token bucket)."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Fetch views that failed before again."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fetch street-view images for the sample points; resumable (stored views are never refetched)."""
    from streetaudit.flows.collect import collect, summary_line

    report = collect(
        ready_url(),
        provider,
        headings=_floats(headings, "--headings"),
        pitch=pitch,
        fov=fov,
        size=_size(size),
        limit=limit,
        where_area=where_area,
        concurrency=concurrency,
        rate=rate,
        retry_errors=retry_errors,
        progress=progress,
    )
    console.print(summary_line(report), highlight=False)
    for reason, n in sorted(report.errors.items(), key=lambda kv: -kv[1])[:10]:
        console.print(f"  {n} x {reason}", highlight=False)


@images_app.command("clean")
def images_clean(
    exclude_months: str = typer.Option(
        "11,12,1,2,3", help="Exclude views captured in these months (snow, ice)."
    ),
    min_bytes: int = typer.Option(5000, help="Exclude files smaller than this many bytes."),
    undo: bool = typer.Option(False, "--undo", help="Restore every excluded view to ok."),
) -> None:
    """Mark unusable views excluded (winter, broken, tiny, duplicate placeholders), with the reason."""
    from streetaudit.flows.clean import clean_images

    months = [int(m) for m in _floats(exclude_months, "--exclude-months")] if exclude_months else []
    report = clean_images(ready_url(), exclude_months=months, min_bytes=min_bytes, undo=undo)
    if undo:
        console.print(f"restored {report.restored} excluded views to ok")
        return
    console.print(
        f"checked {report.checked} files; excluded {report.excluded}: {report.broken} missing/broken, "
        f"{report.winter} in excluded months, {report.small} under {min_bytes} bytes, "
        f"{report.duplicates} duplicates ({report.seconds:.1f} s)"
    )
    for point_id, provider, heading, detail in report.examples:
        console.print(f"  point {point_id} {provider} heading {heading:g}: {detail}", highlight=False)
    if report.excluded > len(report.examples):
        console.print(f"  … and {report.excluded - len(report.examples)} more (see image.detail)")


# -- segment -----------------------------------------------------------------------------
def _segment_options(
    terrain: bool,
    label_set: str | None,
    arch: str | None,
    checkpoint: str | None,
    mask_dir: str | None,
    input_size: str | None,
    cache_dir: str | None,
    workers: int | None,
    masks_dir: str | None,
    retry_failed: bool,
) -> dict:
    """Only options the user set reach the backend, which refuses ones it does not take."""
    from streetaudit.flows.errors import InputError

    options: dict = {"terrain": True} if terrain else {}
    if input_size:
        width, sep, height = input_size.lower().partition("x")
        if not sep or not width.isdigit() or not height.isdigit():
            raise InputError(f"--input-size must look like 1024x512 (WIDTHxHEIGHT), got {input_size!r}")
        options["input_size"] = (int(height), int(width))
    named = {
        "label_set": label_set,
        "arch": arch,
        "checkpoint": checkpoint,
        "mask_dir": mask_dir,
        "cache_dir": cache_dir,
        "workers": workers,
        "masks_dir": masks_dir,
    }
    options.update({k: v for k, v in named.items() if v is not None})
    if retry_failed:
        options["retry_failed"] = True
    return options


_SEGMENT_HELP = {
    "model": "hf: hub id or checkpoint folder (default nvidia/segformer-b0-finetuned-cityscapes-1024-1024); "
    "torchvision: .pth file or URL; mmseg: config .py; masks: folder of label maps (default: beside the images).",
    "backend": "hf (transformers), torchvision (FCN/DeepLabV3/LR-ASPP), mmseg (OpenMMLab extra), "
    "masks (import label-map PNGs).",
    "batch_size": "Images per forward pass.",
    "device": "auto (CUDA when available), cpu, cuda or cuda:N.",
    "limit": "Segment at most N images in this run.",
    "save_masks": "Store each predicted label map as a PNG of class ids (mask_uri).",
    "terrain": "Count terrain (ground vegetation: grass, soil) as greenery; a separate model row.",
    "label_set": "Class names: cityscapes, ade20k, mapillary-vistas, a text file (one per line) or a "
    "comma list. Default: the checkpoint's own (hf, mmseg), cityscapes (torchvision, masks).",
    "arch": "torchvision architecture, e.g. deeplabv3_resnet50, fcn_resnet101, lraspp_mobilenet_v3_large.",
    "checkpoint": "mmseg weights file (.pth) for the --model config.",
    "mask_dir": "masks: folder of label maps named IMAGESTEM.labels.png or IMAGESTEM.png.",
    "input_size": "Resize images to WIDTHxHEIGHT for the model (default: the checkpoint's processor).",
    "cache_dir": "Where hub weights are cached (default: HF_HOME).",
    "workers": "DataLoader processes decoding images (default: by device and CPU count).",
    "masks_dir": "Where --save-masks writes (default: STREETAUDIT_DATA_DIR/masks).",
    "retry_failed": "Segment again images recorded as failed (corrupt) for this model.",
}


@app.command("segment")
def segment_cmd(
    model: str = typer.Option(None, help=_SEGMENT_HELP["model"]),
    backend: str = typer.Option("hf", help=_SEGMENT_HELP["backend"]),
    batch_size: int = typer.Option(8, help=_SEGMENT_HELP["batch_size"]),
    device: str = typer.Option("auto", help=_SEGMENT_HELP["device"]),
    limit: int = typer.Option(None, help=_SEGMENT_HELP["limit"]),
    save_masks: bool = typer.Option(False, "--save-masks", help=_SEGMENT_HELP["save_masks"]),
    terrain: bool = typer.Option(False, "--terrain", help=_SEGMENT_HELP["terrain"]),
    label_set: str = typer.Option(None, "--labels", help=_SEGMENT_HELP["label_set"]),
    arch: str = typer.Option(None, help=_SEGMENT_HELP["arch"]),
    checkpoint: str = typer.Option(None, help=_SEGMENT_HELP["checkpoint"]),
    mask_dir: str = typer.Option(None, help=_SEGMENT_HELP["mask_dir"]),
    input_size: str = typer.Option(None, help=_SEGMENT_HELP["input_size"]),
    cache_dir: str = typer.Option(None, help=_SEGMENT_HELP["cache_dir"]),
    workers: int = typer.Option(None, help=_SEGMENT_HELP["workers"]),
    masks_dir: str = typer.Option(None, help=_SEGMENT_HELP["masks_dir"]),
    retry_failed: bool = typer.Option(False, "--retry-failed", help=_SEGMENT_HELP["retry_failed"]),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment collected images into building/road/sky/greenery/sidewalk/car shares. Idempotent."""
    from streetaudit.flows.segment import segment

    options = _segment_options(
        terrain,
        label_set,
        arch,
        checkpoint,
        mask_dir,
        input_size,
        cache_dir,
        workers,
        masks_dir,
        retry_failed,
    )
    report = segment(
        ready_url(),
        model=model,
        backend=backend,
        batch_size=batch_size,
        device=device,
        limit=limit,
        save_masks=save_masks,
        progress=progress,
        **options,
    )
    console.print(
        f"model {report.model_id} ({report.model_name}, {report.label_set}) on {report.device}: "
        f"{report.done} segmented, {report.skipped} already done, {report.failed} failed; "
        f"{report.images_per_s:.1f} images/s",
        highlight=False,
    )
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)


# -- run: Prefect flows -------------------------------------------------------------------
def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@run_app.command("roads")
def run_roads(
    path: Path = typer.Argument(...),
    name_field: str = typer.Option(None),
    kind_field: str = typer.Option(None),
    kinds: str = typer.Option(None),
) -> None:
    """Load roads as the Prefect flow `roads`."""
    _prefect_env()
    from streetaudit.flows.roads import roads_flow

    roads_flow(ready_url(), str(path), name_field=name_field, kind_field=kind_field, kinds=_split(kinds))


@run_app.command("points")
def run_points(interval: float = typer.Option(30.0), dedupe_within: float = typer.Option(1.0)) -> None:
    """Densify as the Prefect flow `points`."""
    _prefect_env()
    from streetaudit.flows.points import points_flow

    points_flow(ready_url(), interval=interval, dedupe_within=dedupe_within)


@run_app.command("collect")
def run_collect(
    provider: str = typer.Option(..., help="baidu, google, mapillary, synthetic, or folder:/path."),
    headings: str = typer.Option("0,90,180,270", help="Compass headings, comma-separated degrees."),
    pitch: float = typer.Option(0.0, help="Vertical angle of the views in degrees."),
    fov: float = typer.Option(90.0, help="Horizontal field of view in degrees."),
    size: str = typer.Option("1024x512", help="Image size WIDTHxHEIGHT."),
    limit: int = typer.Option(None, help="Collect only N points."),
    where_area: str = typer.Option(None, help="Only points inside this heritage area."),
    concurrency: int = typer.Option(8, help="Requests in flight at once."),
    rate: float = typer.Option(None, help="At most R requests per second."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Fetch failed views again."),
) -> None:
    """Collect images as the Prefect flow `collect` (retried as a whole; it resumes)."""
    _prefect_env()
    from streetaudit.flows.collect import collect_flow

    collect_flow(
        ready_url(),
        provider,
        headings=_floats(headings, "--headings"),
        pitch=pitch,
        fov=fov,
        size=_size(size),
        limit=limit,
        where_area=where_area,
        concurrency=concurrency,
        rate=rate,
        retry_errors=retry_errors,
    )


@run_app.command("segment")
def run_segment(
    model: str = typer.Option(None, help=_SEGMENT_HELP["model"]),
    backend: str = typer.Option("hf", help=_SEGMENT_HELP["backend"]),
    batch_size: int = typer.Option(8, help=_SEGMENT_HELP["batch_size"]),
    device: str = typer.Option("auto", help=_SEGMENT_HELP["device"]),
    limit: int = typer.Option(None, help=_SEGMENT_HELP["limit"]),
    save_masks: bool = typer.Option(False, "--save-masks", help=_SEGMENT_HELP["save_masks"]),
    terrain: bool = typer.Option(False, "--terrain", help=_SEGMENT_HELP["terrain"]),
    label_set: str = typer.Option(None, "--labels", help=_SEGMENT_HELP["label_set"]),
    arch: str = typer.Option(None, help=_SEGMENT_HELP["arch"]),
    checkpoint: str = typer.Option(None, help=_SEGMENT_HELP["checkpoint"]),
    mask_dir: str = typer.Option(None, help=_SEGMENT_HELP["mask_dir"]),
    input_size: str = typer.Option(None, help=_SEGMENT_HELP["input_size"]),
    workers: int = typer.Option(None, help=_SEGMENT_HELP["workers"]),
) -> None:
    """Segment images as the Prefect flow `segment`."""
    _prefect_env()
    from streetaudit.flows.segment import segment_flow

    options = _segment_options(
        terrain, label_set, arch, checkpoint, mask_dir, input_size, None, workers, None, False
    )
    segment_flow(
        ready_url(),
        model=model,
        backend=backend,
        batch_size=batch_size,
        device=device,
        limit=limit,
        save_masks=save_masks,
        options=options,
    )


# -- stats, serve, pipeline (issue 5) -------------------------------------------------------
stats_app = _typer("Statistics per segment and heritage area: refresh, plot, export.")
app.add_typer(stats_app, name="stats")


@stats_app.command("refresh")
def stats_refresh(
    model: str = typer.Option(None, help="Segmentation model id or name (default: the most recent)."),
    show: bool = typer.Option(True, "--show/--quiet", help="Print the core-vs-rest table."),
) -> None:
    """Recompute the api views from one model, compare cores with the rest, bump the data version."""
    from streetaudit.flows.stats import refresh_stats

    report = refresh_stats(ready_url(), model=model)
    console.print(
        f"stats from model {report.model_id} ({report.model_name}): {report.points} points with data, "
        f"{report.segments} segments, {report.areas} heritage areas; data version {report.version} "
        f"({report.seconds:.2f} s)"
    )
    if show:
        from streetaudit.flows.stats import comparison_table

        console.print(comparison_table(report.comparisons))


@stats_app.command("plot")
def stats_plot(out: Path = typer.Option(Path("plots"), help="Folder for the PNG files.")) -> None:
    """Write PNGs: segment means and std per element, heritage areas, box plots core vs rest."""
    from streetaudit.flows.plots import plot_stats

    for path in plot_stats(ready_url(), out):
        console.print(f"wrote {path}")


@stats_app.command("export")
def stats_export(
    format: str = typer.Option(
        ..., "--format", help="gpkg (one file), parquet or csv (a folder, a file per view)."
    ),
    out: Path = typer.Option(..., help="Output .gpkg file, or folder for parquet/csv."),
) -> None:
    """Export api.segment_stats, area_stats, point_elements and area_comparison."""
    from streetaudit.flows.export import export_stats

    report = export_stats(ready_url(), format, out)
    for view, n in report.rows.items():
        console.print(f"{view}: {n} rows")
    for path in report.files:
        console.print(f"wrote {path}")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Serve tiles, TileJSON, /stats, OGC API Features (/ogc) and the map (/map) over HTTP."""
    import uvicorn

    from streetaudit.api.settings import ApiSettings

    settings = ApiSettings()
    url = settings.database_url or ready_url()
    os.environ["STREETAUDIT_API_DATABASE_URL"] = url
    console.print(f"map: http://{host}:{port}/map   layers: http://{host}:{port}/index.json")
    uvicorn.run(
        "streetaudit.api.app:app", host=host, port=port, workers=workers, log_level="info", proxy_headers=True
    )


@run_app.command("stats")
def run_stats(model: str = typer.Option(None, help="Segmentation model id or name.")) -> None:
    """Refresh the statistics as the Prefect flow `stats`."""
    _prefect_env()
    from streetaudit.flows.stats import stats_flow

    stats_flow(ready_url(), model=model)


@run_app.command("pipeline")
def run_pipeline_cmd(
    roads: Path = typer.Option(None, help="Road file to (re)load first; default: keep the loaded roads."),
    kinds: str = typer.Option(None, help="Road kinds to keep, comma-separated."),
    areas: Path = typer.Option(None, help="Heritage area file to (re)load (name field 'name')."),
    interval: float = typer.Option(30.0, help="Metres between sample points."),
    provider: str = typer.Option(None, help="Street-view provider for the collect stage."),
    collect_limit: int = typer.Option(None, help="Collect at most N points."),
    model: str = typer.Option(None, help="Segmentation checkpoint (default: the backend's default)."),
    backend: str = typer.Option("hf", help="Segmentation backend."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    stages: str = typer.Option(
        ",".join(("roads", "points", "collect", "clean", "segment", "stats")),
        help="Stages to run, comma-separated; they always run in pipeline order.",
    ),
) -> None:
    """Run roads → points → collect → clean → segment → stats once, as the Prefect flow `pipeline`."""
    _prefect_env()
    from streetaudit.flows.pipeline import pipeline_flow

    pipeline_flow(
        ready_url(),
        roads_path=str(roads) if roads else None,
        areas_path=str(areas) if areas else None,
        interval=interval,
        provider=provider,
        collect_limit=collect_limit,
        model=model,
        backend=backend,
        device=device,
        road_kinds=_split(kinds),
        stages=_split(stages),
    )


# -- demo --------------------------------------------------------------------------------
@app.command("demo")
def demo(
    interval: float = typer.Option(30.0, help="Metres between sample points."),
) -> None:
    """Run the whole pipeline offline on real OSM roads of central Helsinki."""
    from streetaudit.flows.demo import run_demo

    run_demo(ready_url(), console, interval=interval)


def main() -> None:
    app(prog_name="streetaudit")


if __name__ == "__main__":
    main()
