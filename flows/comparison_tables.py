"""Terminal tables of core-vs-rest comparisons, shared by `stats refresh` and `detect heat-stats`.

Both publish the same columns (n, means, difference, Cohen's d, Holm-adjusted Welch and
Mann–Whitney p), so the reader meets one layout whatever the quantity compared.
"""

from __future__ import annotations


def cell(value, spec: str = ".3f") -> str:
    """A number as printed in the tables; missing values (no test possible) as a dash."""
    return "–" if value is None else format(value, spec)


def core_rest_table(rows: list[dict], *, key: str, title: str, caption: str):
    """One comparison's rows, one per element or statistic (`key` names that column)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, title_justify="left", box=box.SIMPLE)
    for column in (key, "n core/rest", "core", "rest", "diff", "d", "Welch p", "MW p"):
        table.add_column(column, justify="left" if column == key else "right")
    for r in rows:
        table.add_row(
            r[key],
            f"{r['n_core']}/{r['n_rest']}",
            cell(r["mean_core"]),
            cell(r["mean_rest"]),
            cell(r["mean_diff"], "+.3f"),
            cell(r["cohens_d"], "+.2f"),
            cell(r["welch_p_holm"], ".2g"),
            cell(r["mannwhitney_p_holm"], ".2g"),
        )
    return table
