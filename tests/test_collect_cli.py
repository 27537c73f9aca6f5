"""The `collect` command, the collect stage of `streetaudit run pipeline`, and the demo step."""

from __future__ import annotations

import psycopg
import pytest
from rich.console import Console

from streetaudit.flows.demo import step_collect

KEYS = ("STREETAUDIT_BAIDU_AK", "STREETAUDIT_GOOGLE_KEY", "STREETAUDIT_MAPILLARY_TOKEN")


@pytest.fixture(scope="module")
def with_points(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        road = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('c', '1', ST_GeomFromText('LINESTRING(24.94 60.17, 24.95 60.17)', 4326), 550) RETURNING id"""
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
               SELECT %s, g, g * 30.0, ST_SetSRID(ST_MakePoint(24.94 + g * 0.0005, 60.17), 4326)
               FROM generate_series(0, 5) AS g""",
            (road,),
        )
        conn.execute(
            """INSERT INTO streetaudit.heritage_area (source, source_id, name, geom, area_m2)
               VALUES ('c', '1', 'Senate Square', ST_Multi(ST_MakeEnvelope(24.9399, 60.1699, 24.9406, 60.1701, 4326)), 1)"""
        )
        conn.commit()
    return db_url


def test_collect_command_reports_and_resumes(cli, with_points):
    result = cli("collect", "--provider", "synthetic", "--limit", "2", "--size", "256x128", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "synthetic: 8 ok, 0 missing, 0 error, 0 already stored; 2 points" in result.output
    result = cli("collect", "--provider", "synthetic", "--limit", "2", "--size", "256x128", "--no-progress")
    assert "0 ok, 0 missing, 0 error, 8 already stored" in result.output


def test_run_pipeline_collects_with_the_collect_options(cli, with_points, prefect_harness):
    result = cli(
        "run", "pipeline", "--stages", "collect", "--provider", "synthetic", "--collect-headings", "45",
        "--collect-size", "128x64", "--collect-limit", "3", "--collect-pitch", "10", "--collect-fov", "60",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with psycopg.connect(with_points) as conn:
        n = conn.execute(
            "SELECT count(*) FROM streetaudit.image WHERE heading = 45 AND pitch = 10 AND fov = 60 AND status = 'ok'"
        ).fetchone()[0]
    assert n == 3


def test_demo_step_says_the_imagery_is_synthetic(with_points, monkeypatch, tmp_path):
    for key in KEYS:
        monkeypatch.setenv(key, "")
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path))
    console = Console(record=True, width=200)
    step_collect(with_points, console)
    text = console.export_text()
    assert "SYNTHETIC" in text and "not photographs" in text
    assert "inside Senate Square: synthetic:" in text and "whole city: synthetic:" in text
    with psycopg.connect(with_points) as conn:
        counted = conn.execute(
            "SELECT count(DISTINCT point_id) FROM streetaudit.image WHERE provider = 'synthetic' AND heading = 0"
        ).fetchone()[0]
    assert counted == 6


def test_flows_retry_transient_failures_but_not_user_errors():
    from prefect.states import Failed

    from streetaudit.flows.errors import InputError
    from streetaudit.flows.providers.base import ProviderConfigError
    from streetaudit.flows.retries import worth_retrying

    assert worth_retrying(None, None, Failed(data=TimeoutError("provider timed out"))) is True
    assert worth_retrying(None, None, Failed(data=ConnectionResetError())) is True
    assert worth_retrying(None, None, Failed(data=InputError("--size must look like 1024x512"))) is False
    assert worth_retrying(None, None, Failed(data=ProviderConfigError("baidu rejected the key"))) is False
