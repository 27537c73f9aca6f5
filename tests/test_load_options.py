"""Loading options reach every entry point; reloads report changes and refuse to wipe attributes.

The GeoPackages are written here with geopandas/pyogrio, with plain `name`/`kind` fields (not
OSM's), as in the report where `run pipeline --roads FILE` set 720 names to NULL.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import typer
import yaml
from shapely.geometry import LineString, Polygon

from streetaudit.flows.areas import load_areas
from streetaudit.flows.errors import InputError
from streetaudit.flows.load_changes import Changes, wiped
from streetaudit.flows.load_options import AreaLoading, RoadLoading
from streetaudit.flows.roads import load_roads

ROOT = Path(__file__).resolve().parents[1]
N = 40


def grid_roads(n: int = N, *, shift: float = 0.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "name": [f"Katu {i}" for i in range(n)],
            "kind": ["residential" if i % 3 else "primary" for i in range(n)],
        },
        geometry=[
            LineString([(24.90 + i * 0.001, 60.16), (24.90 + i * 0.001 + shift, 60.17)]) for i in range(n)
        ],
        crs="EPSG:4326",
    )


def roads_gpkg(path: Path, frame: gpd.GeoDataFrame | None = None) -> Path:
    pyogrio.write_dataframe(frame if frame is not None else grid_roads(), path, driver="GPKG", layer="roads")
    return path


def attributes(url: str, source: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT source_id, name, kind, ST_AsText(geom) FROM streetaudit.road WHERE source = %s", (source,)
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def command(*path: str):
    from streetaudit.cli.main import app

    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]
    return group


def options_of(cmd) -> dict:
    return {p.name: p for p in cmd.params if p.name != "help"}


# -- one option list everywhere ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "loader", "cli_path", "prefix", "flow_param"),
    [
        (RoadLoading, load_roads, ("roads", "load"), "road_", "roads"),
        (AreaLoading, load_areas, ("areas", "load"), "area_", "areas"),
    ],
)
def test_every_load_option_is_accepted_by_run_pipeline_and_the_pipeline_flow(
    model, loader, cli_path, prefix, flow_param
) -> None:
    from prefect.utilities.callables import parameter_schema

    from streetaudit.flows.pipeline import pipeline_flow

    load_cmd = options_of(command(*cli_path))
    pipeline_cmd = options_of(command("run", "pipeline"))
    # The loader's own keywords, the CLI command's options and the model agree.
    keywords = set(inspect.signature(loader).parameters) - {"url"}
    assert keywords == set(load_cmd) == set(model.model_fields)
    # Each `roads load` option is a `run pipeline` option, with the same kind of value.
    for name, param in load_cmd.items():
        mirrored = pipeline_cmd[f"{prefix}{name}"]
        assert mirrored.type_descriptor.annotation is param.type_descriptor.annotation, name
        assert getattr(mirrored, "is_flag", False) == getattr(param, "is_flag", False), name
        if name != "path":  # the file is an argument of `roads load`, an option of the pipeline
            assert mirrored.default == param.default, name
    # …and a property of the flow's parameter (what deployments are validated against).
    schema = parameter_schema(pipeline_flow).model_dump_for_openapi()
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    prop = schema["properties"][flow_param]
    refs = [a["$ref"] for a in prop.get("anyOf", [prop]) if "$ref" in a]
    flow_fields = set(definitions[refs[0].rsplit("/", 1)[-1]]["properties"])
    assert set(load_cmd) <= flow_fields


def test_weekly_full_deployment_spells_out_every_load_option() -> None:
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    weekly = next(d for d in project["deployments"] if d["name"] == "weekly-full")
    assert set(weekly["parameters"]["roads"]) == set(RoadLoading.model_fields)
    assert set(weekly["parameters"]["areas"]) == set(AreaLoading.model_fields)
    RoadLoading.model_validate({**weekly["parameters"]["roads"], "path": "/data/roads.gpkg"})
    AreaLoading.model_validate({**weekly["parameters"]["areas"], "path": "/data/areas.gpkg"})
    with pytest.raises(ValueError, match="unfilled placeholder"):
        RoadLoading.model_validate(weekly["parameters"]["roads"])  # $STREETAUDIT_ROADS_FILE unset


# -- the reload guard ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "named_before", "after", "named_after", "refused"),
    [
        (720, 720, 720, 0, True),  # the reported wipe
        (1000, 720, 1000, 300, True),  # 72 % -> 30 %: below half the earlier share
        (1000, 700, 1000, 400, False),  # 70 % -> 40 %: more than half of it kept
        (1000, 400, 1000, 0, False),  # most roads had no name before
        (0, 0, 720, 0, False),  # a first load
    ],
)
def test_wipe_rule(before, named_before, after, named_after, refused) -> None:
    changes = Changes(
        before=before, named_before=named_before, kinded_before=0, after=after, named_after=named_after
    )
    assert bool(wiped(changes)) is refused


def test_reload_with_default_options_refuses_to_wipe_names_and_kinds(fresh_db_url, tmp_path) -> None:
    path = roads_gpkg(tmp_path / "roads.gpkg")
    first = load_roads(fresh_db_url, path, name_field="name", kind_field="kind")
    before = attributes(fresh_db_url, first.source)
    assert sum(1 for name, _, _ in before.values() if name) == N
    with pytest.raises(InputError) as caught:
        load_roads(fresh_db_url, path)  # the options forgotten, as the pipeline did
    message = str(caught.value)
    assert f"0 of {N} roads would have a name ({N} of {N} have one now)" in message
    assert "kind" in message and "--name-field" in message and "--force" in message
    assert "fields in the file: name, kind" in message
    assert attributes(fresh_db_url, first.source) == before  # nothing written
    forced = load_roads(fresh_db_url, path, force=True)
    assert forced.changes.names_changed == N and forced.changes.updated == N
    assert all(name is None for name, _, _ in attributes(fresh_db_url, first.source).values())


def test_load_report_counts_what_changed(fresh_db_url, tmp_path) -> None:
    path = tmp_path / "roads.gpkg"
    frame = grid_roads(5)
    roads_gpkg(path, frame)
    first = load_roads(fresh_db_url, path, name_field="name", kind_field="kind")
    assert (first.changes.new, first.changes.updated, first.changes.unchanged) == (5, 0, 0)

    changed = grid_roads(6)
    changed.loc[0, "name"] = "Uusi nimi"
    changed.loc[1, "geometry"] = LineString([(24.0, 60.0), (24.01, 60.01)])
    changed.loc[2, "kind"] = "service"
    roads_gpkg(path, changed)
    second = load_roads(fresh_db_url, path, name_field="name", kind_field="kind").changes
    assert (second.new, second.updated, second.unchanged, second.removed) == (1, 3, 2, 0)
    assert (second.names_changed, second.kinds_changed, second.geometries_changed) == (1, 1, 1)
    assert "1 new, 3 updated, 2 unchanged, 0 removed roads" in second.text()

    roads_gpkg(path, changed.iloc[:4])
    third = load_roads(fresh_db_url, path, name_field="name", kind_field="kind").changes
    assert (third.new, third.updated, third.unchanged, third.removed) == (0, 0, 4, 2)
    assert len(attributes(fresh_db_url, first.source)) == 4


# -- the pipeline, through the CLI --------------------------------------------------------------------
def test_run_pipeline_keeps_names_and_kinds_of_a_geopackage(cli, db_url, tmp_path, prefect_harness) -> None:
    path = roads_gpkg(tmp_path / "city.gpkg")
    loaded = cli("roads", "load", path, "--name-field", "name", "--kind-field", "kind")
    assert loaded.exit_code == 0, loaded.output
    assert f"{N} new, 0 updated" in loaded.output
    source = str(path.resolve())
    before = attributes(db_url, source)

    refused = cli("run", "pipeline", "--roads", path, "--stages", "roads")
    assert refused.exit_code == 2, refused.output
    assert "would wipe road attributes" in refused.output and "--road-name-field" in refused.output
    assert attributes(db_url, source) == before

    kept = cli(
        "run", "pipeline", "--roads", path, "--road-name-field", "name", "--road-kind-field", "kind",
        "--road-kinds", "primary,residential", "--road-layer", "roads", "--stages", "roads",
    )  # fmt: skip
    assert kept.exit_code == 0, kept.output
    # --road-layer names the layer, so the source is "<path>#roads": a new source, loaded whole.
    assert attributes(db_url, f"{source}#roads") == before

    again = cli(
        "run", "pipeline", "--roads", path, "--road-name-field", "name", "--road-kind-field", "kind",
        "--stages", "roads",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert attributes(db_url, source) == before

    forced = cli("run", "pipeline", "--roads", path, "--road-force", "--stages", "roads")
    assert forced.exit_code == 0, forced.output
    assert {attrs[:2] for attrs in attributes(db_url, source).values()} == {(None, None)}


def test_run_pipeline_loads_areas_without_roads(cli, db_url, tmp_path, prefect_harness) -> None:
    square = Polygon([(24.94, 60.16), (24.95, 60.16), (24.95, 60.17), (24.94, 60.17)])
    areas = gpd.GeoDataFrame(
        {"nimi": ["Kruununhaka", "Kaartinkaupunki"], "luokka": ["core", "buffer"]},
        geometry=[square, square.buffer(0.01)],
        crs="EPSG:4326",
    )
    path = tmp_path / "areas.gpkg"
    pyogrio.write_dataframe(areas, path, driver="GPKG")
    result = cli(
        "run", "pipeline", "--areas", path, "--area-name-field", "nimi", "--area-kind-field", "luokka",
        "--area-source", "pipeline-areas", "--stages", "roads,areas",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "roads: no file given" in result.output and "heritage areas: 2" in result.output
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT name, kind FROM streetaudit.heritage_area WHERE source = 'pipeline-areas' ORDER BY name"
        ).fetchall()
    assert rows == [("Kaartinkaupunki", "buffer"), ("Kruununhaka", "core")]


def test_run_pipeline_refuses_an_areas_file_its_stages_would_not_load(cli, tmp_path, prefect_harness) -> None:
    result = cli("run", "pipeline", "--areas", tmp_path / "areas.gpkg", "--stages", "roads,points")
    assert (
        result.exit_code == 2
        and "--areas is loaded by the areas stage; add areas to --stages" in result.output
    )


def test_run_pipeline_refuses_load_options_without_their_file(cli, prefect_harness) -> None:
    result = cli("run", "pipeline", "--road-name-field", "name", "--stages", "roads")
    assert result.exit_code == 2 and "--road-name-field only apply with --roads FILE" in result.output


def test_run_pipeline_checks_the_interval_before_loading_roads(cli, db, tmp_path, prefect_harness) -> None:
    path = tmp_path / "roads.geojson"
    gpd.GeoDataFrame(
        {"name": ["A"]}, geometry=[LineString([(24.9, 60.1), (24.91, 60.1)])], crs="EPSG:4326"
    ).to_file(path)
    before = db.execute("SELECT count(*) FROM streetaudit.road").fetchone()[0]
    result = cli("run", "pipeline", "--roads", path, "--interval", "0.001", "--stages", "roads,points")
    assert result.exit_code == 2 and "--interval" in result.output
    assert db.execute("SELECT count(*) FROM streetaudit.road").fetchone()[0] == before


# -- NUL bytes -----------------------------------------------------------------------------------------
def test_nul_byte_in_geojson_name_is_removed_with_a_warning_naming_row_and_field(
    fresh_db_url, tmp_path
) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"name": name, "kind": "residential"},
            "geometry": {
                "type": "LineString",
                "coordinates": [[24.9, 60.1 + i / 100], [24.91, 60.1 + i / 100]],
            },
        }
        for i, name in enumerate(["Plain", "Ab\u0000cd", "Also plain"])
    ]
    path = tmp_path / "nul.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    report = load_roads(fresh_db_url, path, name_field="name", kind_field="kind")
    assert [row for row, _ in report.warnings] == [2]
    assert "field 'name'" in report.warnings[0][1] and "NUL" in report.warnings[0][1]
    names = {v[0] for v in attributes(fresh_db_url, report.source).values()}
    assert names == {"Plain", "Abcd", "Also plain"}  # not cut to "Ab"


def test_nul_byte_in_geopackage_kind_is_reported_by_the_cli(cli, db_url, tmp_path) -> None:
    path = tmp_path / "nul.gpkg"
    pyogrio.write_dataframe(
        grid_roads(3), path, driver="GPKG", layer="roads", layer_options={"SPATIAL_INDEX": "NO"}
    )
    with sqlite3.connect(path) as conn:  # GDAL cannot write a NUL; put it in the file directly
        conn.execute("UPDATE roads SET kind = CAST(x'7072690000006d617279' AS TEXT) WHERE fid = 3")
    conn.close()
    result = cli(
        "roads", "load", path, "--name-field", "name", "--kind-field", "kind", "--source", "nul-gpkg"
    )
    assert result.exit_code == 0, result.output
    assert "row 3: field 'kind': NUL byte removed" in result.output
    kinds = {v[1] for v in attributes(db_url, "nul-gpkg").values()}
    assert kinds == {"primary", "residential"}


def test_the_roads_flow_and_the_pipeline_flow_take_the_same_options(
    db_url, tmp_path, prefect_harness
) -> None:
    from streetaudit.flows.pipeline import pipeline_flow
    from streetaudit.flows.roads import roads_flow

    path = roads_gpkg(tmp_path / "flow.gpkg")
    result = roads_flow(db_url, path, name_field="name", kind_field="kind", source="run-roads")
    assert result.loaded == N
    named = attributes(db_url, "run-roads")
    assert len(named) == N and all(name and kind for name, kind, _ in named.values())
    # A deployment passes plain JSON; the flow validates it into the same options model.
    lines = pipeline_flow(
        url=db_url,
        roads={"path": str(path), "name_field": "name", "kind_field": "kind", "source": "run-roads"},
        stages=["roads"],
    )
    assert f"0 new, 0 updated, {N} unchanged, 0 removed roads" in lines[0]
    with pytest.raises(InputError, match="would wipe road attributes"):
        pipeline_flow(url=db_url, roads={"path": str(path), "source": "run-roads"}, stages=["roads"])
    assert attributes(db_url, "run-roads") == named
