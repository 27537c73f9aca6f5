"""Box plots of core areas against the rest of the city, with the tests written on them.

A planner reads the figure without the table beside it, so each panel carries the group
sizes, Cohen's d and the Holm-adjusted p-values of api.area_comparison. The method's
figure 8 compares districts one by one; the pooled "all cores" row is ours, and is the
comparison the table reports first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streetaudit.models.label_sets import ELEMENTS

# Below this a double no longer holds the value faithfully (and scipy returns 0 for a
# p-value that underflowed): "p = 0" would claim certainty no test gives.
P_FLOOR = 1e-300
POINT_TESTS = ("welch_p", "mannwhitney_p")
TEST_NAMES = {"welch_p": "Welch", "mannwhitney_p": "Mann–Whitney"}


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
    lines.append(f"d = {_fmt(row.get('cohens_d'), '+.2f')}")
    lines += [f"{label} {format_p(row.get(column))}" for column, label in columns]
    return "\n".join(lines)


@dataclass
class Group:
    """One comparison: the core points (all cores, or one core area) against the rest."""

    area_id: int | None
    name: str
    mask: np.ndarray


def box_figure(values: np.ndarray, groups: list[Group], rest: np.ndarray, comparison: list[dict]):
    """Rows: the comparisons; columns: the elements. Returns the matplotlib figure.

    `values` is points x ELEMENTS, `rest` the mask of points in no core area, `comparison`
    the rows of api.area_comparison (matched on area_id and element).
    """
    import matplotlib.pyplot as plt

    columns = p_columns(sorted({key for row in comparison for key in row}))
    by_key = {(row["area_id"], row["element"]): row for row in comparison}
    rows = len(groups)
    fig, axes = plt.subplots(
        rows, len(ELEMENTS), figsize=(3.1 * len(ELEMENTS), 3.9 * rows), squeeze=False, constrained_layout=True
    )
    for r, group in enumerate(groups):
        for k, element in enumerate(ELEMENTS):
            ax = axes[r, k]
            core_values, rest_values = values[group.mask, k], values[rest, k]
            data = [v[~np.isnan(v)] for v in (core_values, rest_values)]
            ax.boxplot(
                data,
                tick_labels=["core", "rest"],
                showfliers=False,
                showmeans=True,
                meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"},
                widths=0.55,
            )
            ax.set_ylim(-0.02, 1.0)
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
            ax.set_title(element, fontsize=10, fontweight="bold")
            if k == 0:
                ax.set_ylabel(f"{group.name}\nshare of pixels", fontsize=9)
            text = stats_text(len(data[0]), len(data[1]), by_key.get((group.area_id, element)), columns)
            ax.text(
                0.98,
                0.98,
                text,
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=7.5,
                bbox={
                    "boxstyle": "round,pad=0.3",
                    "facecolor": "white",
                    "edgecolor": "#999999",
                    "alpha": 0.9,
                },
            )
    fig.suptitle(
        "Sample points in heritage core areas vs the rest of the city "
        "(box: quartiles, whiskers 1.5 IQR, ◇ mean; n = core / rest points; "
        "d = Cohen's d, core − rest; p Holm-adjusted over the six elements)",
        fontsize=10,
    )
    return fig
