"""Stage 6: statistics per road and heritage area, and the core-vs-rest comparison.

SQL computes the descriptive statistics (materialized views in schema `api`, see
sql/030_stats.sql); the tests the SQL cannot do (Welch's t, Mann–Whitney U, Holm) are
computed here with scipy and stored in the same transaction as the refresh, so readers
never see views of one model next to tests of another.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import psycopg
from prefect import flow
from scipy import stats as scistats

from streetaudit.flows.errors import InputError
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.sql.rows import one, scalar

ALL_CORES = "all core areas"


@dataclass
class StatsReport:
    model_id: int
    model_name: str
    version: int
    points: int
    roads: int
    areas: int
    comparisons: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def resolve_model(conn: psycopg.Connection, model: str | int | None) -> tuple[int, str]:
    """The segmentation model to publish: given by id or name, else the most recent one."""
    if model is None:
        row = conn.execute(
            """SELECT id, name FROM streetaudit.model WHERE task = 'segmentation'
               ORDER BY created_at DESC, id DESC LIMIT 1"""
        ).fetchone()
        if row is None:
            raise InputError("no segmentation model in the database; run `streetaudit segment` first")
        return row
    text = str(model).strip()
    if text.isdigit():
        row = conn.execute(
            "SELECT id, name FROM streetaudit.model WHERE task = 'segmentation' AND id = %s", (int(text),)
        ).fetchone()
    else:
        rows = conn.execute(
            """SELECT id, name FROM streetaudit.model WHERE task = 'segmentation' AND name = %s
               ORDER BY created_at DESC, id DESC""",
            (text,),
        ).fetchall()
        row = rows[0] if rows else None
    if row is None:
        known = scalar(
            conn.execute(
                "SELECT string_agg(id || ' (' || name || ')', ', ' ORDER BY id) FROM streetaudit.model "
                "WHERE task = 'segmentation'"
            )
        )
        raise InputError(f"--model {model!r}: no such segmentation model (known: {known or 'none'})")
    return row


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment; None (a test that could not run) is left out and kept None."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def compare(core: np.ndarray, rest: np.ndarray) -> dict[str, float | None]:
    """Core vs rest for one element; statistics that need more data than there is are None."""
    n1, n2 = len(core), len(rest)
    out: dict[str, float | None] = {
        "n_core": n1,
        "n_rest": n2,
        "mean_core": _finite(core.mean()) if n1 else None,
        "mean_rest": _finite(rest.mean()) if n2 else None,
    }
    mean_core, mean_rest = out["mean_core"], out["mean_rest"]
    out["mean_diff"] = mean_core - mean_rest if mean_core is not None and mean_rest is not None else None
    out.update(
        cohens_d=None, welch_t=None, welch_df=None, welch_p=None, mannwhitney_u=None, mannwhitney_p=None
    )
    if n1 >= 2 and n2 >= 2:
        pooled = math.sqrt(((n1 - 1) * core.var(ddof=1) + (n2 - 1) * rest.var(ddof=1)) / (n1 + n2 - 2))
        out["cohens_d"] = _finite((core.mean() - rest.mean()) / pooled) if pooled > 0 else None
        welch = scistats.ttest_ind(core, rest, equal_var=False)
        out["welch_t"], out["welch_df"], out["welch_p"] = (
            _finite(welch.statistic),
            _finite(welch.df),
            _finite(welch.pvalue),
        )
    if n1 >= 1 and n2 >= 1:
        mw = scistats.mannwhitneyu(core, rest, alternative="two-sided")
        out["mannwhitney_u"], out["mannwhitney_p"] = _finite(mw.statistic), _finite(mw.pvalue)
    return out


def comparisons(conn: psycopg.Connection) -> list[dict]:
    """Each core area, and all cores together, against the rest of the city, per element."""
    cols = ", ".join(f"pe.{e}" for e in ELEMENTS)
    rows = conn.execute(
        f"""SELECT {cols},
                   ARRAY(SELECT pa.area_id FROM streetaudit.point_area AS pa
                         WHERE pa.point_id = pe.point_id AND pa.kind = 'core' ORDER BY pa.area_id)
            FROM api.point_elements AS pe ORDER BY pe.point_id"""
    ).fetchall()
    areas = conn.execute(
        "SELECT id, name FROM streetaudit.heritage_area WHERE kind = 'core' ORDER BY id"
    ).fetchall()
    values = np.array([r[: len(ELEMENTS)] for r in rows], dtype=float).reshape(-1, len(ELEMENTS))
    member = [set(r[-1]) for r in rows]
    in_any = np.array([bool(m) for m in member], dtype=bool)
    groups = [(None, ALL_CORES, in_any)] + [
        (area_id, name, np.array([area_id in m for m in member], dtype=bool)) for area_id, name in areas
    ]
    results = []
    for area_id, name, mask in groups:
        tests = [compare(values[mask, k], values[~in_any, k]) for k in range(len(ELEMENTS))]
        for key in ("welch_p", "mannwhitney_p"):
            for test, adjusted in zip(tests, holm([t[key] for t in tests]), strict=True):
                test[f"{key}_holm"] = adjusted
        results += [
            {"area_id": area_id, "area_name": name, "element": element, **test}
            for element, test in zip(ELEMENTS, tests, strict=True)
        ]
    return results


_COMPARISON_COLUMNS = (
    "area_id, area_name, element, n_core, n_rest, mean_core, mean_rest, mean_diff, cohens_d, welch_t, "
    "welch_df, welch_p, welch_p_holm, mannwhitney_u, mannwhitney_p, mannwhitney_p_holm"
)


def refresh_stats(url: str, *, model: str | int | None = None) -> StatsReport:
    """Recompute every published statistic from one model and bump the data version."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        model_id, model_name = resolve_model(conn, model)
        version = scalar(conn.execute("SELECT streetaudit.refresh_stats(%s)", (model_id,)))
        results = comparisons(conn)
        conn.execute("DELETE FROM streetaudit.area_comparison_result")
        names = _COMPARISON_COLUMNS.split(", ")
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO streetaudit.area_comparison_result ({_COMPARISON_COLUMNS}, model_id) "
                f"VALUES ({', '.join(['%s'] * len(names))}, %s)",
                [[r[n] for n in names] + [model_id] for r in results],
            )
        points, roads, areas = one(
            conn.execute(
                """SELECT (SELECT count(*) FROM api.point_elements),
                      (SELECT count(*) FROM api.road_stats WHERE n_points > 0),
                      (SELECT count(*) FROM api.area_stats WHERE area_id IS NOT NULL)"""
            )
        )
        conn.commit()
    return StatsReport(
        model_id, model_name, version, points, roads, areas, results, time.perf_counter() - start
    )


def summary_line(report: StatsReport) -> str:
    """What `stats refresh` and the pipeline's stats stage print above the core-vs-rest table."""
    return (
        f"stats from model {report.model_id} ({report.model_name}): {report.points} points with data, "
        f"{report.roads} roads, {report.areas} heritage areas; data version {report.version} "
        f"({report.seconds:.2f} s)"
    )


def read_area_stats(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM api.area_stats ORDER BY area_id NULLS LAST").fetchall()


def read_comparison(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM api.area_comparison").fetchall()


def comparison_table(rows: list[dict], *, area_id: int | None = None):
    """A rich table of one comparison (default: all cores together vs the rest)."""
    from rich import box
    from rich.table import Table

    def f(value, spec: str = ".3f") -> str:
        return "–" if value is None else format(value, spec)

    chosen = [r for r in rows if r["area_id"] == area_id]
    title = chosen[0]["area_name"] if chosen else "no comparison"
    table = Table(
        title=f"{title} vs rest of the city",
        caption="d: Cohen's d; p: Welch t / Mann–Whitney U, Holm-adjusted over the six elements",
        title_justify="left",
        box=box.SIMPLE,
    )
    for column in ("element", "n core/rest", "core", "rest", "diff", "d", "Welch p", "MW p"):
        table.add_column(column, justify="left" if column == "element" else "right")
    for r in chosen:
        table.add_row(
            r["element"],
            f"{r['n_core']}/{r['n_rest']}",
            f(r["mean_core"]),
            f(r["mean_rest"]),
            f(r["mean_diff"], "+.3f"),
            f(r["cohens_d"], "+.2f"),
            f(r["welch_p_holm"], ".2g"),
            f(r["mannwhitney_p_holm"], ".2g"),
        )
    return table


# The Prefect flow `stats`: the plain function, its parameters validated by Prefect.
stats_flow = flow(name="stats", log_prints=True)(refresh_stats)
