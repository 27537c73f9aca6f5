"""`stats plot`: the figures a planner reads, checked against independent computations.

The numbers written on the box plots (n, Cohen's d, Holm-adjusted p) are recomputed here
from the points with numpy, scipy and statsmodels' Holm, and looked for in the SVG text.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image
from scipy import stats as scistats
from statsmodels.stats.multitest import multipletests

from streetaudit.flows.errors import InputError
from streetaudit.flows.plot_boxes import Group, box_figure, format_p, p_columns
from streetaudit.flows.plot_maps import MapLayers, core_area_maps, element_maps, scale_length, shared_norms
from streetaudit.flows.plots import choose_unit, parse_formats, plot_stats, read_plot_data, save, utm_srid
from streetaudit.models.label_sets import ELEMENTS
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    return helsinki_db_url


@pytest.fixture(scope="module")
def refreshed(db_url: str) -> str:
    from streetaudit.flows.stats import refresh_stats

    synthetic_models(db_url, seeds=(31,))
    refresh_stats(db_url)
    return db_url


@pytest.fixture(scope="module")
def drawn(refreshed: str, tmp_path_factory) -> tuple[Path, list[str]]:
    """One full set of figures per module (drawing them costs seconds), and what `report`
    heard while they were drawn; STREETAUDIT_PLOTS keeps them."""
    out = Path(os.environ.get("STREETAUDIT_PLOTS") or tmp_path_factory.mktemp("plots") / "plots")
    heard: list[str] = []
    plot_stats(refreshed, out, unit="road", report=heard.append)
    return out, heard


@pytest.fixture(scope="module")
def figures(drawn) -> Path:
    return drawn[0]


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()  # parses: the file is well-formed XML
    return " ".join(" ".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))


def test_p_values_that_underflow_are_not_printed_as_zero():
    assert format_p(0.0) == "< 1e-300"
    assert format_p(5e-324) == "< 1e-300"
    assert format_p(2e-300) == "= 2.0e-300"
    assert format_p(0.0123) == "= 0.012" and format_p(1.234e-5) == "= 1.2e-05"
    assert format_p(None) == "–" and format_p(float("nan")) == "–"


def test_p_columns_take_the_holm_adjusted_value_and_any_further_test():
    columns = [
        "cohens_d",
        "welch_p",
        "welch_p_holm",
        "mannwhitney_p",
        "permutation_p",
        "cluster_p",
        "cluster_p_holm",
        "bootstrap_p",
    ]
    assert p_columns(columns) == [
        ("welch_p_holm", "p Welch (Holm)"),
        ("mannwhitney_p", "p Mann–Whitney"),
        ("permutation_p", "p street permutation"),
        ("cluster_p_holm", "p street-clustered OLS (Holm)"),
        ("bootstrap_p", "p bootstrap"),  # a test added later shows up under its own name
    ]


def test_one_colour_scale_per_element_covers_every_map_of_it():
    rng = np.random.default_rng(3)
    city, close = rng.uniform(0.1, 0.6, (40, 6)), rng.uniform(0.0, 0.9, (7, 6))
    city[::3, 2] = np.nan
    city[:, 5] = np.nan
    close[:, 5] = np.nan
    norms = shared_norms(city, close)
    both = np.vstack([city, close])
    for k in range(5):
        expected = np.nanpercentile(both[:, k], [2, 98])
        assert (norms[k].vmin, norms[k].vmax) == pytest.approx(tuple(expected), rel=1e-12)
        assert norms[k].vmax < np.nanmax(both[:, k])  # a stray value does not flatten the scale
    whole = shared_norms(city, close, percentiles=(0, 100))[0]
    assert (whole.vmin, whole.vmax) == (both[:, 0].min(), both[:, 0].max())
    assert (norms[5].vmin, norms[5].vmax) == (0.0, 1.0)  # no data at all: still a scale

    # The city map and the core close-ups colour the same value alike.
    import matplotlib

    matplotlib.use("Agg")
    import shapely

    lines = [shapely.LineString([(i * 10, 0), (i * 10, 50)]) for i in range(40)]
    area = shapely.box(0, 0, 100, 50)
    layers = MapLayers.from_geometries("road", lines, [(1, "A", "core", area), (2, "B", "core", area)])
    norms = shared_norms(city)
    city_fig = element_maps(layers, city, norms, "mean", "no data")
    close_fig = core_area_maps(layers, city, norms, "mean", "no data")
    city_scales = [ax.collections[1].norm for ax in city_fig.axes[:6]]
    close_scales = [ax.collections[1].norm for ax in close_fig.axes[:12]]
    for k in range(6):
        assert city_scales[k] is norms[k] and close_scales[k] is norms[k] and close_scales[6 + k] is norms[k]


@pytest.mark.parametrize("width", [180.0, 950.0, 3_100.0, 12_000.0])
def test_scale_bar_is_a_round_length_of_a_tenth_to_a_quarter_of_the_map(width):
    length, label = scale_length(width)
    assert width / 10 < length <= width / 4
    assert f"{length:.0e}"[0] in "125"
    assert label == (f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m")


def test_maps_are_in_metres_of_the_citys_utm_zone(refreshed):
    from pyproj import Geod

    with psycopg.connect(refreshed) as conn:
        srid = utm_srid(conn, "road_stats")
        a, b = (24.935, 60.165), (24.957, 60.172)
        projected = conn.execute(
            """SELECT ST_Distance(ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s),
                                  ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s))""",
            (*a, srid, *b, srid),
        ).fetchone()[0]
    assert srid == 32635  # Helsinki: UTM zone 35N
    geodesic = Geod(ellps="WGS84").inv(*a, *b)[2]
    assert abs(projected / geodesic - 1) < 1e-3


@pytest.mark.slow
def test_every_figure_is_written_as_png_and_svg(figures, drawn):
    stems = {"road_means", "road_stds", "core_areas_road_means", "heritage_areas", "core_vs_rest"}
    assert sorted(drawn[1]) == sorted(stems)  # progress: each figure reported once
    assert {p.name for p in figures.iterdir()} == {f"{s}.{f}" for s in stems for f in ("png", "svg")}
    for stem in stems:
        with Image.open(figures / f"{stem}.png") as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.int64)[::3, ::3]
        assert image.width > 800 and image.height > 600
        colours = np.unique(pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2])
        assert pixels.std() > 10 and len(colours) > 50  # not blank, not one flat colour
        svg_text(figures / f"{stem}.svg")


@pytest.mark.slow
def test_maps_carry_the_key_scale_bar_and_element_titles(figures, refreshed):
    data = read_plot_data(refreshed, "road")
    text = svg_text(figures / "road_means.svg")
    assert "no data (no sample point with an image on the road)" in text and "heritage area outline" in text
    assert (
        scale_length(np.ptp(np.concatenate([np.asarray(g.coords) for g in data.geoms])[:, 0]) * 1.06)[1]
        in text
    )
    with_data = int((~np.isnan(data.means[:, 0])).sum())
    assert f"building: mean per road {with_data} of {len(data.geoms)} roads with data" in text
    assert "fewer than 2 points" in svg_text(figures / "road_stds.svg")
    close = svg_text(figures / "core_areas_road_means.svg")
    assert "Esplanadi" in close and "Empire centre (Senate Square)" in close


@pytest.mark.slow
def test_box_plots_show_n_d_and_holm_p_recomputed_independently(figures, refreshed):
    with psycopg.connect(refreshed) as conn:
        rows = conn.execute(
            f"""SELECT {", ".join(ELEMENTS)}, ARRAY(SELECT pa.area_id FROM streetaudit.point_area AS pa
                                                   WHERE pa.point_id = pe.point_id AND pa.kind = 'core')
                FROM api.point_elements AS pe"""
        ).fetchall()
        cores = conn.execute(
            "SELECT id FROM streetaudit.heritage_area WHERE kind = 'core' ORDER BY id"
        ).fetchall()
    values = np.array([r[:6] for r in rows], dtype=float)
    member = [set(r[6]) for r in rows]
    rest = np.array([not m for m in member])
    text = svg_text(figures / "core_vs_rest.svg")
    assert "all core areas" in text and "Esplanadi" in text
    masks = [~rest] + [np.array([c in m for m in member]) for (c,) in cores]
    for mask in masks:
        welch = [
            scistats.ttest_ind(values[mask, k], values[rest, k], equal_var=False).pvalue for k in range(6)
        ]
        mw = [scistats.mannwhitneyu(values[mask, k], values[rest, k]).pvalue for k in range(6)]
        welch_holm = multipletests(welch, method="holm")[1]
        mw_holm = multipletests(mw, method="holm")[1]
        assert f"n = {int(mask.sum())} / {int(rest.sum())}" in text
        for k in range(6):
            a, b = values[mask, k], values[rest, k]
            pooled = np.sqrt(
                ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
            )
            assert f"d = {(a.mean() - b.mean()) / pooled:+.2f}" in text
            assert f"p Welch (Holm) {format_p(welch_holm[k])}" in text
            assert f"p Mann–Whitney (Holm) {format_p(mw_holm[k])}" in text


def test_an_underflowed_p_and_a_street_level_test_appear_on_the_box_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(8)
    values = rng.uniform(0, 1, (60, 6))
    core = np.arange(60) < 20
    comparison = [
        {
            "area_id": None,
            "element": e,
            "cohens_d": 1.5,
            "welch_p_holm": 0.0,
            "mannwhitney_p_holm": 3e-7,
            "welch_p": 0.0,
            "mannwhitney_p": 1e-7,
            "permutation_p": 0.04,
            "permutation_p_holm": 0.0312,
            "cluster_unit": "street",
            "n_clusters_core": 4,
            "n_clusters_rest": 9,
            "holm_family": "all",
        }
        for e in ELEMENTS
    ]
    groups = [Group(None, "all core areas", core), Group(7, "Unreached", np.zeros(60, dtype=bool))]
    names = save(box_figure(values, groups, ~core, comparison), tmp_path, "b", ("svg",))
    text = svg_text(tmp_path / names[0])
    assert text.count("p Welch (Holm) < 1e-300") == 6 and "= 0.000" not in text
    assert (
        text.count("p street permutation (Holm) = 0.031") == 6
        and "n = 20 / 40" in text
        and "d = +1.50" in text
    )
    assert text.count("no points") == 6 and text.count("n = 0 / 40") == 6  # the area no point reaches
    assert text.count("streets = 4 / 9") == 6 and "Holm adjusts over every area × element" in text


def test_streets_are_the_default_unit_once_built(refreshed):
    # In one transaction, rolled back: whatever api.street_stats the database has is set
    # aside, and stand-ins (empty: streets not built; filled) take its place.
    with psycopg.connect(refreshed) as conn:
        conn.execute("ALTER TABLE IF EXISTS api.street_stats RENAME TO street_stats_set_aside")
        assert choose_unit(conn, None) == "road"
        with pytest.raises(InputError, match=r"api\.street_stats does not exist"):
            choose_unit(conn, "street")
        conn.execute(
            "CREATE VIEW api.street_stats AS SELECT road_id AS street_id, * FROM api.road_stats WHERE false"
        )
        assert choose_unit(conn, None) == "road"  # the view is there, the streets are not
        with pytest.raises(InputError, match="no streets yet"):
            choose_unit(conn, "street")
        conn.execute(
            "CREATE OR REPLACE VIEW api.street_stats AS "
            "SELECT road_id AS street_id, * FROM api.road_stats WHERE road_id % 2 = 0"
        )
        assert choose_unit(conn, None) == "street" and choose_unit(conn, "road") == "road"
        with pytest.raises(InputError, match="--unit lane: expected one of street, road"):
            choose_unit(conn, "lane")
        conn.rollback()


def test_formats_are_checked_before_anything_is_drawn():
    assert parse_formats("svg, png,svg") == ("svg", "png")
    with pytest.raises(InputError, match="--format pdf"):
        parse_formats("pdf")
