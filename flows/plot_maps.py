"""Maps for `stats plot`: element values per street or road, heritage outlines over them.

Geometries arrive projected to the city's UTM zone (metres), so the scale bar is a plain
length on the axes. Every map of one element and statistic uses one colour scale, computed
from all the values it will show, so the same colour means the same share in the city map
and in every core area's close-up; units without data are drawn grey and named in the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.patheffects as patheffects
import numpy as np
import shapely
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from streetaudit.models.label_sets import ELEMENTS

NO_DATA = "#8c8c8c"
NO_DATA_DASHES = (0, (2.0, 1.5))  # dashed, so "no data" never reads as a colour of the scale
OUTLINE = "#111111"
CMAP = "viridis"


@dataclass
class MapLayers:
    """What every map draws: the units' line parts and the heritage areas (in metres)."""

    unit: str
    parts: list[np.ndarray]  # one coordinate array per line part
    part_unit: np.ndarray  # the unit (row of the value table) each part belongs to
    areas: list[tuple[int, str, str, Any]] = field(default_factory=list)  # id, name, kind, geometry

    @classmethod
    def from_geometries(cls, unit: str, geoms, areas) -> MapLayers:
        parts, owners = [], []
        for row, geom in enumerate(geoms):
            for part in shapely.get_parts(geom):
                parts.append(np.asarray(part.coords)[:, :2])
                owners.append(row)
        return cls(unit, parts, np.asarray(owners, dtype=int), list(areas))

    def visible(self, extent) -> np.ndarray:
        """Which parts reach into `extent`: a close-up draws (and its SVG holds) only those."""
        if not self.parts:
            return np.zeros(0, dtype=bool)
        low = np.array([p.min(axis=0) for p in self.parts])
        high = np.array([p.max(axis=0) for p in self.parts])
        return (
            (high[:, 0] >= extent[0])
            & (low[:, 0] <= extent[2])
            & (high[:, 1] >= extent[1])
            & (low[:, 1] <= extent[3])
        )

    def extent(self, pad: float = 0.03) -> tuple[float, float, float, float]:
        xy = np.concatenate(self.parts) if self.parts else np.zeros((1, 2))
        minx, miny = xy.min(axis=0)
        maxx, maxy = xy.max(axis=0)
        margin = pad * max(maxx - minx, maxy - miny, 1.0)
        return minx - margin, miny - margin, maxx + margin, maxy + margin


# The colour scale spans these percentiles of all values: a few one-point roads at 0.9
# would otherwise push every other road into the same dark blue. The colour bar's arrows
# say that values beyond are drawn in the end colours.
SCALE_PERCENTILES = (2.0, 98.0)


def shared_norms(
    *tables: np.ndarray, percentiles: tuple[float, float] = SCALE_PERCENTILES
) -> list[Normalize]:
    """One colour scale per element (column) from every value of every table given.

    Each table is units x ELEMENTS (NaN: no data); the scale spans `percentiles` of the
    values pooled over all tables. A column with no data gets 0..1, one with a single value
    a small range around it, so a colour bar can always be drawn.
    """
    norms = []
    for k in range(len(ELEMENTS)):
        column = np.concatenate([np.asarray(t, dtype=float)[:, k].ravel() for t in tables])
        column = column[~np.isnan(column)]
        if column.size == 0:
            norms.append(Normalize(0.0, 1.0))
            continue
        low, high = (float(v) for v in np.percentile(column, percentiles))
        if high - low < 1e-9:
            low, high = low - 0.01, high + 0.01
        norms.append(Normalize(low, high))
    return norms


def scale_length(width_m: float) -> tuple[float, str]:
    """A round scale-bar length (1, 2 or 5 x 10^k metres) of at most a quarter of the map."""
    target = max(width_m / 4, 1.0)
    power = 10 ** math.floor(math.log10(target))
    length = max(step * power for step in (1, 2, 5) if step * power <= target)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    return float(length), label


def add_scale_bar(ax, extent) -> None:
    length, label = scale_length(extent[2] - extent[0])
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        label,
        loc="lower left",
        pad=0.4,
        borderpad=0.5,
        sep=3,
        frameon=True,
        size_vertical=(extent[3] - extent[1]) * 0.006,
        fontproperties={"size": 8},
    )
    bar.patch.set_alpha(0.85)
    ax.add_artist(bar)


def _frame(ax, extent) -> None:
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_outlines(ax, layers: MapLayers, *, fill: bool = False, label_names: bool = False) -> None:
    """Heritage areas as a dark line with a white halo, readable over any colour."""
    halo = [patheffects.withStroke(linewidth=3.2, foreground="white")]
    for _area_id, name, _kind, geom in layers.areas:
        for polygon in shapely.get_parts(geom):
            x, y = polygon.exterior.xy
            if fill:
                ax.fill(x, y, color="#e6550d", alpha=0.18, zorder=3)
            ax.plot(x, y, color=OUTLINE, linewidth=1.2, zorder=4, path_effects=halo)
        if label_names:
            centre = geom.representative_point()
            ax.annotate(name, (centre.x, centre.y), ha="center", fontsize=8, zorder=5, path_effects=halo)


def draw_values(ax, layers: MapLayers, values: np.ndarray, norm: Normalize, extent) -> LineCollection:
    """Units with a value coloured by `norm`, the others grey; heritage outlines on top."""
    _frame(ax, extent)
    shown = layers.visible(extent)
    parts = [p for p, ok in zip(layers.parts, shown, strict=True) if ok]
    per_part = values[layers.part_unit[shown]] if shown.any() else np.zeros(0)
    present = ~np.isnan(per_part)
    missing = [p for p, ok in zip(parts, present, strict=True) if not ok]
    ax.add_collection(
        LineCollection(missing, colors=NO_DATA, linewidths=0.9, linestyles=[NO_DATA_DASHES], zorder=1)
    )
    collection = LineCollection(
        [p for p, ok in zip(parts, present, strict=True) if ok],
        cmap=CMAP,
        norm=norm,
        linewidths=1.8,
        zorder=2,
        capstyle="round",
    )
    collection.set_array(per_part[present])
    ax.add_collection(collection)
    draw_outlines(ax, layers)
    add_scale_bar(ax, extent)
    return collection


def key_handles(no_data: str) -> list[Line2D]:
    return [
        Line2D([], [], color=NO_DATA, linewidth=1.5, linestyle=NO_DATA_DASHES, label=no_data),
        Line2D(
            [],
            [],
            color=OUTLINE,
            linewidth=1.2,
            path_effects=[patheffects.withStroke(linewidth=3.2, foreground="white")],
            label="heritage area outline",
        ),
    ]


def element_maps(layers: MapLayers, table: np.ndarray, norms: list[Normalize], statistic: str, no_data: str):
    """Six maps, one per element, each with its colour bar, a scale bar and the shared key."""
    import matplotlib.pyplot as plt

    extent = layers.extent()
    aspect = (extent[2] - extent[0]) / max(extent[3] - extent[1], 1.0)
    height = 4.6  # inches per map; the width follows the city's shape, plus its colour bar
    fig, axes = plt.subplots(
        2,
        3,
        figsize=(3 * (height * min(max(aspect, 0.5), 2.0) + 1.3), 2 * height + 1.2),
        constrained_layout=True,
    )
    for k, (ax, element) in enumerate(zip(axes.flat, ELEMENTS, strict=True)):
        collection = draw_values(ax, layers, table[:, k], norms[k], extent)
        fig.colorbar(
            collection, ax=ax, shrink=0.75, extend="both", label=f"{statistic} of the share of pixels"
        )
        n = int((~np.isnan(table[:, k])).sum())
        ax.set_title(
            f"{element}: {statistic} per {layers.unit}\n{n} of {len(table)} {layers.unit}s with data",
            fontsize=10,
        )
    fig.legend(handles=key_handles(no_data), loc="outside lower center", ncols=2, frameon=False)
    return fig


def core_area_maps(
    layers: MapLayers, table: np.ndarray, norms: list[Normalize], statistic: str, no_data: str
):
    """A close-up of each core area per element, on the city map's colour scales."""
    import matplotlib.pyplot as plt

    cores = [a for a in layers.areas if a[2] == "core"]
    fig, axes = plt.subplots(
        len(cores),
        len(ELEMENTS),
        figsize=(3.2 * len(ELEMENTS), 3.4 * len(cores)),
        squeeze=False,
        constrained_layout=True,
    )
    columns: list[Any] = [None] * len(ELEMENTS)
    for r, (_area_id, name, _kind, geom) in enumerate(cores):
        minx, miny, maxx, maxy = geom.bounds
        half = max(maxx - minx, maxy - miny) * 0.6 + 50
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        extent = (cx - half, cy - half, cx + half, cy + half)
        for k, element in enumerate(ELEMENTS):
            columns[k] = draw_values(axes[r, k], layers, table[:, k], norms[k], extent)
            if r == 0:
                axes[r, k].set_title(element, fontweight="bold")
        axes[r, 0].set_ylabel(name)
    for k, collection in enumerate(columns):
        fig.colorbar(
            collection,
            ax=axes[:, k],
            location="bottom",
            shrink=0.8,
            extend="both",
            label=f"{statistic} of the share of pixels",
        )
    fig.suptitle(
        f"Core areas close up: {statistic} per {layers.unit}, on the same colour scales as the city map"
    )
    fig.legend(handles=key_handles(no_data), loc="outside lower center", ncols=2, frameon=False)
    return fig


def areas_map(layers: MapLayers):
    """The heritage areas, named, over the network (which units carry data does not matter here)."""
    import matplotlib.pyplot as plt

    extent = layers.extent()
    fig, ax = plt.subplots(figsize=(9, 9), constrained_layout=True)
    _frame(ax, extent)
    ax.add_collection(LineCollection(layers.parts, colors="#9a9a9a", linewidths=0.7, zorder=1))
    draw_outlines(ax, layers, fill=True, label_names=True)
    add_scale_bar(ax, extent)
    kinds = sorted({a[2] for a in layers.areas})
    ax.set_title(f"Heritage areas ({', '.join(kinds) or 'none loaded'}) over the {layers.unit} network")
    return fig
