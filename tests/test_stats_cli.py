"""`streetaudit stats refresh|plot|export` and the pipeline's stats stage, end to end."""

from __future__ import annotations

import pandas as pd
import psycopg
import pyogrio
import pytest
from PIL import Image

from streetaudit.flows.errors import InputError
from streetaudit.flows.pipeline import PipelineOptions, run_pipeline
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database starts with the session's Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def models(db_url: str) -> list[int]:
    return synthetic_models(db_url, seeds=(21,))


@pytest.fixture
def refreshed(db_url: str, models: list[int]) -> list[int]:
    """The api views computed for this test, not left over from an earlier one."""
    from streetaudit.flows.stats import refresh_stats

    refresh_stats(db_url)
    return models


def test_stats_refresh_prints_the_core_vs_rest_table(cli, models):
    result = cli("stats", "refresh")
    assert result.exit_code == 0, result.output
    assert "synthetic-21" in result.output and "all core areas vs rest of the city" in result.output
    assert "greenery" in result.output and "Welch p" in result.output
    # the street-level table, and the selection the figures come from
    assert "street level: roads as units" in result.output and "perm p" in result.output
    assert "images of provider synthetic only (the provider with the most ok images)" in result.output


def test_stats_refresh_selection_options(cli, db_url, models):
    result = cli(
        "stats", "refresh", "--provider", "synthetic", "--complete-only", "--holm", "all",
        "--permutations", "99", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "images of provider synthetic only (--provider)" in result.output
    assert "left out (--complete-only)" in result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT DISTINCT holm_family, complete_only, n_permutations FROM api.area_comparison"
        ).fetchall() == [("all", True, 99)]
        assert conn.execute("SELECT bool_and(n_images = n_views) FROM api.point_elements").fetchone()[0]
    bad = cli("stats", "refresh", "--holm", "some")
    assert bad.exit_code == 2 and "--holm must be one of elements, all" in bad.output


def test_stats_refresh_with_unknown_model_fails_in_one_line(cli, models):
    result = cli("stats", "refresh", "--model", "nope")
    assert result.exit_code == 2
    assert "no such segmentation model" in result.output


@pytest.mark.slow
def test_stats_plot_writes_the_figures(cli, refreshed, tmp_path):
    result = cli("stats", "plot", "--out", tmp_path / "plots", "--format", "png")
    assert result.exit_code == 0, result.output
    stems = {"road_means", "road_stds", "core_areas_road_means", "heritage_areas", "core_vs_rest"}
    names = {f"{stem}.png" for stem in stems}
    assert {p.name for p in (tmp_path / "plots").iterdir()} == names
    bad = cli("stats", "plot", "--out", tmp_path / "other", "--format", "png,tiff")
    assert bad.exit_code == 2 and "--format png,tiff" in bad.output and not (tmp_path / "other").exists()
    for name in names:
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.width > 500 and image.height > 500


@pytest.mark.parametrize("fmt", ["gpkg", "parquet", "csv"])
def test_stats_export_writes_every_view(cli, db_url, refreshed, tmp_path, fmt):
    out = tmp_path / ("stats.gpkg" if fmt == "gpkg" else fmt)
    result = cli("stats", "export", "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        counts = {
            v: conn.execute(f"SELECT count(*) FROM api.{v}").fetchone()[0]
            for v in ("street_stats", "road_stats", "area_stats", "point_elements", "area_comparison")
        }
    for view, n in counts.items():
        if fmt == "gpkg":
            frame = pyogrio.read_dataframe(out, layer=view)
        elif fmt == "parquet":
            frame = pd.read_parquet(out / f"{view}.parquet")
        else:
            frame = pd.read_csv(out / f"{view}.csv")
        assert len(frame) == n, view
    assert n > 0


def test_stats_export_rejects_an_unknown_format(cli, models, tmp_path):
    result = cli("stats", "export", "--format", "xlsx", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "--format" in result.output


def test_pipeline_runs_the_chosen_stages_in_order(db_url, models):
    lines = run_pipeline(db_url, PipelineOptions(stages=("stats", "points")), report=lambda _: None)
    assert lines[0].startswith("points:") and lines[1].startswith("stats:")
    with pytest.raises(InputError, match="needs --provider"):
        run_pipeline(db_url, PipelineOptions(stages=("collect",)))
    with pytest.raises(InputError, match="unknown stage"):
        run_pipeline(db_url, PipelineOptions(stages=("bake",)))


def test_pipeline_flow_runs_its_stages_as_prefect_tasks(db_url, models, prefect_harness):
    from streetaudit.flows.pipeline import pipeline_flow

    lines = pipeline_flow(url=db_url, stages=["stats", "points"])
    assert lines[0].startswith("points:") and lines[1].startswith("stats:")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM api.road_stats").fetchone()[0] > 0


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert text.startswith("error:") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in text, (fragment, result.output)


@pytest.mark.parametrize("fmt", ["gpkg", "csv"])
def test_stats_export_under_a_file_exits_2_naming_the_path(cli, refreshed, tmp_path, fmt):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / ("stats.gpkg" if fmt == "gpkg" else "stats")
    _one_line_error(
        cli("stats", "export", "--format", fmt, "--out", out), f"--out {out}", "cannot write there"
    )
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_stats_export_and_plot_to_proc_exit_2(cli, refreshed):
    _one_line_error(
        cli("stats", "export", "--format", "parquet", "--out", "/proc/streetaudit-export"),
        "--out /proc/streetaudit-export",
        "cannot write there",
    )
    _one_line_error(cli("stats", "plot", "--out", "/proc/streetaudit-plots"), "--out /proc/streetaudit-plots")


def test_stats_plot_under_a_file_exits_2_and_writes_nothing(cli, refreshed, tmp_path):
    blocker = tmp_path / "plots.png"
    blocker.write_bytes(b"png")
    _one_line_error(cli("stats", "plot", "--out", blocker / "figures"), str(blocker / "figures"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots.png"]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_failure_while_writing_leaves_the_earlier_output_and_no_staging_files(tmp_path, kind):
    from streetaudit.flows.output_files import staged_file, staged_folder

    out = tmp_path / ("stats.gpkg" if kind == "file" else "stats")
    if kind == "file":
        out.write_text("earlier export")
    else:
        out.mkdir()
        (out / "road_stats.csv").write_text("earlier export")
    staging = staged_file(out) if kind == "file" else staged_folder(out)
    with pytest.raises(RuntimeError, match="halfway"), staging as stage:
        (stage if kind == "file" else stage / "road_stats.csv").write_text("half")
        raise RuntimeError("halfway")
    earlier = out if kind == "file" else out / "road_stats.csv"
    assert earlier.read_text() == "earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
