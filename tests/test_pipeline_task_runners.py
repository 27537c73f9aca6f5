"""The pipeline flow on Prefect's thread pool and on a Dask cluster (prefect-dask): the same
stages, the same summaries and the same published statistics; stages that do not need each
other are submitted side by side, the others wait for what they need."""

from __future__ import annotations

import re

import psycopg
import pytest

from streetaudit.flows import task_runners
from streetaudit.flows.errors import InputError
from streetaudit.flows.pipeline import NEEDS, STAGES, pipeline_flow, upstream
from streetaudit.flows.stage_options import StatsOptions
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    """This module's database (and the `cli` fixture's): Helsinki roads, core and points."""
    return helsinki_db_url


@pytest.fixture(scope="module")
def models(db_url: str) -> list[int]:
    return synthetic_models(db_url, seeds=(31,))


def test_each_stage_waits_for_the_chosen_stages_it_needs_and_no_others() -> None:
    assert set(NEEDS) == set(STAGES)
    assert upstream("stats", ("points", "stats")) == {"points"}  # through segment, clean, collect
    assert upstream("explain", ("segment", "predict", "explain")) == {"segment", "predict"}
    assert upstream("predict", ("segment", "predict")) == set()  # side by side
    assert upstream("stats", ("roads", "areas", "stats")) == {"roads", "areas"}
    assert upstream("roads", STAGES) == set() and upstream("areas", ("roads", "areas")) == set()
    with pytest.raises(InputError, match="--task-runner 'ray': choose one of thread, dask"):
        task_runners.make_task_runner("ray")


def published(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT element, n_core, n_rest, round(mean_diff::numeric, 9)
               FROM api.area_comparison WHERE area_id IS NULL ORDER BY element"""
        ).fetchall()


def without_timings(lines: list[str]) -> list[str]:
    return [re.sub(r"data version \d+ \([\d.]+ s\)", "data version N", line) for line in lines]


def test_the_pipeline_on_dask_gives_what_it_gives_on_threads(db_url, models, prefect_harness, monkeypatch):
    stages = ["roads", "areas", "stats"]  # roads and areas side by side, then stats
    # --stats-full: the second run changes no input, and must still recompute to compare.
    full = StatsOptions(full=True)
    on_threads = pipeline_flow(url=db_url, stages=stages, stats=full)
    by_threads = published(db_url)

    # A LocalCluster of one worker thread in this process: cheap, and the real DaskTaskRunner.
    monkeypatch.setenv("STREETAUDIT_DASK_PROCESSES", "false")
    monkeypatch.setenv("STREETAUDIT_DASK_WORKERS", "1")
    made = []
    real = task_runners.dask_task_runner
    monkeypatch.setattr(task_runners, "dask_task_runner", lambda s: made.append(real(s)) or made[-1])
    on_dask = pipeline_flow(url=db_url, stages=stages, stats=full, task_runner="dask")

    (runner,) = made
    assert type(runner).__name__ == "DaskTaskRunner" and runner._client is not None  # it ran the tasks
    assert [line.split(":")[0] for line in on_dask] == ["roads", "heritage areas", "stats"]
    assert without_timings(on_dask) == without_timings(on_threads)
    assert published(db_url) == by_threads and by_threads


@pytest.mark.parametrize("runner", ["thread", "dask"])
def test_run_pipeline_prints_each_summary_once_on_either_runner(
    cli, models, prefect_harness, monkeypatch, runner
):
    # (Prefect logs at WARNING here, so the command echoes the summaries itself.)
    monkeypatch.setenv("STREETAUDIT_DASK_PROCESSES", "false")
    monkeypatch.setenv("STREETAUDIT_DASK_WORKERS", "1")
    result = cli("run", "pipeline", "--stages", "areas,stats", "--task-runner", runner)
    assert result.exit_code == 0, result.output
    assert result.output.count("stats: stats from model") == 1, result.output
    assert result.output.index("heritage areas: no file given") < result.output.index("stats: ")


@pytest.mark.parametrize("runner", ["thread", "dask"])
def test_a_failed_stage_raises_its_own_error_on_either_runner(db_url, prefect_harness, monkeypatch, runner):
    # (InputError is what the command turns into exit status 2 and one line.)
    monkeypatch.setenv("STREETAUDIT_DASK_PROCESSES", "false")
    monkeypatch.setenv("STREETAUDIT_DASK_WORKERS", "1")
    with pytest.raises(InputError, match="no such segmentation model"):
        pipeline_flow(url=db_url, stages=["areas", "stats"], stats={"model": "nonesuch"}, task_runner=runner)
