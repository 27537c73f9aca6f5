"""`streetaudit stats plot`: PNG figures like the method's (road maps, areas, core vs rest).

Figures read schema `api` only. Maps are drawn in longitude/latitude with the aspect
corrected for the city's latitude, which is close enough to a local projection at city scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import psycopg
import shapely
from matplotlib.collections import LineCollection

from streetaudit.flows.errors import InputError
from streetaudit.flows.output_files import staged_folder
from streetaudit.models.label_sets import ELEMENTS


def _lines(geoms: list) -> list[np.ndarray]:
    return [np.asarray(g.coords) for g in geoms]


def _read(url: str):
    with psycopg.connect(url) as conn:
        cols = ", ".join(f"{e}_mean, {e}_std" for e in ELEMENTS)
        segments = conn.execute(
            f"SELECT ST_AsBinary(geom), n_points, {cols} FROM api.road_stats ORDER BY road_id"
        ).fetchall()
        areas = conn.execute(
            "SELECT area_name, ST_AsBinary(geom) FROM api.area_stats WHERE area_id IS NOT NULL ORDER BY area_id"
        ).fetchall()
        values = conn.execute(
            f"""SELECT {", ".join(f"pe.{e}" for e in ELEMENTS)},
                       pe.in_core
                FROM api.point_elements AS pe"""
        ).fetchall()
        # The street-level tests of all cores vs the rest (the ones to report), per element.
        street = dict(
            conn.execute(
                "SELECT element, permutation_p_holm FROM api.area_comparison WHERE area_id IS NULL"
            ).fetchall()
        )
    return segments, areas, values, street


def _map_axes(ax, lines, extent) -> None:
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect(1 / math.cos(math.radians((extent[1] + extent[3]) / 2)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.add_collection(LineCollection(lines, colors="#cccccc", linewidths=0.6, zorder=1))


def _road_figure(path: Path, lines, data: np.ndarray, extent, statistic: str, column: int) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), constrained_layout=True)
    for k, (ax, element) in enumerate(zip(axes.flat, ELEMENTS, strict=True)):
        _map_axes(ax, lines, extent)
        values = data[:, 2 * k + column]
        present = ~np.isnan(values)
        collection = LineCollection(
            [line for line, ok in zip(lines, present, strict=True) if ok],
            cmap="viridis",
            linewidths=1.6,
            zorder=2,
        )
        collection.set_array(values[present])
        ax.add_collection(collection)
        fig.colorbar(collection, ax=ax, shrink=0.7)
        ax.set_title(f"{element}: {statistic} share per road")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_stats(url: str, out: Path) -> list[Path]:
    """Writes road_means.png, road_stds.png, heritage_areas.png and core_vs_rest.png."""
    matplotlib.use("Agg")  # files only: never needs a display
    out = Path(out)
    # Staged (output_files): an unwritable --out is refused before the queries, and a
    # failure halfway leaves no half set of figures.
    with staged_folder(out) as stage:
        names = _draw(url, stage)
    return [out / name for name in names]


def _draw(url: str, out: Path) -> list[str]:
    segments, areas, values, street = _read(url)
    if not segments:
        raise InputError("no road segments to plot; load roads and run `streetaudit stats refresh` first")
    geoms = shapely.from_wkb([bytes(s[0]) for s in segments])
    lines = _lines(geoms)
    data = np.array([[np.nan if v is None else v for v in s[2:]] for s in segments], dtype=float)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    pad = 0.03 * max(maxx - minx, maxy - miny)
    extent = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    written = [out / "road_means.png", out / "road_stds.png"]
    _road_figure(written[0], lines, data, extent, "mean", 0)
    _road_figure(written[1], lines, data, extent, "standard deviation of the", 1)

    fig, ax = plt.subplots(figsize=(8, 8), constrained_layout=True)
    _map_axes(ax, lines, extent)
    for (name, wkb), colour in zip(areas, [plt.get_cmap("tab10")(i) for i in range(10)], strict=False):
        area = shapely.from_wkb(bytes(wkb))
        for polygon in getattr(area, "geoms", [area]):
            x, y = polygon.exterior.xy
            ax.fill(x, y, color=colour, alpha=0.25, zorder=3)
            ax.plot(x, y, color=colour, linewidth=1.5, zorder=3)
        centre = area.representative_point()
        ax.annotate(name, (centre.x, centre.y), ha="center", fontsize=9, zorder=4)
    ax.set_title("Heritage areas over the road network")
    written.append(out / "heritage_areas.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 3, figsize=(13, 8), constrained_layout=True)
    table = np.array([v[:-1] for v in values], dtype=float).reshape(-1, len(ELEMENTS))
    core = np.array([v[-1] for v in values], dtype=bool)
    for k, (ax, element) in enumerate(zip(axes.flat, ELEMENTS, strict=True)):
        ax.boxplot([table[core, k], table[~core, k]], tick_labels=["core", "rest"], showfliers=False)
        p = street.get(element)
        ax.set_title(
            f"{element} (n = {int(core.sum())} / {int((~core).sum())}; "
            f"street-level p = {'–' if p is None else format(p, '.2g')})"
        )
        ax.set_ylabel("share of pixels")
    fig.suptitle("Sample points in heritage core areas vs the rest of the city")
    written.append(out / "core_vs_rest.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    from streetaudit.flows.heat_plots import heat_panel  # the heat-map panel, once `explain` ran

    panel = heat_panel(url, out)
    if panel is not None:
        written.append(panel)
    return [path.name for path in written]
