"""Bad densify and demo options: exit 2, one line naming the option, nothing written."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from streetaudit.cli.main import app


@pytest.fixture
def fresh_cli(monkeypatch: pytest.MonkeyPatch, fresh_db_url: str, tmp_path):
    """`streetaudit ARGS` against a fresh database holding one 300 m road and no points."""
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('t', '1', ST_GeomFromText('LINESTRING(24.94 60.17, 24.9454 60.17)', 4326), 300)"""
        )
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def written(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT (SELECT count(*) FROM streetaudit.road), (SELECT count(*) FROM streetaudit.heritage_area),
                      (SELECT count(*) FROM streetaudit.sample_point)"""
        ).fetchone()


@pytest.mark.parametrize(
    ("args", "named", "reason"),
    [
        (["--interval", "0.001"], "--interval", "from 1 to 100000"),  # was: invalid memory alloc
        (["--interval", "inf"], "--interval", "got Infinity"),  # was: reported as --srid
        (["--interval", "-inf"], "--interval", "from 1 to 100000"),
        (["--interval", "nan"], "--interval", "got NaN"),
        (["--interval", "0"], "--interval", "got 0"),
        (["--interval", "100001"], "--interval", "from 1 to 100000"),
        (["--dedupe-within", "inf"], "--dedupe-within", "from 0 to 50"),
        (["--dedupe-within", "nan"], "--dedupe-within", "got NaN"),
        (["--dedupe-within", "-1"], "--dedupe-within", "from 0 to 50"),
        (["--srid", "4326"], "--srid", "SRID 4326 is not in metres"),
        (["--srid", "999999"], "--srid", "SRID 999999 is unknown"),
        (["--srid", "99999999999999999999"], "--srid", "is unknown"),
    ],
)
def test_bad_densify_options_exit_2_naming_the_option(
    fresh_cli, fresh_db_url: str, args: list[str], named: str, reason: str
) -> None:
    for command in (["points", "densify"], ["run", "pipeline", "--stages", "points"]):
        result = fresh_cli(*command, *args)
        assert result.exit_code == 2, result.output
        line = " ".join(result.output.split())
        assert line.startswith(f"error: {named} ") and reason in line, line
        assert "Traceback" not in result.output
        assert written(fresh_db_url) == (1, 0, 0)


def test_good_bounds_are_accepted(fresh_cli, fresh_db_url: str) -> None:
    assert fresh_cli("points", "densify", "--interval", "1", "--dedupe-within", "50").exit_code == 0
    assert 299 <= written(fresh_db_url)[2] <= 301  # a ~300 m road, a point every metre
    assert fresh_cli("points", "densify", "--interval", "100000", "--dedupe-within", "0").exit_code == 0


def test_demo_checks_its_interval_before_writing_roads_or_areas(fresh_cli, fresh_db_url: str) -> None:
    before = written(fresh_db_url)
    for bad in ("0", "inf", "nan", "0.001"):
        result = fresh_cli("demo", "--interval", bad)
        assert result.exit_code == 2 and "--interval" in result.output, result.output
        assert written(fresh_db_url) == before


def test_rerunning_the_demo_roads_step_duplicates_nothing(fresh_db_url: str) -> None:
    from rich.console import Console

    from streetaudit.flows.demo import step_roads_and_points

    quiet = Console(quiet=True)
    step_roads_and_points(fresh_db_url, quiet, interval=30)
    first = written(fresh_db_url)
    step_roads_and_points(fresh_db_url, quiet, interval=30)
    assert written(fresh_db_url) == first and first[1] > 0
