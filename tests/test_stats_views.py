"""Every published statistic equals a numpy/scipy recomputation from the base tables.

Data: real OSM roads of central Helsinki, the demo heritage core, sample points every 30 m,
and two seeded synthetic segmentation models (with non-ok images and failed segmentations
that must be ignored). Membership in areas is recomputed with shapely, not PostGIS.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely
from scipy import stats as scistats

from streetaudit.flows.errors import InputError
from streetaudit.flows.stats import ELEMENTS, refresh_stats
from streetaudit.testing.seeded_results import synthetic_models

TOL = 1e-9


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def models(db_url: str) -> list[int]:
    return synthetic_models(db_url, seeds=(11, 12))


@pytest.fixture(scope="module")
def base(db_url: str, models: list[int]) -> dict[str, pd.DataFrame]:
    """The base tables, read without any of our views or functions."""
    with psycopg.connect(db_url) as conn:

        def frame(query: str) -> pd.DataFrame:
            cur = conn.execute(query)
            return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])

        return {
            "points": frame(
                "SELECT id AS point_id, road_id, ST_AsBinary(geom) AS wkb FROM streetaudit.sample_point"
            ),
            "roads": frame("SELECT id AS road_id FROM streetaudit.road"),
            "images": frame("SELECT id AS image_id, point_id, status FROM streetaudit.image"),
            "segs": frame(
                "SELECT image_id, model_id, error, " + ", ".join(ELEMENTS) + " FROM streetaudit.segmentation"
            ),
            "areas": frame(
                "SELECT id AS area_id, name, kind, ST_AsBinary(geom) AS wkb FROM streetaudit.heritage_area ORDER BY id"
            ),
        }


def point_values(base: dict[str, pd.DataFrame], model_id: int) -> pd.DataFrame:
    segs = base["segs"]
    segs = segs[(segs.model_id == model_id) & segs.error.isna()]
    images = base["images"][base["images"].status == "ok"]
    joined = segs.merge(images, on="image_id")
    values = joined.groupby("point_id")[list(ELEMENTS)].agg(lambda s: float(np.mean(s.to_numpy(float))))
    values["n_images"] = joined.groupby("point_id").size()
    points = base["points"].set_index("point_id")
    values["road_id"] = points.loc[values.index, "road_id"]
    values["geom"] = shapely.from_wkb([bytes(b) for b in points.loc[values.index, "wkb"]])
    return values


def membership(base: dict[str, pd.DataFrame], values: pd.DataFrame) -> dict[int, np.ndarray]:
    out = {}
    for row in base["areas"].itertuples():
        area = shapely.from_wkb(bytes(row.wkb))
        out[row.area_id] = np.array([area.intersects(g) for g in values["geom"]], dtype=bool)
    return out


def rest_mask(base: dict[str, pd.DataFrame], member: dict[int, np.ndarray], n: int) -> np.ndarray:
    cores = [member[r.area_id] for r in base["areas"].itertuples() if r.kind == "core"]
    return ~np.any(cores, axis=0) if cores else np.ones(n, dtype=bool)


def close(actual, expected) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    return actual is not None and math.isclose(actual, expected, rel_tol=TOL, abs_tol=TOL)


def view(db_url: str, query: str) -> list[dict]:
    with psycopg.connect(db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query).fetchall()


def holm_reference(p: list[float]) -> list[float]:
    """Holm by its definition: adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(p)
    ranked = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    for position, i in enumerate(ranked):
        adjusted[i] = max(min(1.0, (m - k) * p[ranked[k]]) for k in range(position + 1))
    return adjusted


def test_refresh_uses_the_most_recent_model_by_default(db_url, models):
    report = refresh_stats(db_url)
    assert report.model_id == models[-1]
    (row,) = view(db_url, "SELECT * FROM api.data_version")
    assert row["model_id"] == models[-1] and row["version"] == report.version


def test_point_elements_are_means_over_ok_images(db_url, base, models):
    refresh_stats(db_url)
    expected = point_values(base, models[-1])
    rows = {r["point_id"]: r for r in view(db_url, "SELECT * FROM api.point_elements")}
    assert set(rows) == set(expected.index)
    for point_id, e in expected.iterrows():
        r = rows[point_id]
        assert r["n_images"] == e["n_images"] and r["road_id"] == e["road_id"]
        for element in ELEMENTS:
            assert close(r[element], e[element]), (point_id, element)
    # the synthetic data really contains what must be ignored
    assert (base["images"].status != "ok").any() and base["segs"].error.notna().any()


def test_segment_stats_match_numpy(db_url, base, models):
    refresh_stats(db_url)
    values = point_values(base, models[-1])
    rows = {r["road_id"]: r for r in view(db_url, "SELECT * FROM api.road_stats")}
    assert set(rows) == set(base["roads"].road_id)
    with_data = 0
    for road_id, r in rows.items():
        mine = values[values.road_id == road_id]
        assert r["n_points"] == len(mine)
        with_data += len(mine) > 0
        for element in ELEMENTS:
            x = mine[element].to_numpy(float)
            assert close(r[f"{element}_mean"], float(np.mean(x)) if len(x) else None)
            assert close(r[f"{element}_std"], float(np.std(x, ddof=1)) if len(x) > 1 else None)
    assert with_data > 500


def test_area_stats_match_numpy(db_url, base, models):
    refresh_stats(db_url)
    values = point_values(base, models[-1])
    member = membership(base, values)
    groups = {r.area_id: member[r.area_id] for r in base["areas"].itertuples()}
    groups[None] = rest_mask(base, member, len(values))
    rows = {r["area_id"]: r for r in view(db_url, "SELECT * FROM api.area_stats")}
    assert set(rows) == set(groups)
    assert rows[None]["area_name"] == "rest of the city"
    for area_id, mask in groups.items():
        r = rows[area_id]
        assert r["n_points"] == int(mask.sum()) > 0
        for element in ELEMENTS:
            x = values[element].to_numpy(float)[mask]
            expected = {
                "mean": np.mean(x),
                "std": np.std(x, ddof=1),
                "p25": np.percentile(x, 25),
                "median": np.median(x),
                "p75": np.percentile(x, 75),
                "min": np.min(x),
                "max": np.max(x),
            }
            for stat, value in expected.items():
                assert close(r[f"{element}_{stat}"], float(value)), (area_id, element, stat)


def test_area_comparison_matches_scipy(db_url, base, models):
    refresh_stats(db_url)
    values = point_values(base, models[-1])
    member = membership(base, values)
    rest = rest_mask(base, member, len(values))
    cores = {r.area_id: member[r.area_id] for r in base["areas"].itertuples() if r.kind == "core"}
    cores[None] = ~rest
    rows = view(db_url, "SELECT * FROM api.area_comparison")
    assert len(rows) == len(cores) * len(ELEMENTS)
    for area_id, mask in cores.items():
        mine = {r["element"]: r for r in rows if r["area_id"] == area_id}
        assert list(mine) == list(ELEMENTS)
        welch_p, mw_p = [], []
        for element in ELEMENTS:
            a = values[element].to_numpy(float)[mask]
            b = values[element].to_numpy(float)[rest]
            r = mine[element]
            assert (r["n_core"], r["n_rest"]) == (len(a), len(b))
            pooled = math.sqrt(
                ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
            )
            welch = scistats.ttest_ind(a, b, equal_var=False)
            mw = scistats.mannwhitneyu(a, b, alternative="two-sided")
            assert close(r["mean_core"], a.mean()) and close(r["mean_rest"], b.mean())
            assert close(r["mean_diff"], a.mean() - b.mean())
            assert close(r["cohens_d"], (a.mean() - b.mean()) / pooled)
            assert close(r["welch_t"], float(welch.statistic))
            assert close(r["welch_df"], float(welch.df))
            assert close(r["welch_p"], float(welch.pvalue))
            assert close(r["mannwhitney_u"], float(mw.statistic))
            assert close(r["mannwhitney_p"], float(mw.pvalue))
            welch_p.append(float(welch.pvalue))
            mw_p.append(float(mw.pvalue))
        for element, wp, mp in zip(ELEMENTS, holm_reference(welch_p), holm_reference(mw_p), strict=True):
            assert close(mine[element]["welch_p_holm"], wp)
            assert close(mine[element]["mannwhitney_p_holm"], mp)


def test_model_option_selects_another_model_and_bumps_the_version(db_url, base, models):
    first = refresh_stats(db_url)
    older = refresh_stats(db_url, model=f"synthetic-{11}")
    assert older.model_id == models[0] and older.version > first.version
    expected = point_values(base, models[0])
    rows = {r["point_id"]: r for r in view(db_url, "SELECT point_id, greenery FROM api.point_elements")}
    assert set(rows) == set(expected.index)
    assert all(close(rows[p]["greenery"], expected.loc[p, "greenery"]) for p in expected.index)
    by_id = refresh_stats(db_url, model=str(models[-1]))
    assert by_id.model_id == models[-1] and by_id.version > older.version


def test_unknown_model_is_an_input_error(db_url, models):
    with pytest.raises(InputError, match="no such segmentation model"):
        refresh_stats(db_url, model="no-such-model")
