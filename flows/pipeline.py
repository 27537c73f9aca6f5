"""The whole pipeline in order: roads → areas → points → collect → clean → segment → [predict →
explain →] stats (predict and explain, which need a trained detector, only when asked).

Each stage is its plain function (`load_roads`, `load_areas`, `densify`, `collect`,
`clean_images`, `segment`, `refresh_stats`) called with every field of its options model
(`load_options`, `stage_options`), so an option added to a stage reaches the pipeline, its
flow's parameters and `run pipeline` at once. `run_pipeline` is the plain function (tests
call it); `pipeline_flow` runs the same stages as Prefect tasks, with retries where failures
are usually transient (network collection). Every stage is idempotent and resumable, so a
rerun after a failure redoes only what is missing. Stage modules are imported when their
stage runs. Each stage tells its run what it did (`told`: the summary its own command prints,
in the run's log, and a table artifact), since a deployment's run is read in the Prefect UI.

The flow submits each stage to its task runner (`task_runner`: thread, or dask with the
optional extra; flows/task_runners.py) once the stages it needs (NEEDS) are done. Up to
`clean` each stage needs the one before, but `roads` and `areas` load different tables,
`segment` and `predict` both read only the cleaned images, and `stats` and `explain` need
only segmentation (explain: and predictions): those run side by side. Everything else is
sequential by nature. The summaries are echoed in pipeline order as the stages finish.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Collection
from typing import Any

from prefect import flow, task
from pydantic import BaseModel, ConfigDict, Field

from streetaudit.flows.errors import InputError
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.retries import worth_retrying
from streetaudit.flows.run_reports import echo_later, measures, publish_table, tell
from streetaudit.flows.stage_options import (
    DEFAULT_STAGES,
    PREFIXES,
    STAGES,
    CleanOptions,
    CollectOptions,
    ExplainOptions,
    PointsOptions,
    PredictOptions,
    SegmentOptions,
    StatsOptions,
)


class PipelineOptions(BaseModel):
    """Which stages run, and each stage's options (a model per stage, named after it)."""

    model_config = ConfigDict(extra="forbid")

    stages: tuple[str, ...] = DEFAULT_STAGES
    # Every option of `roads load` / `areas load`: a reload with fewer options than the first
    # load would read the file differently (and wipe names and kinds).
    roads: RoadLoading = Field(default_factory=RoadLoading)
    areas: AreaLoading = Field(default_factory=AreaLoading)
    points: PointsOptions = Field(default_factory=PointsOptions)
    collect: CollectOptions = Field(default_factory=CollectOptions)
    clean: CleanOptions = Field(default_factory=CleanOptions)
    segment: SegmentOptions = Field(default_factory=SegmentOptions)
    predict: PredictOptions = Field(default_factory=PredictOptions)
    explain: ExplainOptions = Field(default_factory=ExplainOptions)
    stats: StatsOptions = Field(default_factory=StatsOptions)

    def check(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise InputError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        if "collect" in self.stages and not self.collect.provider:
            raise InputError("the collect stage needs --provider (or leave collect out with --stages)")
        for stage, stage_options in (("predict", self.predict), ("explain", self.explain)):
            if stage in self.stages and not stage_options.model:
                raise InputError(f"the {stage} stage needs --{stage}-model (a detector from `detect train`)")
        for stage, loading, flag in (("roads", self.roads, "--roads"), ("areas", self.areas, "--areas")):
            stray = loading.changed_fields()
            if loading.path is None and stray:
                names = ", ".join("--" + PREFIXES[stage] + name.replace("_", "-") for name in stray)
                raise InputError(f"{names} only apply with {flag} FILE (the file to load)")
            if loading.path is not None and stage not in self.stages:
                raise InputError(f"{flag} is loaded by the {stage} stage; add {stage} to --stages")


def told(stage: str, lines: list[str], table: list[dict[str, Any]], description: str) -> str:
    """The stage's summary, as its own command prints it, logged on the run with its table."""
    text = f"{stage}: " + "\n".join(lines)
    tell(text)
    publish_table(f"{stage}-summary", table, description)
    return text


def stage_roads(url: str, o: PipelineOptions) -> str:
    if o.roads.path is None:
        return told("roads", ["no file given; using the roads already loaded"], [], "")
    from streetaudit.flows.roads import load_roads

    report = load_roads(url, **o.roads.model_dump())
    lines = [f"{report.loaded} lines ({report.length_km:.1f} km); {report.summary()}"]
    lines += [f"  row {row}: {text}" for row, text in report.warnings]
    return told("roads", lines, measures(report), f"Roads loaded from {report.source}")


def stage_areas(url: str, o: PipelineOptions) -> str:
    if o.areas.path is None:
        return told("heritage areas", ["no file given; using the areas already loaded"], [], "")
    from streetaudit.flows.areas import load_areas

    report = load_areas(url, **o.areas.model_dump())
    lines = [f"{report.loaded}; {report.summary('areas')}"]
    lines += [f"  row {row}: {text}" for row, text in report.warnings]
    return told("heritage areas", lines, measures(report), f"Heritage areas loaded from {report.source}")


def stage_points(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.points import densify, summary_lines

    report = densify(url, **o.points.model_dump())
    lines = summary_lines(report, o.points.interval)
    return told("points", lines, measures(report), "Sample points after densification")


def stage_collect(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.collect import (
        CollectFailed,
        collect,
        error_lines,
        only_errors_message,
        summary_line,
    )

    report = collect(url, **o.collect.model_dump(), progress=progress_bars())
    text = told(
        "collect",
        [summary_line(report), *error_lines(report)],
        collect_counts(url, report),
        f"Views by status for provider {report.provider}: this run and all stored",
    )
    if report.only_errors:  # as `collect` exits 1: nothing usable came of it
        raise CollectFailed(only_errors_message(report))
    return text


def collect_counts(url: str, report) -> list[dict[str, Any]]:
    """This run's views by status beside all the provider's stored views by status."""
    import psycopg

    with psycopg.connect(url) as conn:
        stored: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM streetaudit.image WHERE provider = %s GROUP BY status",
                (report.provider,),
            ).fetchall()
        )
    run = {"ok": report.ok, "missing": report.missing, "error": report.error}
    statuses = [*run, *sorted(set(stored) - set(run))]
    rows = [{"status": s, "this run": run.get(s, 0), "stored": stored.get(s, 0)} for s in statuses]
    rows.append({"status": "already stored (skipped)", "this run": report.skipped, "stored": None})
    return rows


def stage_clean(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.clean import clean_images, summary_lines

    report = clean_images(url, **o.clean.model_dump())
    lines = summary_lines(report, undo=o.clean.undo, min_bytes=o.clean.min_bytes)
    return told("clean", lines, measures(report), "Views checked and excluded by reason")


def stage_segment(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.segment import segment, summary_lines

    report = segment(url, **o.segment.model_dump(), progress=progress_bars())
    description = f"Segmentation with model {report.model_id} ({report.model_name})"
    return told("segment", summary_lines(report), measures(report), description)


def stage_predict(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.detect_predict import predict, summary_line

    report = predict(url, **o.predict.model_dump(), progress=progress_bars())
    return told("predict", [summary_line(report)], measures(report), "Detections")


def stage_explain(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.explain import explain, summary_line

    report = explain(url, **o.explain.model_dump(), progress=progress_bars())
    return told("explain", [summary_line(report)], measures(report), "Grad-CAM heat maps")


CORE_VS_REST: tuple[str, ...] = ("element", "n_core", "n_rest", "mean_core", "mean_rest", "mean_diff")
CORE_VS_REST += ("cohens_d", "welch_p_holm", "mannwhitney_p_holm")


def stage_stats(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.stats import (
        comparison_table,
        refresh_notes,
        refresh_stats,
        street_table,
        summary_line,
    )

    report = refresh_stats(url, **o.stats.model_dump())
    pooled = [r for r in report.comparisons if r["area_id"] is None]
    table = [{k: r[k] for k in CORE_VS_REST} for r in pooled]
    lines = [summary_line(report), *refresh_notes(report)]
    lines += [rendered(comparison_table(report.comparisons)), rendered(street_table(report.comparisons))]
    description = "All heritage cores vs the rest of the city (Holm-adjusted p-values)"
    return told("stats", lines, table, description)


def rendered(renderable: Any) -> str:
    """A rich table as plain text, for the run's log (which has no terminal to draw on)."""
    from rich.console import Console

    console = Console(width=110, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().rstrip()


def progress_bars() -> bool:
    """A terminal bar when there is a terminal; the run's progress artifact in any case."""
    return sys.stderr.isatty() or sys.stdout.isatty()


RUNNERS: dict[str, Callable[[str, PipelineOptions], str]] = {
    "roads": stage_roads,
    "areas": stage_areas,
    "points": stage_points,
    "collect": stage_collect,
    "clean": stage_clean,
    "segment": stage_segment,
    "predict": stage_predict,
    "explain": stage_explain,
    "stats": stage_stats,
}


# The stages each stage needs done first (their rows are its input). A stage left out of a
# run stands for what it needs: `stats` in a run without segment waits for clean, and so on.
NEEDS: dict[str, tuple[str, ...]] = {
    "roads": (),
    "areas": (),
    "points": ("roads",),
    "collect": ("points",),
    "clean": ("collect",),
    "segment": ("clean",),
    "predict": ("clean",),
    "explain": ("segment", "predict"),  # the boxes to explain first; the building masks
    "stats": ("segment", "areas"),
}


def upstream(stage: str, chosen: Collection[str]) -> set[str]:
    """The chosen stages `stage` waits for: its needs, or theirs where one is not chosen."""
    found: set[str] = set()
    for need in NEEDS[stage]:
        found |= {need} if need in chosen else upstream(need, chosen)
    return found


def check_pipeline(url: str, options: PipelineOptions) -> None:
    """Every stage's options, before any stage writes anything."""
    options.check()
    if "points" in options.stages:  # before the roads stage writes anything
        import psycopg

        from streetaudit.flows.points import check_densify_parameters

        with psycopg.connect(url) as conn:
            p = options.points
            check_densify_parameters(conn, interval=p.interval, dedupe_within=p.dedupe_within, srid=p.srid)


def run_pipeline(url: str, options: PipelineOptions, report=print, runners=RUNNERS) -> list[str]:
    """Run the chosen stages one after another in pipeline order (whatever order they were
    given in): the plain functions, in this process (`pipeline_flow` runs them as tasks)."""
    check_pipeline(url, options)
    lines = []
    for stage in STAGES:
        if stage in options.stages:
            lines.append(runners[stage](url, options))
            report(lines[-1])
    return lines


def run_stages(url: str, options: PipelineOptions, task_runner: Any) -> list[str]:
    """Submit each chosen stage's task once the stages it needs are done; their summaries in
    pipeline order. A failed stage's error is raised once every stage still running is done
    (those that needed it do not start)."""
    from prefect.futures import wait

    check_pipeline(url, options)
    chosen = [stage for stage in STAGES if stage in options.stages]
    lines: list[str] = []
    # Tasks on Dask workers do not see this process's terminal: the flow echoes for them.
    with echo_later() as echo, task_runner:
        futures: dict[str, Any] = {}
        for stage in chosen:
            after = [futures[s] for s in sorted(upstream(stage, chosen))]
            futures[stage] = task_runner.submit(_TASKS[stage], {"url": url, "o": options}, wait_for=after)
        try:
            for stage in chosen:
                lines.append(futures[stage].result())
                echo(lines[-1])
        finally:
            wait(list(futures.values()))
    return lines


# Network stages are retried: providers rate-limit and time out; the stages resume.
# Failures the user must fix (a bad key, bad input) are not retried.
_TASKS = {
    stage: task(
        name=stage,
        retries=2 if stage == "collect" else 0,
        retry_delay_seconds=120,
        retry_condition_fn=worth_retrying,
    )(runner)
    for stage, runner in RUNNERS.items()
}


@flow(name="pipeline", log_prints=True)
def pipeline_flow(
    url: str | None = None,
    stages: list[str] | None = None,
    roads: RoadLoading | None = None,
    areas: AreaLoading | None = None,
    points: PointsOptions | None = None,
    collect: CollectOptions | None = None,
    clean: CleanOptions | None = None,
    segment: SegmentOptions | None = None,
    predict: PredictOptions | None = None,
    explain: ExplainOptions | None = None,
    stats: StatsOptions | None = None,
    task_runner: str = "thread",
) -> list[str]:
    """The chosen stages (default: all but predict and explain) with each stage's options; a
    stage not given options runs with its defaults. `task_runner`: thread or dask (stages that
    do not need each other run side by side; flows/task_runners.py)."""
    from streetaudit.flows.deployments import refuse_empty_variables
    from streetaudit.flows.task_runners import make_task_runner

    refuse_empty_variables()  # a deployment's parameter that prefect.yaml left empty
    given: dict[str, Any] = {"roads": roads, "areas": areas, "points": points, "collect": collect}
    given |= {"clean": clean, "segment": segment, "predict": predict, "explain": explain, "stats": stats}
    options = PipelineOptions(
        stages=tuple(stages or DEFAULT_STAGES),
        **{name: value for name, value in given.items() if value is not None},
    )
    options.check()
    runner = make_task_runner(task_runner)
    if url is None:
        # Deployments (prefect.yaml) keep secrets out of their parameters: the worker's
        # STREETAUDIT_DATABASE_URL names the database.
        from streetaudit.sql.connect import ready_database

        url = ready_database()
    return run_stages(url, options, runner)
