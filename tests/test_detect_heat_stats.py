"""Heat-map statistics, core vs rest: stored in SQL (api.heat_comparison), served on /stats/heat,
printed by `detect heat-stats`; every test statistic recomputed here with scipy.

Heat-map rows are written as `explain` writes them, for images of points in two core areas
and in the rest of the city, with some building shares NULL (no segmentation mask).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.heat_stats import HEAT_STATISTICS, read_heat_comparison, refresh_heat_comparisons
from streetaudit.sql.rows import scalar
from streetaudit.testing.sample_rows import along, make_points

AREAS = {"north gate": range(0, 4), "market": range(4, 8)}  # point positions; 8..11: rest


@pytest.fixture(scope="module")
def heat(db_url: str) -> dict:
    """model id and, per group of points (each area; 'rest'), the images' statistic values."""
    points = make_points(db_url, along((24.93, 60.16), 0.001, 12))
    rng = np.random.default_rng(7)
    values: dict[str, list[list[float | None]]] = {name: [] for name in (*AREAS, "rest")}
    with psycopg.connect(db_url) as conn:
        for name, positions in AREAS.items():
            conn.execute(
                """INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
                   SELECT 'test', %s, %s, 'core', g, ST_Area(g::geography)
                   FROM (SELECT ST_Multi(ST_Buffer(ST_Collect(geom), 0.0001)) AS g
                         FROM streetaudit.sample_point WHERE id = ANY(%s)) AS a""",
                (name, name, [points[k] for k in positions]),
            )
        model_id = scalar(
            conn.execute(
                """INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels)
                   VALUES ('detection', 'heat', 'torchvision', 'test:heat', 'heritage', '{window}') RETURNING id"""
            )
        )
        for k, point in enumerate(points):
            group = next((n for n, r in AREAS.items() if k in r), "rest")
            shift = {"north gate": 0.25, "market": 0.1, "rest": 0.0}[group]
            for heading in (0, 90, 180):
                image_id = scalar(
                    conn.execute(
                        """INSERT INTO streetaudit.image (point_id, provider, heading, uri, status)
                           VALUES (%s, 'test', %s, %s, 'ok') RETURNING id""",
                        (point, heading, f"/img/{k}-{heading}.jpg"),
                    )
                )
                row = [float(np.clip(rng.normal(0.4 + shift, 0.15), 0, 1)) for _ in HEAT_STATISTICS]
                if rng.random() < 0.3:
                    row[1] = None  # on_building: no mask
                values[group].append(row)
                for method, scale in (("gradcam", 1.0), ("eigencam", 0.5)):
                    conn.execute(
                        """INSERT INTO streetaudit.heatmap (image_id, model_id, method, target, inside_boxes,
                                                            on_building, facade_height, upper_third)
                           VALUES (%s, %s, %s, 'boxes', %s, %s, %s, %s)""",
                        (image_id, model_id, method, *(None if v is None else v * scale for v in row)),
                    )
    return {"model_id": model_id, "values": values}


def column(rows: list[list[float | None]], j: int) -> np.ndarray:
    return np.array([r[j] for r in rows if r[j] is not None], dtype=float)


def holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    adjusted = np.empty(len(p))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def expected(values: dict) -> dict[str | None, list[dict]]:
    """Per comparison (area name, or 'all core areas'), per statistic: scipy's tests."""
    groups = {"all core areas": values["north gate"] + values["market"]} | {n: values[n] for n in AREAS}
    out = {}
    for name, core_rows in groups.items():
        tests = []
        for j in range(len(HEAT_STATISTICS)):
            core, rest = column(core_rows, j), column(values["rest"], j)
            welch = stats.ttest_ind(core, rest, equal_var=False)
            mw = stats.mannwhitneyu(core, rest, alternative="two-sided")
            tests.append({"n_core": len(core), "n_rest": len(rest), "mean_diff": core.mean() - rest.mean(),
                          "welch_t": welch.statistic, "welch_p": welch.pvalue, "mannwhitney_u": mw.statistic,
                          "mannwhitney_p": mw.pvalue})  # fmt: skip
        for key in ("welch_p", "mannwhitney_p"):
            for test, p in zip(tests, holm([t[key] for t in tests]), strict=True):
                test[f"{key}_holm"] = p
        out[name] = tests
    return out


def check(rows: list[dict], values: dict) -> None:
    want = expected(values)
    assert {r["area_name"] for r in rows} == set(want)
    for r in rows:
        test = want[r["area_name"]][HEAT_STATISTICS.index(r["statistic"])]
        for key, value in test.items():
            assert float(r[key]) == pytest.approx(value, rel=1e-9), (r["area_name"], r["statistic"], key)


def test_stored_comparison_equals_scipy_and_leaves_other_methods_alone(db_url, heat):
    rows = refresh_heat_comparisons(db_url, heat["model_id"], "gradcam")
    assert len(rows) == 3 * len(HEAT_STATISTICS) and {r["method"] for r in rows} == {"gradcam"}
    check(rows, heat["values"])
    assert rows[0]["area_id"] is None and rows[0]["statistic"] == "inside_boxes"
    assert read_heat_comparison(db_url, heat["model_id"], "eigencam") == []
    everything = refresh_heat_comparisons(db_url)
    assert len(everything) == 2 * len(rows)
    # Again: replaced, never a second copy.
    assert len(refresh_heat_comparisons(db_url, heat["model_id"])) == len(everything)


def test_stats_heat_routes_serve_json_and_csv(db_url, reader_db_url, heat):
    refresh_heat_comparisons(db_url)
    with TestClient(create_app(reader_db_url, ApiSettings(version_ttl=0, ogc=False))) as client:
        params = {"model": heat["model_id"], "method": "gradcam", "target": "boxes"}
        r = client.get("/stats/heat/comparison", params=params | {"format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        check(list(csv.DictReader(io.StringIO(r.text))), heat["values"])
        means = client.get("/stats/heat", params=params).json()
        by_area = {m["area_name"]: m for m in means}
        rest = heat["values"]["rest"]
        assert by_area["rest of the city"]["n_images"] == len(rest)
        assert by_area["rest of the city"]["n_with_mask"] == len(column(rest, 1))
        assert by_area["market"]["upper_third_mean"] == pytest.approx(
            column(heat["values"]["market"], 3).mean()
        )
        assert by_area["rest of the city"]["on_building_mean"] == pytest.approx(column(rest, 1).mean())
        assert {m["method"] for m in client.get("/stats/heat").json()} == {"gradcam", "eigencam"}
        assert client.get("/stats/heat", params={"format": "xml"}).status_code == 400


def test_cli_prints_one_table_per_comparison(cli, heat):
    result = cli("detect", "heat-stats", "--model", str(heat["model_id"]), "--method", "gradcam")
    assert result.exit_code == 0, result.output
    assert result.output.count("vs rest of the city") == 3
    market = next(t for t in expected(heat["values"])["market"])
    assert f"{market['welch_p_holm']:.2g}" in result.output
    stored = cli("detect", "heat-stats", "--stored", "--method", "nonesuch")
    assert stored.exit_code == 0 and "no heat maps" in stored.output
