"""`streetaudit streets build` on central Helsinki's real OSM roads: what it prints is what
the table holds, and the defaults give streets of a few hundred metres."""

from __future__ import annotations

import re

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest

from streetaudit.flows.stats import refresh_stats
from streetaudit.flows.streets import build_streets
from streetaudit.testing.sample_rows import tile_of
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    return helsinki_db_url


def figures(output: str) -> dict[str, float]:
    found = re.search(
        r"(\d+) streets from (\d+) roads.*median (\d+) m, 90th percentile (\d+) m, longest (\d+) m; "
        r"half of all street length is in streets of (\d+) m",
        " ".join(output.split()),
    )
    assert found, output
    keys = ("streets", "roads", "median", "p90", "longest", "weighted")
    return dict(zip(keys, map(float, found.groups()), strict=True))


def test_streets_build_reports_the_length_distribution_of_what_it_built(cli, db_url):
    result = cli("streets", "build")
    assert result.exit_code == 0, result.output
    got = figures(result.output)
    with psycopg.connect(db_url) as conn:
        lengths = np.array([r[0] for r in conn.execute("SELECT length_m FROM streetaudit.street")])
        roads = conn.execute("SELECT count(*) FROM streetaudit.road").fetchone()[0]
        by = conn.execute("SELECT split_by, max_length_m FROM streetaudit.street_build").fetchone()
    assert by == ("name", 500.0)
    assert (got["streets"], got["roads"]) == (len(lengths), roads)
    assert got["median"] == pytest.approx(np.median(lengths), abs=0.5)
    assert got["p90"] == pytest.approx(np.percentile(lengths, 90), abs=0.5)
    assert got["longest"] == pytest.approx(lengths.max(), abs=0.5) and lengths.max() <= 500 + 1e-6
    ordered = np.sort(lengths)
    weighted = ordered[np.searchsorted(np.cumsum(ordered), ordered.sum() / 2)]
    assert got["weighted"] == pytest.approx(weighted, abs=0.5)
    # Fewer, longer units than the input's lines: half the length in streets of 150 m or more
    # (the roads: 56 m), on an extract that cuts every street at its 1 x 1.7 km edge.
    assert len(lengths) < roads / 2 and weighted >= 150


def test_streets_build_names_a_bad_option(cli):
    result = cli("streets", "build", "--by", "block")
    assert result.exit_code == 2
    assert "--by must be junction or name, got block" in result.output
    result = cli("streets", "build", "--max-length", "5")
    assert result.exit_code == 2 and "--max-length must be a number of metres" in result.output


def test_streets_build_by_junction_without_a_length_cut(cli, db_url):
    result = cli("streets", "build", "--by", "junction", "--max-length", "0")
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT split_by, max_length_m FROM streetaudit.street_build").fetchone() == (
            "junction",
            None,
        )
        # every road has a stretch from 0 m, so each of its points is on a street
        assert (
            conn.execute(
                "SELECT count(*) FROM streetaudit.road AS r WHERE NOT EXISTS "
                "(SELECT 1 FROM streetaudit.street_piece AS p WHERE p.road_id = r.id AND p.from_m = 0)"
            ).fetchone()[0]
            == 0
        )
    assert figures(result.output)["streets"] > figures(cli("streets", "build").output)["streets"]


@pytest.fixture(scope="module")
def published(db_url: str) -> None:
    """Streets built and statistics published from one synthetic model."""
    synthetic_models(db_url, seeds=(41,))
    build_streets(db_url)
    refresh_stats(db_url)


@pytest.mark.slow
def test_plots_and_exports_default_to_streets_once_built(cli, db_url, published, tmp_path):
    result = cli("stats", "plot", "--out", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    assert {"street_means.png", "street_stds.png"} <= {p.name for p in (tmp_path / "plots").iterdir()}
    assert cli("stats", "plot", "--unit", "block", "--out", tmp_path / "x").exit_code == 2

    result = cli("stats", "export", "--format", "gpkg", "--out", tmp_path / "stats.gpkg")
    assert result.exit_code == 0, result.output
    import pyogrio

    frame = pyogrio.read_dataframe(tmp_path / "stats.gpkg", layer="street_stats")
    with psycopg.connect(db_url) as conn:
        rows = dict(conn.execute("SELECT street_id, road_ids FROM api.street_stats"))
        with_data = conn.execute("SELECT count(*) FROM api.street_stats WHERE n_points >= 5").fetchone()[0]
    assert len(frame) == len(rows) and with_data > 0
    assert {r.street_id: [int(v) for v in r.road_ids.split(",")] for r in frame.itertuples()} == rows


def test_the_streets_tile_holds_every_street_crossing_it_with_its_statistics(db_url, published):
    z, x, y = tile_of(24.945, 60.17, 15)
    with psycopg.connect(db_url) as conn:
        tile = bytes(conn.execute("SELECT api.streets(%s, %s, %s)", (z, x, y)).fetchone()[0])
        expected = dict(
            conn.execute(
                "SELECT street_id, n_points FROM api.street_stats "
                "WHERE ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(%s, %s, %s))",
                (z, x, y),
            )
        )
        prebuilt = conn.execute(
            "SELECT count(*) FROM streetaudit.prebuilt_tile WHERE layer = 'api.streets'"
        ).fetchone()
        layers = conn.execute("SELECT properties FROM api.tile_layers WHERE id = 'api.streets'").fetchone()
    features = mapbox_vector_tile.decode(tile)["api.streets"]["features"]
    got = {f["id"]: f["properties"]["n_points"] for f in features}
    assert set(expected) <= set(got) and all(got[k] == n for k, n in expected.items())
    assert len(expected) > 10 and prebuilt[0] > 0
    assert "greenery_std" in layers[0] and "road_ids" not in layers[0]


def test_stats_streets_serves_the_view_as_json_and_csv_within_a_bbox(db_url, reader_db_url, published):
    import csv
    import io

    from fastapi.testclient import TestClient

    from streetaudit.api.factory import create_app
    from streetaudit.api.settings import ApiSettings

    box = (24.940, 60.165, 24.948, 60.170)
    with psycopg.connect(db_url) as conn:
        inside = [
            r[0]
            for r in conn.execute(
                "SELECT street_id FROM api.street_stats WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) "
                "ORDER BY street_id",
                box,
            )
        ]
        members = dict(conn.execute("SELECT street_id, road_ids FROM api.street_stats"))
    with TestClient(create_app(reader_db_url, ApiSettings(version_ttl=0, ogc=False))) as client:
        got = client.get("/stats/streets", params={"bbox": ",".join(map(str, box))}).json()
        text = client.get("/stats/streets", params={"format": "csv", "limit": 5000}).text
    assert [r["street_id"] for r in got] == inside and len(inside) > 10
    assert all(r["road_ids"] == members[r["street_id"]] and "geom" not in r for r in got)
    table = list(csv.DictReader(io.StringIO(text)))
    assert {int(r["street_id"]): [int(v) for v in r["road_ids"].split(",")] for r in table} == members


def test_street_level_tests_cluster_by_street_once_built(db_url, published):
    """The permutation and clustered tests count streets, not roads, as their units."""
    with psycopg.connect(db_url) as conn:
        unit, core, rest = conn.execute(
            """SELECT cluster_unit, n_clusters_core, n_clusters_rest FROM api.area_comparison
               WHERE area_id IS NULL AND element = 'greenery'"""
        ).fetchone()
        expected = conn.execute(
            """SELECT count(DISTINCT ps.street_id) FILTER (WHERE pe.in_core),
                      count(DISTINCT ps.street_id) FILTER (WHERE NOT pe.in_core)
               FROM api.point_elements AS pe JOIN streetaudit.point_street AS ps USING (point_id)"""
        ).fetchone()
        roads = conn.execute("SELECT count(DISTINCT road_id) FROM api.point_elements").fetchone()[0]
    assert unit == "street" and (core, rest) == expected
    assert core + rest < roads  # streets merge roads: fewer, larger units
