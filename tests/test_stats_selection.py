"""Statistics of one (provider, model) selection, --complete-only, Holm over every comparison,
and the street-level columns of api.area_comparison, against pandas/numpy recomputations.

Data: the session's Helsinki roads, core and points; one synthetic model that segmented the
views of two providers (4 headings of `synthetic`, 2 of `other`), with non-ok views and failed
segmentations, and one heritage area out at sea that no road passes under.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import psycopg
import pytest
from scipy import stats as scistats

from streetaudit.flows.errors import InputError
from streetaudit.flows.stats import ELEMENTS, refresh_notes, refresh_stats
from streetaudit.testing.seeded_results import fill_synthetic

SEA = "Open sea (no roads)"


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    fill_synthetic(helsinki_db_url, seed=41, model_name="two-providers", provider="synthetic")
    fill_synthetic(
        helsinki_db_url, seed=42, model_name="two-providers", provider="other", headings=(0.0, 180.0)
    )
    with psycopg.connect(helsinki_db_url) as conn:
        conn.execute(
            """INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
               VALUES ('test', 'sea', %s, 'core',
                       ST_Multi(ST_MakeEnvelope(24.80, 59.90, 24.81, 59.91, 4326)), 1)""",
            (SEA,),
        )
    return helsinki_db_url


def frame(url: str, query: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        cur = conn.execute(query)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def expected_points(url: str, provider: str, complete_only: bool = False) -> pd.DataFrame:
    """Per point: usable views of `provider` only (ok and segmented without error), by pandas."""
    images = frame(url, "SELECT id AS image_id, point_id, provider, status FROM streetaudit.image")
    segs = frame(url, "SELECT image_id, error, " + ", ".join(ELEMENTS) + " FROM streetaudit.segmentation")
    mine = images[images.provider == provider]
    usable = mine[mine.status == "ok"].merge(segs[segs.error.isna()], on="image_id")
    values = usable.groupby("point_id")[list(ELEMENTS)].mean()
    values["n_images"] = usable.groupby("point_id").size()
    values["n_views"] = mine.groupby("point_id").size().loc[values.index]
    if complete_only:
        values = values[values.n_images == values.n_views]
    return values


def published(url: str) -> pd.DataFrame:
    return frame(url, "SELECT * FROM api.point_elements").set_index("point_id").sort_index()


def assert_points_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index) == list(expected.index)
    assert (got.n_images.to_numpy() == expected.n_images.to_numpy()).all()
    assert (got.n_views.to_numpy() == expected.n_views.to_numpy()).all()
    for element in ELEMENTS:
        np.testing.assert_allclose(
            got[element].to_numpy(float), expected[element].to_numpy(float), rtol=1e-12
        )


def holm_reference(p: list[float]) -> list[float]:
    m = len(p)
    ranked = sorted(range(m), key=lambda i: p[i])
    return [max(min(1.0, (m - k) * p[ranked[k]]) for k in range(ranked.index(i) + 1)) for i in range(m)]


def test_default_provider_is_the_one_with_most_ok_images_and_providers_are_never_mixed(db_url):
    report = refresh_stats(db_url, permutations=199)
    assert report.provider == "synthetic" and report.provider_by_default
    assert_points_equal(published(db_url), expected_points(db_url, "synthetic"))
    (version,) = frame(db_url, "SELECT * FROM api.data_version").to_dict("records")
    assert version["provider"] == "synthetic" and version["complete_only"] is False
    selections = frame(db_url, "SELECT DISTINCT provider, complete_only FROM api.area_comparison")
    assert selections.to_dict("records") == [{"provider": "synthetic", "complete_only": False}]
    # an area no road passes under is named, not silently dropped
    assert report.areas_without_roads == [SEA]
    notes = refresh_notes(report)
    assert any(SEA in line and "no road under them" in line for line in notes), notes
    assert "images of provider synthetic only (the provider with the most ok images)" in notes


def test_provider_option_uses_only_that_providers_views(db_url):
    report = refresh_stats(db_url, provider="other", permutations=199)
    assert report.provider == "other" and not report.provider_by_default
    got = published(db_url)
    assert_points_equal(got, expected_points(db_url, "other"))
    assert got.n_views.max() == 2
    with pytest.raises(
        InputError, match=r"--provider 'baidu': no images of that provider \(known: synthetic"
    ):
        refresh_stats(db_url, provider="baidu")


def test_complete_only_keeps_points_whose_every_view_is_usable(db_url):
    everything = expected_points(db_url, "synthetic")
    report = refresh_stats(db_url, complete_only=True, permutations=199)
    expected = expected_points(db_url, "synthetic", complete_only=True)
    assert_points_equal(published(db_url), expected)
    assert (expected.n_images == 4).all() and 0 < len(expected) < len(everything)
    assert report.incomplete_points == len(everything) - len(expected)
    roads = frame(db_url, "SELECT road_id, n_points, n_images FROM api.road_stats")
    points = published(db_url)
    per_road = points.groupby("road_id").n_images.sum()
    assert all(r.n_images == per_road.get(r.road_id, 0) for r in roads.itertuples())


def cr1_se(values: np.ndarray, core: np.ndarray, clusters: np.ndarray) -> float:
    x = np.column_stack([np.ones(len(values)), core.astype(float)])
    bread = np.linalg.inv(x.T @ x)
    residual = values - x @ (bread @ x.T @ values)
    meat = np.zeros((2, 2))
    for g in np.unique(clusters):
        score = x[clusters == g].T @ residual[clusters == g]
        meat += np.outer(score, score)
    n, g = len(values), len(np.unique(clusters))
    return math.sqrt((bread @ meat @ bread)[1, 1] * g / (g - 1) * (n - 1) / (n - 2))


def test_street_level_columns_and_holm_over_every_area_and_element(db_url):
    refresh_stats(db_url, holm="all", permutations=199)
    points = published(db_url)
    rows = frame(db_url, "SELECT * FROM api.area_comparison")
    in_core = points.in_core.to_numpy()
    compared = 0
    for r in rows.itertuples():
        mask = (
            in_core if pd.isna(r.area_id) else points.area_ids.map(lambda a, i=r.area_id: i in a).to_numpy()
        )
        chosen = mask | ~in_core
        values, side, roads = (
            points[r.element].to_numpy(float)[chosen],
            mask[chosen],
            points.road_id.to_numpy()[chosen],
        )
        assert (r.n_clusters_core, r.n_clusters_rest) == (
            len(set(roads[side])),
            len(set(roads[~side])),
        )
        assert r.cluster_unit == "road" and r.holm_family == "all"
        assert r.n_images_core == points.n_images.to_numpy()[mask].sum()
        if r.n_clusters_core < 2:  # the area out at sea: no points, no street-level test
            assert r.permutation_p is None or math.isnan(r.permutation_p)
            continue
        compared += 1
        assert math.isclose(r.cluster_diff, values[side].mean() - values[~side].mean(), rel_tol=1e-9)
        assert math.isclose(r.cluster_se, cr1_se(values, side, roads), rel_tol=1e-9)
        t = scistats.t(df=len(set(roads)) - 1)
        assert math.isclose(r.cluster_p, 2 * t.sf(abs(r.cluster_diff / r.cluster_se)), rel_tol=1e-9)
        assert r.n_permutations == 199 and 1 / 200 <= r.permutation_p <= 1
    assert compared == (rows.area_name.nunique() - 1) * len(ELEMENTS) >= 2 * len(ELEMENTS)  # all but the sea
    # one family: every area x element whose test ran
    for column in ("welch_p", "permutation_p", "cluster_p"):
        present = rows[rows[column].notna()]
        expected = holm_reference(present[column].tolist())
        np.testing.assert_allclose(present[f"{column}_holm"].to_numpy(float), expected, rtol=1e-12)
        assert len(present) >= 2 * len(ELEMENTS)
