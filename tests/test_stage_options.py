"""One parameter list per stage: every option of a stage's command reaches its function, its
Prefect flow, `run pipeline` and the pipeline flow, with the same name, kind of value and default.

The options models (flows/load_options.py, flows/stage_options.py) are the list; this test walks
every stage and fails naming the option that one of the entry points lacks.
"""

from __future__ import annotations

import inspect

import pytest
import typer
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel

from streetaudit.cli.main import app
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.stage_options import (
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

# Options only a person at a terminal needs (a progress bar, printing a table): not stage options.
# `--processes N` only starts N copies of the command (cli/processes.py): the stage never sees it.
CLI_ONLY = {"progress", "show", "processes"}
# Objects a caller may hand a stage function instead of the default it builds (tests pass an
# image store of their own): not options either.
INJECTED = {"store"}


def stages():
    from streetaudit.flows import (
        areas,
        clean,
        collect,
        detect_predict,
        explain,
        points,
        roads,
        segment,
        stats,
    )

    return {
        "roads": (("roads", "load"), RoadLoading, roads.load_roads, roads.roads_flow),
        "areas": (("areas", "load"), AreaLoading, areas.load_areas, areas.areas_flow),
        "points": (("points", "densify"), PointsOptions, points.densify, points.points_flow),
        "collect": (("collect",), CollectOptions, collect.collect, collect.collect_flow),
        "clean": (("images", "clean"), CleanOptions, clean.clean_images, clean.clean_flow),
        "segment": (("segment",), SegmentOptions, segment.segment, segment.segment_flow),
        "predict": (
            ("detect", "predict"),
            PredictOptions,
            detect_predict.predict,
            detect_predict.predict_flow,
        ),
        "explain": (("explain",), ExplainOptions, explain.explain, explain.explain_flow),
        "stats": (("stats", "refresh"), StatsOptions, stats.refresh_stats, stats.stats_flow),
    }


def command(*path: str):
    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]
    return group


def options_of(cmd) -> dict:
    return {p.name: p for p in cmd.params if p.name != "help"}


def flow_fields(schema: dict, prop: dict) -> set[str]:
    """The fields of the options model a pipeline-flow parameter refers to."""
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    refs = [a["$ref"] for a in prop.get("anyOf", [prop]) if "$ref" in a]
    return set(definitions[refs[0].rsplit("/", 1)[-1]]["properties"])


def problems(stage: str, cmd_options: dict, model: type[BaseModel], function, stage_flow) -> list[str]:
    """What keeps an option of `stage` from reaching every entry point (empty: nothing)."""
    from streetaudit.flows.pipeline import pipeline_flow

    found = []
    fields = set(model.model_fields)
    options = set(cmd_options) - CLI_ONLY
    found += [
        f"{stage}: command option {o} is no field of {model.__name__}" for o in sorted(options - fields)
    ]
    found += [f"{stage}: {model.__name__}.{f} is no command option" for f in sorted(fields - options)]
    # The function takes every field as a keyword, with the model's default.
    signature = inspect.signature(function).parameters
    keywords = set(signature) - {"url"} - CLI_ONLY - INJECTED
    found += [f"{stage}: {function.__name__}() lacks {f}" for f in sorted(options - keywords)]
    found += [f"{stage}: {function.__name__}({k}) is not an option" for k in sorted(keywords - fields)]
    for name in sorted(fields & keywords):
        default = signature[name].default
        if default is inspect.Parameter.empty:  # required by the function (a file, a provider)
            continue
        if model.model_validate({name: default}).model_dump()[name] != model().model_dump()[name]:
            found.append(f"{stage}: {function.__name__}({name}={default!r}) differs from the model's default")
    # The stage's own flow is made from the function and takes every option.
    if stage_flow.fn is not function:
        found.append(f"{stage}: its flow is not made from {function.__name__}()")
    flow_props = set(parameter_schema(stage_flow).model_dump_for_openapi()["properties"])
    found += [f"{stage}: flow {stage_flow.name} lacks {o}" for o in sorted(options - flow_props)]
    # `run pipeline` has each option under the stage's prefix, with the same kind of value and default.
    pipeline_cmd = options_of(command("run", "pipeline"))
    prefix = PREFIXES[stage]
    for name in sorted(options):
        mirrored = pipeline_cmd.get(prefix.replace("-", "_") + name)
        if mirrored is None:
            found.append(f"{stage}: run pipeline lacks --{prefix}{name.replace('_', '-')}")
            continue
        param = cmd_options[name]
        if mirrored.type_descriptor.annotation is not param.type_descriptor.annotation:
            found.append(f"{stage}: run pipeline's {name} takes another kind of value")
        if getattr(mirrored, "is_flag", False) != getattr(param, "is_flag", False):
            found.append(f"{stage}: run pipeline's {name} is a flag in one place only")
        if mirrored.default != param.default and param.required is False and name != "path":
            found.append(f"{stage}: run pipeline's {name} has another default")
    # …and the pipeline flow's parameter for the stage (what deployments are validated against).
    schema = parameter_schema(pipeline_flow).model_dump_for_openapi()
    prop = schema["properties"].get(stage)
    if prop is None:
        found.append(f"{stage}: the pipeline flow has no parameter {stage}")
    else:
        found += [
            f"{stage}: pipeline flow's {stage} lacks {o}" for o in sorted(options - flow_fields(schema, prop))
        ]
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_of_a_stage_reaches_its_function_its_flow_and_the_pipeline(stage) -> None:
    path, model, function, stage_flow = stages()[stage]
    assert problems(stage, options_of(command(*path)), model, function, stage_flow) == []


def test_the_walk_fails_on_an_option_one_entry_point_lacks() -> None:
    import click

    path, model, function, stage_flow = stages()["collect"]
    options = options_of(command(*path))
    extra = click.Option(["--sharpen"], is_flag=True)
    found = problems("collect", {**options, "sharpen": extra}, model, function, stage_flow)
    assert "collect: collect() lacks sharpen" in found
    assert "collect: run pipeline lacks --collect-sharpen" in found
    assert "collect: flow collect lacks sharpen" in found
    assert "collect: pipeline flow's collect lacks sharpen" in found


def test_the_pipeline_has_every_stage_and_only_one_run_command_per_flow() -> None:
    from streetaudit.flows.pipeline import RUNNERS, pipeline_flow

    assert tuple(RUNNERS) == STAGES
    assert set(STAGES) <= set(inspect.signature(pipeline_flow.fn).parameters)
    # The per-stage `run X` copies are gone: stages run through `run pipeline --stages X`.
    assert set(command("run").commands) == {"pipeline", "ratings"}


def test_run_pipeline_takes_the_options_people_used_before() -> None:
    flags = {opt for p in command("run", "pipeline").params for opt in p.opts}
    assert {
        "--roads",
        "--areas",
        "--kinds",
        "--interval",
        "--provider",
        "--model",
        "--backend",
        "--device",
    } <= flags
    assert {"--collect-limit", "--segment-limit", "--stats-model", "--road-name-field"} <= flags


def test_detect_train_takes_one_options_model_with_the_function_s_defaults() -> None:
    """`detect train` is no pipeline stage, but its options are one list too."""
    from streetaudit.flows.detect_train import train, train_flow
    from streetaudit.flows.stage_options import TrainOptions

    fields = set(TrainOptions.model_fields)
    assert set(options_of(command("detect", "train"))) - CLI_ONLY == fields
    signature = inspect.signature(train).parameters
    assert set(signature) - {"url", "on_epoch"} - CLI_ONLY == fields
    for name in fields - {"name", "dataset"}:
        assert signature[name].default == TrainOptions.model_fields[name].default, name
    assert train_flow.fn is train
