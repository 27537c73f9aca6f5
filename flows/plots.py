"""`streetaudit stats plot`: figures like the method's, for a planner to read without the table.

Figures read schema `api` only. Maps are drawn in the city's UTM zone (ST_Transform in
SQL), so lengths on them are metres and the scale bar is true. The unit of the maps is
the street where api.street_stats exists (continuous streets split at junctions), else
the road as loaded; `unit` chooses. Every figure is written in each format asked for
(PNG to look at, SVG to edit or print at any size, its text kept as text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row

from streetaudit.flows.errors import InputError
from streetaudit.flows.output_files import staged_folder
from streetaudit.flows.plot_boxes import Group
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.sql.rows import one, scalar

# unit -> its statistics view in schema api (a fixed allow-list: never a user's string).
UNITS = {"street": "street_stats", "road": "road_stats"}
FORMATS = ("png", "svg")


@dataclass
class PlotData:
    unit: str
    geoms: list  # shapely lines in metres, one per unit
    means: np.ndarray  # units x ELEMENTS, NaN where no data
    stds: np.ndarray
    areas: list[tuple[int, str, str, object]]  # area_id, name, kind, polygon in metres
    values: np.ndarray  # points x ELEMENTS
    area_ids: list[set[int]]  # the areas each point lies in
    in_core: np.ndarray
    comparison: list[dict]


def available_units(conn: psycopg.Connection) -> dict[str, bool]:
    """Each unit whose statistics view exists, streets first, and whether it has rows
    (api.street_stats exists from the migration on, but is empty until `streets build`)."""
    found = {}
    for unit, view in UNITS.items():
        if scalar(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"api.{view}",))):
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier("api", view))
            found[unit] = scalar(conn.execute(query))
    return found


def choose_unit(conn: psycopg.Connection, unit: str | None) -> str:
    """The unit asked for; by default streets once they are built, else roads."""
    if unit is not None and unit not in UNITS:
        raise InputError(f"--unit {unit}: expected one of {', '.join(UNITS)}")
    units = available_units(conn)
    if unit is None:
        filled = [u for u, rows in units.items() if rows]
        return (filled or list(units) or ["road"])[0]
    if unit not in units:
        raise InputError(f"--unit {unit}: api.{UNITS[unit]} does not exist in this database")
    if not units[unit] and unit == "street":
        raise InputError("--unit street: no streets yet; run `streetaudit streets build` first")
    return unit


def utm_srid(conn: psycopg.Connection, view: str) -> int:
    """The WGS 84 / UTM zone of the data's centre: metres with under 0.1 % scale error across a city."""
    lon, lat = one(
        conn.execute(
            sql.SQL(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) AS c FROM {}) s"
            ).format(sql.Identifier("api", view))
        )
    )
    if lon is None:
        return 3857
    zone = min(60, int((lon + 180) // 6) + 1)
    return (32700 if lat < 0 else 32600) + zone


def read_plot_data(url: str, unit: str | None = None) -> PlotData:
    with psycopg.connect(url) as conn:
        unit = choose_unit(conn, unit)
        view = UNITS[unit]
        srid = utm_srid(conn, view)
        cols = sql.SQL(", ").join(sql.Identifier(f"{e}_{s}") for s in ("mean", "std") for e in ELEMENTS)
        rows = conn.execute(
            sql.SQL(
                "SELECT ST_AsBinary(ST_Transform(geom, %s)), {} FROM {} WHERE geom IS NOT NULL ORDER BY 1"
            ).format(cols, sql.Identifier("api", view)),
            (srid,),
        ).fetchall()
        areas = conn.execute(
            """SELECT area_id, area_name, kind, ST_AsBinary(ST_Transform(geom, %s))
               FROM api.area_stats WHERE area_id IS NOT NULL ORDER BY area_id""",
            (srid,),
        ).fetchall()
        points = conn.execute(
            f"SELECT {', '.join(ELEMENTS)}, area_ids, in_core FROM api.point_elements ORDER BY point_id"
        ).fetchall()
        with conn.cursor(row_factory=dict_row) as cur:
            comparison = cur.execute("SELECT * FROM api.area_comparison").fetchall()
    if not rows:
        raise InputError(f"no {unit}s to plot; load roads and run `streetaudit stats refresh` first")
    table = np.array([[np.nan if v is None else v for v in r[1:]] for r in rows], dtype=float)
    n = len(ELEMENTS)
    return PlotData(
        unit=unit,
        geoms=list(shapely.from_wkb([bytes(r[0]) for r in rows])),
        means=table[:, :n],
        stds=table[:, n:],
        areas=[(a, name, kind, shapely.from_wkb(bytes(wkb))) for a, name, kind, wkb in areas],
        values=np.array([p[:n] for p in points], dtype=float).reshape(-1, n),
        area_ids=[set(p[n]) for p in points],
        in_core=np.array([p[n + 1] for p in points], dtype=bool),
        comparison=comparison,
    )


def parse_formats(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    parts = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    bad = [p for p in parts if p not in FORMATS]
    if bad or not parts:
        given = text if isinstance(text, str) else ",".join(text)
        raise InputError(f"--format {given or '(empty)'}: expected png, svg or png,svg")
    return tuple(dict.fromkeys(parts))


def save(fig, folder: Path, stem: str, formats: tuple[str, ...]) -> list[str]:
    """Write one figure in every format; SVG text stays text (searchable, editable)."""
    import matplotlib
    import matplotlib.pyplot as plt

    names = []
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "streetaudit"}):
        for fmt in formats:
            name = f"{stem}.{fmt}"
            fig.savefig(folder / name, dpi=130, metadata={"Date": None} if fmt == "svg" else None)
            names.append(name)
            # The layout is solved by the first save; solving it again for the next format
            # would only cost the same seconds for the same positions.
            fig.set_layout_engine("none")
    plt.close(fig)
    return names


def plot_stats(
    url: str,
    out: Path,
    *,
    unit: str | None = None,
    formats: str | tuple[str, ...] = FORMATS,
    report: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the maps, the heritage areas and the box plots into `out`; returns the files.

    `report` hears each figure's name once it is written (drawing all takes seconds)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    formats = parse_formats(formats)
    out = Path(out)
    # Staged (output_files): an unwritable --out is refused before the queries, and a
    # failure halfway leaves no half set of figures.
    with staged_folder(out) as stage:
        names = draw_all(read_plot_data(url, unit), stage, formats, report or (lambda _name: None))
        from streetaudit.flows.heat_plots import heat_panel  # the heat-map panel, once `explain` ran

        panel = heat_panel(url, stage)
        if panel is not None:
            names.append(panel.name)
    return [out / name for name in names]


def core_groups(data: PlotData) -> list[Group]:
    """All cores together, then each core area: the comparisons of api.area_comparison."""
    pooled = [row["area_name"] for row in data.comparison if row["area_id"] is None]
    groups = [Group(None, pooled[0] if pooled else "all core areas", data.in_core)]
    for area_id, name, kind, _geom in data.areas:
        if kind == "core":
            groups.append(
                Group(area_id, name, np.array([area_id in ids for ids in data.area_ids], dtype=bool))
            )
    return groups


def draw_all(
    data: PlotData, folder: Path, formats: tuple[str, ...], report: Callable[[str], None] = lambda _name: None
) -> list[str]:
    from streetaudit.flows.plot_boxes import box_figure
    from streetaudit.flows.plot_maps import MapLayers, areas_map, core_area_maps, element_maps, shared_norms

    layers = MapLayers.from_geometries(data.unit, data.geoms, data.areas)
    names: list[str] = []

    def write(fig, stem: str) -> None:
        names.extend(save(fig, folder, stem, formats))
        report(stem)

    for stem, table, statistic, no_data in (
        ("means", data.means, "mean", f"no data (no sample point with an image on the {data.unit})"),
        ("stds", data.stds, "standard deviation", f"no data (fewer than 2 points on the {data.unit})"),
    ):
        norms = shared_norms(table)
        write(element_maps(layers, table, norms, statistic, no_data), f"{data.unit}_{stem}")
        if stem == "means" and any(kind == "core" for _a, _n, kind, _g in data.areas):
            write(core_area_maps(layers, table, norms, statistic, no_data), f"core_areas_{data.unit}_{stem}")
    write(areas_map(layers), "heritage_areas")
    write(box_figure(data.values, core_groups(data), ~data.in_core, data.comparison), "core_vs_rest")
    return names
