"""Box plots of core areas against the rest of the city, with the tests written on them.

A planner reads the figure without the table beside it, so each panel carries the group
sizes, Cohen's d and the Holm-adjusted p-values of api.area_comparison. The method's
figure 8 compares districts one by one; the pooled "all cores" row is ours, and is the
comparison the table reports first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streetaudit.models.label_sets import ELEMENTS

# Below this a double no longer holds the value faithfully (and scipy returns 0 for a
# p-value that underflowed): "p = 0" would claim certainty no test gives.
P_FLOOR = 1e-300
POINT_TESTS = ("welch_p", "mannwhitney_p")
TEST_NAMES = {
    "welch_p": "Welch",
    "mannwhitney_p": "Mann–Whitney",
    # The street-level tests (points on one street are not independent): the ones to report.
    "permutation_p": "street permutation",
    "cluster_p": "street-clustered OLS",
}


def format_p(p: float | None) -> str:
    """A p-value for a figure: '< 1e-300' when it underflowed, '–' when the test could not run."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < P_FLOOR:
        return "< 1e-300"
    if p >= 0.001:
        return f"= {p:.3f}"
    return f"= {p:.1e}"


def p_columns(columns: list[str]) -> list[tuple[str, str]]:
    """(column, label) of every p-value in api.area_comparison, Holm-adjusted where it is.

    The point-level tests come first; any other `*_p` column (the street-level tests, where
    the comparison has them) follows under its own name, so a new test shows up on the
    figure without a change here.
    """
    chosen = []
    others = [c for c in columns if c.endswith("_p") and c not in POINT_TESTS]
    for column in [c for c in POINT_TESTS if c in columns] + others:
        name = TEST_NAMES.get(column, column.removesuffix("_p").replace("_", " "))
        if f"{column}_holm" in columns:
            chosen.append((f"{column}_holm", f"p {name} (Holm)"))
        else:
            chosen.append((column, f"p {name}"))
    return chosen


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def stats_text(n_core: int, n_rest: int, row: dict | None, columns: list[tuple[str, str]]) -> str:
    """The lines written on one panel: n, Cohen's d and each test's p."""
    lines = [f"n = {n_core} / {n_rest}"]
    row = row or {}
    if row.get("n_clusters_core") is not None:
        unit = row.get("cluster_unit") or "cluster"
        lines.append(f"{unit}s = {row['n_clusters_core']} / {row.get('n_clusters_rest')}")
    lines.append(f"d = {_fmt(row.get('cohens_d'), '+.2f')}")
    lines += [f"{label} {format_p(row.get(column))}" for column, label in columns]
    return "\n".join(lines)


@dataclass
class Group:
    """One comparison: the core points (all cores, or one core area) against the rest."""

    area_id: int | None
    name: str
    mask: np.ndarray


CORE_COLOUR = "#fdae6b"
REST_COLOUR = "#d9d9d9"


def box_figure(values: np.ndarray, groups: list[Group], rest: np.ndarray, comparison: list[dict]):
    """A row per comparison, a panel per element. Returns the matplotlib figure.

    `values` is points x ELEMENTS, `rest` the mask of points in no core area, `comparison`
    the rows of api.area_comparison (matched on area_id and element). Each element keeps
    one y-axis over all rows, so a box in one row can be compared with the one below.
    """
    import matplotlib.pyplot as plt

    columns = p_columns(sorted({key for row in comparison for key in row}))
    by_key = {(row["area_id"], row["element"]): row for row in comparison}
    top = []
    for k in range(len(ELEMENTS)):
        column = values[:, k][~np.isnan(values[:, k])]
        high = float(np.percentile(column, 99.5)) if column.size else 1.0
        top.append(min(1.0, high) * (1.3 + 0.08 * len(columns)) + 0.01)
    fig = plt.figure(figsize=(3.1 * len(ELEMENTS), 3.6 * len(groups) + 0.6), layout="constrained")
    subfigures: Any = np.atleast_1d(fig.subfigures(len(groups), 1))  # type: ignore[arg-type]
    for group, subfigure in zip(groups, subfigures, strict=True):
        axes = subfigure.subplots(1, len(ELEMENTS))
        subfigure.suptitle(f"{group.name} vs the rest of the city", fontweight="bold", fontsize=11)
        for k, (ax, element) in enumerate(zip(axes, ELEMENTS, strict=True)):
            data = [v[~np.isnan(v)] for v in (values[group.mask, k], values[rest, k])]
            boxes = ax.boxplot(
                data,
                tick_labels=["core", "rest"],
                showfliers=False,
                showmeans=True,
                patch_artist=True,
                meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"},
                medianprops={"color": "black"},
                widths=0.55,
            )
            for patch, colour in zip(boxes["boxes"], (CORE_COLOUR, REST_COLOUR), strict=True):
                patch.set_facecolor(colour)
            for position, group_values in enumerate(data, start=1):
                if not len(group_values):  # an area no sample point reaches: say so, not a blank
                    ax.text(position, top[k] * 0.05, "no points", ha="center", fontsize=8, color="#666666")
            ax.set_ylim(0, top[k])
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
            ax.set_title(element, fontsize=10)
            if k == 0:
                ax.set_ylabel("share of pixels", fontsize=9)
            text = stats_text(len(data[0]), len(data[1]), by_key.get((group.area_id, element)), columns)
            ax.text(
                0.5,
                0.98,
                text,
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7.5,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#999999"},
            )
    family = {row.get("holm_family") for row in comparison} - {None}
    over = "every area × element" if family == {"all"} else "the six elements"
    fig.suptitle(
        "Sample points in heritage core areas vs the rest of the city\n"
        "box: quartiles, whiskers 1.5 IQR, ◇ mean; n = core / rest points; "
        f"d = Cohen's d (core − rest); Holm adjusts over {over}",
        fontsize=10,
    )
    return fig
