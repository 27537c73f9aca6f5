"""The whole pipeline in order: roads → points → collect → clean → segment → stats.

`run_pipeline` is the plain function (the CLI and tests call it); `pipeline_flow` runs the
same stages as Prefect tasks, with retries where failures are usually transient (network
collection). Every stage is idempotent and resumable, so a rerun after a failure redoes
only what is missing. Stage modules are imported when their stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task

from streetaudit.flows.errors import InputError
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.retries import worth_retrying

STAGES = ("roads", "points", "collect", "clean", "segment", "stats")


@dataclass
class PipelineOptions:
    # Every option of `roads load` / `areas load`: a reload with fewer options than the first
    # load would read the file differently (and wipe names and kinds).
    roads: RoadLoading = field(default_factory=RoadLoading)
    areas: AreaLoading = field(default_factory=AreaLoading)
    interval: float = 30.0
    provider: str | None = None
    collect_limit: int | None = None
    model: str | None = None
    backend: str = "hf"
    device: str = "auto"
    batch_size: int = 8
    segment_limit: int | None = None
    stats_model: str | None = None
    stages: tuple[str, ...] = STAGES
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise InputError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        if "collect" in self.stages and not self.provider:
            raise InputError("the collect stage needs --provider (or leave collect out with --stages)")
        for loading, flag, prefix in ((self.roads, "--roads", "--road-"), (self.areas, "--areas", "--area-")):
            stray = loading.changed_fields()
            if loading.path is None and stray:
                names = ", ".join(prefix + name.replace("_", "-") for name in stray)
                raise InputError(f"{names} only apply with {flag} FILE (the file to load)")
        if (self.roads.path or self.areas.path) and "roads" not in self.stages:
            raise InputError("--roads/--areas are loaded by the roads stage; add roads to --stages")


def stage_roads(url: str, o: PipelineOptions) -> str:
    """Roads, then heritage areas; each file is optional and loaded on its own."""
    parts = []
    if o.roads.path is None:
        parts.append("roads: no file given; using the roads already loaded")
    else:
        from streetaudit.flows.roads import load_roads_with

        report = load_roads_with(url, o.roads)
        parts.append(f"roads: {report.loaded} lines ({report.length_km:.1f} km); {report.summary()}")
        parts += [f"roads row {row}: {text}" for row, text in report.warnings]
    if o.areas.path is not None:
        from streetaudit.flows.areas import load_areas_with

        areas = load_areas_with(url, o.areas)
        parts.append(f"heritage areas: {areas.loaded}; {areas.summary('areas')}")
        parts += [f"areas row {row}: {text}" for row, text in areas.warnings]
    return "; ".join(parts)


def stage_points(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.points import densify

    report = densify(url, interval=o.interval)
    return f"points: {report.points} ({report.inserted} new)"


def stage_collect(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.collect import collect

    report = collect(url, o.provider, limit=o.collect_limit, progress=False)
    return f"collect: {report}"


def stage_clean(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.clean import clean_images

    return f"clean: {clean_images(url)}"


def stage_segment(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.segment import segment

    report = segment(
        url,
        model=o.model,
        backend=o.backend,
        batch_size=o.batch_size,
        device=o.device,
        limit=o.segment_limit,
        progress=False,
    )
    return f"segment: {report}"


def stage_stats(url: str, o: PipelineOptions) -> str:
    from streetaudit.flows.stats import refresh_stats

    report = refresh_stats(url, model=o.stats_model)
    return (
        f"stats: model {report.model_id} ({report.model_name}), {report.points} points, "
        f"{report.roads} roads with data; data version {report.version}"
    )


RUNNERS = {
    "roads": stage_roads,
    "points": stage_points,
    "collect": stage_collect,
    "clean": stage_clean,
    "segment": stage_segment,
    "stats": stage_stats,
}


def run_pipeline(url: str, options: PipelineOptions, report=print, runners=RUNNERS) -> list[str]:
    """Run the chosen stages in pipeline order (whatever order they were given in).

    `runners` maps each stage to what runs it: the plain functions, or the Prefect tasks
    wrapping them (pipeline_flow).
    """
    options.check()
    if "points" in options.stages:  # before the roads stage writes anything
        import psycopg

        from streetaudit.flows.points import check_densify_parameters

        with psycopg.connect(url) as conn:
            check_densify_parameters(conn, interval=options.interval)
    lines = []
    for stage in STAGES:
        if stage in options.stages:
            lines.append(runners[stage](url, options))
            report(lines[-1])
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
    roads: RoadLoading | None = None,
    areas: AreaLoading | None = None,
    interval: float = 30.0,
    provider: str | None = None,
    collect_limit: int | None = None,
    model: str | None = None,
    backend: str = "hf",
    device: str = "auto",
    segment_limit: int | None = None,
    stats_model: str | None = None,
    stages: list[str] | None = None,
) -> list[str]:
    options = PipelineOptions(
        roads=roads or RoadLoading(),
        areas=areas or AreaLoading(),
        interval=interval,
        provider=provider,
        collect_limit=collect_limit,
        model=model,
        backend=backend,
        device=device,
        segment_limit=segment_limit,
        stats_model=stats_model,
        stages=tuple(stages or STAGES),
    )
    options.check()
    if url is None:
        # Deployments (prefect.yaml) keep secrets out of their parameters: the worker's
        # STREETAUDIT_DATABASE_URL names the database.
        from streetaudit.sql.connect import ready_database

        url = ready_database()
    return run_pipeline(url, options, runners=_TASKS)
