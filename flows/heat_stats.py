"""Core vs rest of the city for the heat-map statistics, with the element statistics' tests.

The unit is the image (a heat map is per image). Each core area, and all cores together,
is compared with the images of points in no core area by flows/stats.py's `compare`
(Welch t, Mann-Whitney U, Cohen's d), Holm-adjusted across the four statistics.

The tests need scipy, which SQL has not, so they are computed here and stored in
streetaudit.heat_comparison_result (published as api.heat_comparison) by `explain` after
each run and by `detect heat-stats`; a set of (model, method, target) is replaced whole,
in one transaction, so readers never see half of one.
"""

from __future__ import annotations

import numpy as np
import psycopg

from streetaudit.flows.comparison_tables import core_rest_table
from streetaudit.flows.stats import ALL_CORES, compare, holm

HEAT_STATISTICS = ("inside_boxes", "on_building", "facade_height", "upper_third")


def heat_comparisons(url: str, model_id: int, method: str = "gradcam", target: str = "boxes") -> list[dict]:
    with psycopg.connect(url) as conn:
        return comparisons_of(conn, model_id, method, target)


def comparisons_of(conn: psycopg.Connection, model_id: int, method: str, target: str) -> list[dict]:
    """Each core area, and all cores together, against the rest, per heat statistic."""
    rows = conn.execute(
        f"""SELECT {", ".join(f"h.{s}" for s in HEAT_STATISTICS)},
                   ARRAY(SELECT pa.area_id FROM streetaudit.point_area AS pa
                         WHERE pa.point_id = p.id AND pa.kind = 'core' ORDER BY pa.area_id)
            FROM streetaudit.heatmap AS h
            JOIN streetaudit.image AS i ON i.id = h.image_id AND i.status = 'ok'
            JOIN streetaudit.sample_point AS p ON p.id = i.point_id AND p.retired_at IS NULL
            WHERE h.model_id = %s AND h.method = %s AND h.target = %s ORDER BY h.image_id""",
        (model_id, method, target),
    ).fetchall()
    areas = conn.execute(
        "SELECT id, name FROM streetaudit.heritage_area WHERE kind = 'core' ORDER BY id"
    ).fetchall()
    k = len(HEAT_STATISTICS)
    values = np.array([[np.nan if v is None else v for v in r[:k]] for r in rows], dtype=float).reshape(-1, k)
    member = [set(r[-1]) for r in rows]
    in_any = np.array([bool(m) for m in member], dtype=bool)
    groups = [(None, ALL_CORES, in_any)] + [
        (area_id, name, np.array([area_id in m for m in member], dtype=bool)) for area_id, name in areas
    ]
    results = []
    for area_id, name, mask in groups:
        tests = []
        for j in range(k):
            column = values[:, j]
            present = ~np.isnan(column)
            tests.append(compare(column[mask & present], column[~in_any & present]))
        for key in ("welch_p", "mannwhitney_p"):
            for test, adjusted in zip(tests, holm([t[key] for t in tests]), strict=True):
                test[f"{key}_holm"] = adjusted
        results += [
            {"area_id": area_id, "area_name": name, "statistic": s, **t}
            for s, t in zip(HEAT_STATISTICS, tests, strict=True)
        ]
    return results


_RESULT_COLUMNS = (
    "area_id", "area_name", "statistic", "n_core", "n_rest", "mean_core", "mean_rest", "mean_diff",
    "cohens_d", "welch_t", "welch_df", "welch_p", "welch_p_holm", "mannwhitney_u", "mannwhitney_p",
    "mannwhitney_p_holm",
)  # fmt: skip


def store_heat_comparisons(conn: psycopg.Connection, model_id: int, method: str, target: str) -> int:
    """Replace the stored tests of one (model, method, target); the caller commits. Returns rows."""
    results = comparisons_of(conn, model_id, method, target)
    conn.execute(
        "DELETE FROM streetaudit.heat_comparison_result WHERE model_id = %s AND method = %s AND target = %s",
        (model_id, method, target),
    )
    if not results or all(r["n_core"] + r["n_rest"] == 0 for r in results):
        return 0
    columns = ", ".join(_RESULT_COLUMNS)
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO streetaudit.heat_comparison_result (model_id, method, target, {columns}) "
            f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(_RESULT_COLUMNS))})",
            [[model_id, method, target, *(r[c] for c in _RESULT_COLUMNS)] for r in results],
        )
    return len(results)


def refresh_heat_comparisons(
    url: str, model_id: int | None = None, method: str | None = None, target: str | None = None
) -> list[dict]:
    """Recompute the stored tests of every (model, method, target) that has heat maps (or the
    ones named) and return api.heat_comparison's rows for them."""
    with psycopg.connect(url) as conn:
        sets = conn.execute(
            """SELECT DISTINCT model_id, method, target FROM streetaudit.heatmap
               WHERE (%(model)s::bigint IS NULL OR model_id = %(model)s)
                 AND (%(method)s::text IS NULL OR method = %(method)s)
                 AND (%(target)s::text IS NULL OR target = %(target)s)
               ORDER BY 1, 2, 3""",
            {"model": model_id, "method": method, "target": target},
        ).fetchall()
        for m, meth, tgt in sets:
            store_heat_comparisons(conn, m, meth, tgt)
        conn.commit()
    return read_heat_comparison(url, model_id, method, target)


def read_heat_comparison(
    url: str, model_id: int | None = None, method: str | None = None, target: str | None = None
) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            """SELECT * FROM api.heat_comparison
               WHERE (%(model)s::bigint IS NULL OR model_id = %(model)s)
                 AND (%(method)s::text IS NULL OR method = %(method)s)
                 AND (%(target)s::text IS NULL OR target = %(target)s)""",
            {"model": model_id, "method": method, "target": target},
        ).fetchall()


def heat_comparison_table(rows: list[dict], title: str):
    """A rich table of one comparison's rows (one model, method, target and core area)."""
    return core_rest_table(
        rows,
        key="statistic",
        title=title,
        caption="d: Cohen's d; p: Welch t / Mann–Whitney U, Holm-adjusted over the four statistics",
    )
