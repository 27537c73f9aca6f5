"""Core vs rest of the city for the heat-map statistics, with the element statistics' tests.

The unit is the image (a heat map is per image). Each core area, and all cores together,
is compared with the images of points in no core area by flows/stats.py's `compare`
(Welch t, Mann-Whitney U, Cohen's d), Holm-adjusted across the four statistics.
"""

from __future__ import annotations

import numpy as np
import psycopg

from streetaudit.flows.stats import ALL_CORES, compare, holm

HEAT_STATISTICS = ("inside_boxes", "on_building", "facade_height", "upper_third")


def heat_comparisons(url: str, model_id: int, method: str = "gradcam", target: str = "boxes") -> list[dict]:
    with psycopg.connect(url) as conn:
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
