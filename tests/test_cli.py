"""The command line: help everywhere, the private cluster lifecycle, errors, the demo, a flow run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from streetaudit.cli.main import app
from streetaudit.sql.cluster import LocalCluster


def all_command_paths() -> list[list[str]]:
    paths = []

    def walk(command, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


def test_every_command_has_help() -> None:
    runner = CliRunner()
    paths = all_command_paths()
    assert ["db", "up"] in paths and ["points", "densify"] in paths and ["demo"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
    for name, command in get_command(app).commands.items():
        assert command.help or command.short_help, name


def test_db_commands_manage_a_private_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREETAUDIT_DATABASE_URL", raising=False)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    status = runner.invoke(app, ["db", "status"])
    assert status.exit_code == 1 and "no private cluster" in status.output
    up = runner.invoke(app, ["db", "up"])
    try:
        assert up.exit_code == 0, up.output
        assert "001_schemas_roles.sql" in up.output
        assert runner.invoke(app, ["db", "status"]).exit_code == 0
        url = runner.invoke(app, ["db", "url"]).output.strip().splitlines()[-1]
        assert url.startswith("postgresql://") and "127.0.0.1" in url
        with psycopg.connect(url) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'data_directory')"
                ).fetchall()
            )
            assert settings["listen_addresses"] == "127.0.0.1"
            pgdata = LocalCluster(tmp_path / "data").state().pgdata
            assert settings["data_directory"] == pgdata
        if os.geteuid() == 0:  # the server must not run as root
            assert Path(pgdata).stat().st_uid != 0
        reader = runner.invoke(app, ["db", "url", "--reader"]).output.strip().splitlines()[-1]
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == "streetaudit_reader"
        migrate = runner.invoke(app, ["db", "migrate"])
        assert "up to date" in migrate.output
        # A second `db up` reuses the running cluster.
        assert runner.invoke(app, ["db", "up"]).exit_code == 0
    finally:
        down = runner.invoke(app, ["db", "down"])
    assert down.exit_code == 0 and "stopped" in down.output
    assert runner.invoke(app, ["db", "status"]).exit_code == 1
    LocalCluster(tmp_path / "data").destroy()


def test_bad_input_exits_non_zero_naming_the_file(cli, tmp_path: Path) -> None:
    bad = tmp_path / "broken.geojson"
    bad.write_text("not geojson")
    result = cli("roads", "load", bad)
    assert result.exit_code == 2
    assert "broken.geojson" in result.output and "cannot read" in result.output
    assert "Traceback" not in result.output


def test_bad_interval_exits_non_zero(cli) -> None:
    result = cli("points", "densify", "--interval", "-3")
    assert result.exit_code == 2 and "--interval" in result.output


def test_console_script_reports_errors_without_traceback(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "STREETAUDIT_DATABASE_URL": db_url}
    script = Path(sys.executable).parent / "streetaudit"
    result = subprocess.run(
        [str(script), "areas", "load", str(tmp_path / "missing.gpkg"), "--name-field", "n"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "missing.gpkg: no such file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_demo_runs_every_stage_and_summarises(cli, db_url: str, tmp_path: Path) -> None:
    from streetaudit.flows.demo import summary

    result = cli("demo")
    assert result.exit_code == 0, result.output
    s = summary(db_url)
    assert s["roads"] > 500 and s["points"] > 1000 and 0 < s["points_in_core"] < s["points"]
    assert f"{s['points']} points" in result.output
    assert f"{s['points_in_core']} inside the heritage core" in result.output
    # Every later stage left its rows: images, segmentations, statistics, the comparison, ratings.
    with psycopg.connect(db_url) as conn:
        ok, segmented, with_data, compared, rated = conn.execute(
            """SELECT (SELECT count(*) FROM streetaudit.image WHERE status = 'ok'),
                      (SELECT count(*) FROM streetaudit.segmentation WHERE error IS NULL),
                      (SELECT count(*) FROM api.road_stats WHERE n_points > 0),
                      (SELECT count(*) FROM api.area_comparison),
                      (SELECT count(*) FROM api.image_ratings)"""
        ).fetchone()
    assert ok > 0 and segmented >= ok and with_data > 0 and compared >= 6 and rated > 0
    assert re.search(rf"\b{with_data}\s+roads\b", result.output) and "SIMULATED" in result.output
    # …and the detection half: synthetic boxes, ground truth, a split, a trained run, every ok
    # image predicted once, heat maps with their statistics.
    with psycopg.connect(db_url) as conn:
        boxes, truth, items, finished, predicted, heat = conn.execute(
            """SELECT (SELECT count(*) FROM streetaudit.annotation WHERE replaced_at IS NULL),
                      (SELECT count(*) FROM streetaudit.ground_truth_box),
                      (SELECT count(*) FROM streetaudit.dataset_item),
                      (SELECT count(*) FROM streetaudit.detector_run WHERE status = 'finished'),
                      (SELECT count(*) FROM streetaudit.detection_done),
                      (SELECT count(*) FROM streetaudit.heatmap WHERE inside_boxes IS NOT NULL)"""
        ).fetchone()
    assert boxes > 0 and truth > 0 and 100 <= items <= 140 and finished == 1
    assert predicted == ok and heat > 0 and "mAP@.5" in result.output
    plots = sorted(p.name for p in (tmp_path / "data").rglob("*.png"))
    assert {"core_vs_rest.png", "road_means.png", "heatmap_panel.png", "training.png"} <= set(plots)
    # The README's analyst examples all return rows on the demo data.
    from streetaudit.testing.readme_examples import analyst_examples

    with psycopg.connect(db_url) as conn:
        empty = [c for c, statement in analyst_examples() if not conn.execute(statement).fetchall()]
    assert not empty, empty


def test_points_flow_runs_under_prefect(prefect_harness, fresh_db_url: str) -> None:
    # A database of its own: the demo's rating campaign holds images, and comparisons keep
    # their images from being deleted by re-densifying at another interval.
    from streetaudit.flows.demo import DEMO_KINDS, helsinki_pbf
    from streetaudit.flows.points import points_flow
    from streetaudit.flows.roads import load_roads

    db_url = fresh_db_url
    load_roads(db_url, helsinki_pbf(), kinds=DEMO_KINDS, source="demo:helsinki-osm")
    result = points_flow(db_url, interval=45.0)
    with psycopg.connect(db_url) as conn:
        n, bad = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE abs(distance_m - 45 * seq) > 1e-9) FROM streetaudit.sample_point "
            "WHERE retired_at IS NULL"
        ).fetchone()
    assert result.points == n and bad == 0


def test_plain_commands_need_no_prefect_server(db_url: str, tmp_path: Path) -> None:
    """Only `streetaudit run …` talks to Prefect; a dead Prefect API must not matter elsewhere."""
    frame_path = tmp_path / "one.geojson"
    frame_path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
        '"geometry": {"type": "LineString", "coordinates": [[24.94, 60.17], [24.95, 60.17]]}}]}'
    )
    env = {
        **os.environ,
        "STREETAUDIT_DATABASE_URL": db_url,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing listens there
    }
    script = Path(sys.executable).parent / "streetaudit"
    for args in (["roads", "load", str(frame_path)], ["points", "densify"]):
        result = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "sample points every 30 m" in result.stdout


def test_db_status_checks_an_external_server(cli) -> None:
    result = cli("db", "status")
    assert result.exit_code == 0 and "reachable, PostGIS 3" in result.output
    down = cli("db", "down")
    assert down.exit_code == 0 and "not ours to stop" in down.output
    dead = cli("db", "status", env={"STREETAUDIT_DATABASE_URL": "postgresql://x@127.0.0.1:9/none"})
    assert dead.exit_code == 2 and "does not answer" in dead.output
