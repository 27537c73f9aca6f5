"""Prefect runs that report: each stage's summary in the run's log, its table artifact, and the
progress artifact of a long stage — read back from the (ephemeral) Prefect API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import psycopg
import pytest
from prefect import flow

from streetaudit.flows.run_reports import RunProgress, artifact_key, measures, publish_table
from streetaudit.testing.seeded_results import synthetic_models


@pytest.fixture(scope="module")
def db_url(helsinki_db_url: str) -> str:
    synthetic_models(helsinki_db_url, seeds=(31,))
    return helsinki_db_url


@pytest.fixture
def info_logs():
    """The suite runs Prefect at WARNING; these tests read the INFO lines a deployment logs."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@dataclass
class Inner:
    files: int = 2


@dataclass
class Outer:
    ok: int = 3
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    examples: list = field(default_factory=lambda: [1, 2])


def test_measures_flatten_nested_reports_and_leave_lists_out() -> None:
    rows = measures(Outer())
    assert rows == [
        {"measure": "ok", "value": 3},
        {"measure": "name", "value": "x"},
        {"measure": "inner.files", "value": 2},
    ]
    assert artifact_key("Heritage areas_summary") == "heritage-areas-summary"
    assert publish_table("outside", rows, "no run") is False  # no run: nothing to attach it to


def artifacts_of(flow_run_id) -> dict[str, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return {a.key: a for a in found}

    return asyncio.run(read())


def logs_of(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs reach the API in batches

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            return "\n".join(log.message for log in logs)

    return asyncio.run(read())


@pytest.mark.slow
def test_pipeline_stages_log_their_summaries_and_publish_tables(db_url, prefect_harness, info_logs) -> None:
    import json

    from streetaudit.flows.pipeline import pipeline_flow

    collect = {"provider": "synthetic", "headings": [45], "limit": 3, "size": (64, 32)}
    state = pipeline_flow(url=db_url, stages=["collect", "stats"], collect=collect, return_state=True)
    assert state.is_completed(), state
    lines = state.result()
    assert lines[0].startswith("collect: synthetic: 3 ok") and lines[1].startswith("stats: stats from model")
    assert all("Report(" not in line for line in lines)
    run_id = state.state_details.flow_run_id
    artifacts = artifacts_of(run_id)
    assert {"collect-summary", "stats-summary", "collect-progress"} <= set(artifacts)

    with psycopg.connect(db_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT status, count(*) FROM streetaudit.image WHERE provider = 'synthetic' GROUP BY status"
            ).fetchall()
        )
        this_run = conn.execute(
            "SELECT count(*) FROM streetaudit.image WHERE provider = 'synthetic' AND heading = 45 AND status = 'ok'"
        ).fetchone()[0]
        pooled = conn.execute(
            "SELECT element, n_core, mean_diff FROM api.area_comparison WHERE area_id IS NULL ORDER BY element"
        ).fetchall()
    counts = {row["status"]: row for row in json.loads(artifacts["collect-summary"].data)}
    assert counts["ok"]["this run"] == this_run == 3
    assert {s: row["stored"] for s, row in counts.items() if s in stored} == stored
    assert float(artifacts["collect-progress"].data) == 100.0

    table = sorted(json.loads(artifacts["stats-summary"].data), key=lambda r: r["element"])
    assert [(r["element"], r["n_core"]) for r in table] == [(e, n) for e, n, _ in pooled]
    assert [r["mean_diff"] for r in table] == pytest.approx([d for _, _, d in pooled])

    log = logs_of(run_id)
    assert "collect: synthetic: 3 ok, 0 missing, 0 error" in log
    assert "stats: stats from model" in log and "vs rest of the city" in log and "Welch p" in log
    assert "collect: 3/3 (100%)" in log  # the progress line a worker's run shows


def test_progress_artifact_follows_the_bar(prefect_harness, info_logs) -> None:
    @flow
    def counting() -> None:
        with RunProgress(stage="counting", every=0.0, disable=True) as bar:
            task = bar.add_task("count", total=4)
            for _ in range(3):
                bar.update(task, advance=1)

    state = counting(return_state=True)
    artifacts = artifacts_of(state.state_details.flow_run_id)
    assert float(artifacts["counting-progress"].data) == pytest.approx(75.0)
    log = logs_of(state.state_details.flow_run_id)
    assert "counting: 1/4 (25%)" in log and "counting: 3/4 (75%)" in log
