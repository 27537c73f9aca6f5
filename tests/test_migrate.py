"""Migrations and sources: fresh apply, re-runs, edited files, dependents, a database built by main, the reader role."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from pathlib import Path

import mapbox_vector_tile
import psycopg
import pytest

from streetaudit.sql.errors import MigrationError
from streetaudit.sql.migrate import MIGRATIONS_DIR, discover, discover_sources, migrate

MAIN_BEFORE_SOURCES = Path(__file__).parent / "sql_main_v1"  # main's sql/ at 9dc2e78, as it was


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    target.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, target / path.name)
    shutil.copytree(MIGRATIONS_DIR / "post", target / "post")
    return target


def every_name() -> list[str]:
    return [m.name for m in discover()] + [f"post/{s.name}" for s in discover_sources()]


def test_migrate_fresh_database_applies_every_file_in_order(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    names = [m.name for m in discover()]
    assert applied == every_name()
    assert names == sorted(names)
    with psycopg.connect(empty_db_url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_migration ORDER BY name")]
        assert recorded == names
        sources = [r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_source ORDER BY name")]
        assert sources == [s.name for s in discover_sources()]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'streetaudit'"
            )
        }
        assert {"road", "heritage_area", "sample_point"} <= tables
        geometry_types = dict(
            conn.execute(
                "SELECT f_table_name || '.' || f_geometry_column, type || ':' || srid FROM geometry_columns "
                "WHERE f_table_schema = 'streetaudit'"
            ).fetchall()
        )
        assert geometry_types["road.geom"] == "LINESTRING:4326"
        assert geometry_types["heritage_area.geom"] == "MULTIPOLYGON:4326"
        assert geometry_types["sample_point.geom"] == "POINT:4326"


def test_migrate_rerun_applies_nothing(empty_db_url: str) -> None:
    migrate(empty_db_url)
    assert migrate(empty_db_url) == []


def test_migration_files_are_idempotent_when_run_twice(empty_db_url: str) -> None:
    """Each numbered file must survive being run again (e.g. after a manual restore)."""
    migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        for migration in discover():
            conn.execute(migration.sql)
    migrate(empty_db_url)  # and the sources put back whatever a re-run dropped


def test_changed_applied_file_is_refused_and_nothing_applied(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it ran\n")
    (directory / "999_new_table.sql").write_text("CREATE TABLE streetaudit.should_not_exist (id int);")
    with pytest.raises(MigrationError, match=first.name):
        migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('streetaudit.should_not_exist')").fetchone()[0] is None
        names = [r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_migration")]
        assert "999_new_table.sql" not in names


def test_failing_migration_rolls_back_the_whole_migrate(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    (directory / "997_fine.sql").write_text("CREATE TABLE streetaudit.fine (id int);")
    (directory / "998_half.sql").write_text(
        "CREATE TABLE streetaudit.half_done (id int);\nSELECT no_such_function();"
    )
    with pytest.raises(MigrationError, match=r"998_half\.sql failed: function no_such_function"):
        migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('streetaudit.half_done')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('streetaudit.fine')").fetchone()[0] is None
        names = {r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_migration")}
        assert names == {m.name for m in discover()}


def test_duplicate_migration_numbers_are_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="001"):
        discover(directory)
    (directory / "post" / "030_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="030"):
        discover_sources(directory / "post")


# -- sources ------------------------------------------------------------------------------------
def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_edited_source_runs_again_with_the_sources_after_it(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    later = [f"post/{s.name}" for s in discover_sources(directory / "post") if s.name[:3] > "030"]
    edit(
        directory / "post" / "030_stats.sql",
        "'Version of the published statistics",
        "'Edited in place: version of the published statistics",
    )
    assert migrate(empty_db_url, directory) == ["post/030_stats.sql", *later]
    with psycopg.connect(empty_db_url) as conn:
        comment = conn.execute("SELECT obj_description('api.data_version'::regclass)").fetchone()[0]
        assert comment.startswith("Edited in place")
    edit(directory / "post" / "900_grants.sql", "-- Privileges on", "-- The privileges on")
    assert migrate(empty_db_url, directory) == ["post/900_grants.sql"]
    assert migrate(empty_db_url, directory) == []


def test_a_source_whose_object_went_missing_runs_again(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION streetaudit.points_along(geometry, double precision, integer)")
    assert migrate(fresh_db_url)[0] == "post/003_densify.sql"
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute(
            "SELECT to_regprocedure('streetaudit.points_along(geometry, float8, integer)')"
        ).fetchone()[0]


def test_a_changed_function_signature_leaves_no_old_overload(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    edit(
        directory / "post" / "003_densify.sql",
        "CREATE OR REPLACE FUNCTION streetaudit.utm_srid(g geometry)",
        "CREATE OR REPLACE FUNCTION streetaudit.utm_srid(g geometry, unused integer DEFAULT 0)",
    )
    edit(
        directory / "post" / "003_densify.sql",
        "streetaudit.utm_srid(geometry) IS",
        "streetaudit.utm_srid(geometry, integer) IS",
    )
    migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:
        overloads = conn.execute(
            "SELECT pg_get_function_identity_arguments(oid) FROM pg_proc WHERE proname = 'utm_srid'"
        ).fetchall()
    assert overloads == [("g geometry, unused integer",)]


def test_a_dependent_outside_the_sources_stops_the_migrate_by_name(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE VIEW api.analysts_own AS SELECT point_id FROM api.point_elements")
    edit(directory / "post" / "030_stats.sql", "-- Statistics:", "-- The statistics:")
    with pytest.raises(MigrationError, match=r"post/030_stats\.sql.*api\.analysts_own"):
        migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:  # nothing was dropped
        assert conn.execute("SELECT count(*) FROM api.analysts_own").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('api.road_stats')").fetchone()[0] is not None


def test_a_failing_source_keeps_the_previous_objects(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_db_url, directory)
    (directory / "post" / "031_tiles.sql").write_text(
        (directory / "post" / "031_tiles.sql").read_text() + "\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match=r"post/031_tiles\.sql failed"):
        migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT length(api.roads(0, 0, 0))").fetchone()[0] == 0
        assert (
            conn.execute("SELECT count(*) FROM api.tile_layers").fetchone()[0] == 6
        )  # roads, points, areas, ratings, streets, detections


def test_numbered_migrations_leave_source_objects_to_the_sources() -> None:
    """A migration that defines or grants on a function/view of sql/post/ breaks new databases
    (it runs before the sources) or is undone by them (they re-create it): it belongs there."""
    owners = {f"{schema}.{name}": s.name for s in discover_sources() for _, schema, name in s.objects}
    misplaced = []
    for migration in discover():
        for line in migration.sql.splitlines():
            code = line.split("--", 1)[0]
            if re.match(r"\s*DROP\b", code, re.IGNORECASE):
                continue  # dropping one before changing a column it reads is allowed
            misplaced += [
                f"{migration.name} uses {obj} (defined in sql/post/{owner})"
                for obj, owner in owners.items()
                if re.search(rf"\b{re.escape(obj)}\b", code)
            ]
    assert misplaced == []


# -- a database built by main before the split ------------------------------------------------------
def build_like_main(url: str) -> None:
    """Exactly what main's migrate did: each file once, recorded with its checksum."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA streetaudit; CREATE TABLE streetaudit.schema_migration (name text PRIMARY KEY, "
            "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for path in sorted(MAIN_BEFORE_SOURCES.glob("*.sql")):
            text = path.read_text()
            with conn.transaction():
                conn.execute(text)
                conn.execute(
                    "INSERT INTO streetaudit.schema_migration (name, checksum) VALUES (%s, %s)",
                    (path.name, hashlib.sha256(text.encode()).hexdigest()),
                )


def fill(url: str) -> int:
    """Three roads, a core area over the first, images, one model's segmentations, a stats refresh."""
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(3):
            conn.execute(
                "INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m) "
                "VALUES ('t', %s, %s, 'residential', ST_SetSRID(ST_MakeLine(ST_MakePoint(24.94, 60.17 + %s), "
                "ST_MakePoint(24.95, 60.17 + %s)), 4326), 1)",
                (str(i), f"Katu {i}", i * 0.002, i * 0.002),
            )
        conn.execute("UPDATE streetaudit.road SET length_m = ST_Length(geom::geography)")
        conn.execute(
            "INSERT INTO streetaudit.heritage_area (source, source_id, name, geom, area_m2) VALUES "
            "('t', 'core', 'Old town', ST_Multi(ST_MakeEnvelope(24.939, 60.169, 24.946, 60.171, 4326)), 1)"
        )
        conn.execute("SELECT * FROM streetaudit.densify_roads(30)")
        conn.execute(
            "INSERT INTO streetaudit.image (point_id, provider, heading, status, uri) "
            "SELECT p.id, 'local', h, CASE WHEN mod(p.id, 5) = 0 AND h = 90 THEN 'missing' ELSE 'ok' END, 'x' "
            "FROM streetaudit.sample_point AS p, (VALUES (0.0), (90.0)) AS v (h)"
        )
        model = conn.execute(
            "INSERT INTO streetaudit.model (task, name, backend, source, label_set, labels) "
            "VALUES ('segmentation', 'm', 'synthetic', 's', 'cityscapes', '{a,b}') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO streetaudit.segmentation (image_id, model_id, building, road, sky, greenery, sidewalk, car, "
            "histogram, pixels) SELECT id, %s, mod(id, 7) / 10.0, mod(id, 3) / 10.0, mod(id, 5) / 10.0, mod(id, 4) / 10.0, "
            "0.05, mod(id, 2) / 20.0, '{1,2}', 100 FROM streetaudit.image WHERE status = 'ok'",
            (model,),
        )
        conn.execute("SELECT streetaudit.refresh_stats(%s)", (model,))
        conn.execute(
            "INSERT INTO streetaudit.area_comparison_result (area_name, element, n_core, n_rest, model_id) "
            "VALUES ('all core areas', 'sky', 3, 40, %s)",
            (model,),
        )
    return model


SNAPSHOT = {
    "roads": "SELECT id, name, ST_AsText(geom) FROM streetaudit.road ORDER BY id",
    "points": "SELECT id, road_id, seq, ST_AsText(geom) FROM streetaudit.sample_point ORDER BY id",
    "images": "SELECT id, point_id, heading, status FROM streetaudit.image ORDER BY id",
    "segmentations": "SELECT image_id, model_id, sky FROM streetaudit.segmentation ORDER BY image_id",
    "point_elements": "SELECT point_id, road_id, n_images, building, sky, car FROM api.point_elements ORDER BY point_id",
    "road_stats": "SELECT road_id, n_points, sky_mean, sky_std FROM api.road_stats ORDER BY road_id",
    "area_stats": "SELECT area_id, n_points, sky_mean, sky_median FROM api.area_stats ORDER BY area_id",
    "comparison": "SELECT area_name, element, n_core, model_id FROM api.area_comparison",
    "model": "SELECT model_id, model_name FROM api.data_version",
    # main's layers (later migrations may add more, e.g. api.ratings)
    "tile_layers": "SELECT * FROM api.tile_layers WHERE id IN ('api.roads', 'api.points', 'api.areas') ORDER BY id",
}


# Main before the road/segmentation rename named the road side "segment".
OLD_NAMES = {"api.road_stats": "api.segment_stats", "api.roads": "api.segments"}


def old_named(text: str) -> str:
    for new, old in OLD_NAMES.items():
        text = text.replace(new, old)
    return text


def snapshot(url: str, old: bool = False) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        got = {key: conn.execute(old_named(q) if old else q).fetchall() for key, q in SNAPSHOT.items()}
    # tile layer ids compare under their new names
    got["tile_layers"] = [(OLD_TO_NEW.get(r[0], r[0]), *r[1:]) for r in got["tile_layers"]]
    return got


OLD_TO_NEW = {old: new for new, old in OLD_NAMES.items()}


def same_to_the_last_bits(got: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> bool:
    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-12)
        return a == b

    return got.keys() == expected.keys() and all(
        len(got[k]) == len(expected[k])
        and all(
            len(r) == len(e) and all(same(a, b) for a, b in zip(r, e, strict=True))
            for r, e in zip(got[k], expected[k], strict=True)
        )
        for k in got
    )


def features(url: str, layer: str, z: int, x: int, y: int, old: bool = False) -> dict[int, dict]:
    name = old_named(f"api.{layer}") if old else f"api.{layer}"
    with psycopg.connect(url) as conn:
        tile = bytes(conn.execute(f"SELECT {name}(%s, %s, %s)", (z, x, y)).fetchone()[0])
    return {f["id"]: f["properties"] for f in mapbox_vector_tile.decode(tile)[name]["features"]}


def test_a_database_built_by_main_migrates_without_losing_data(empty_db_url: str) -> None:
    url = empty_db_url
    build_like_main(url)
    model = fill(url)
    before = snapshot(url, old=True)
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version FROM api.data_version").fetchone()[0]
    # z14 holds every road and the area; z10 is pre-built for both.
    tiles = {("roads", 14, 9327, 4742), ("points", 14, 9327, 4742), ("areas", 14, 9327, 4742),
             ("roads", 10, 582, 296), ("areas", 10, 582, 296)}  # fmt: skip
    old_tiles = {t: features(url, *t, old=True) for t in tiles}
    assert all(old_tiles.values()) and len(before["points"]) > 50

    applied = migrate(url)

    after_main = [m.name for m in discover() if m.name >= "032"]
    assert applied == after_main + [f"post/{s.name}" for s in discover_sources()]
    # The same rows and values; a mean may differ in its last bit (the statistics now sum a
    # road's points in point id order, main in whatever order its plan read them).
    assert same_to_the_last_bits(snapshot(url), before)
    new_tiles = {t: features(url, *t) for t in tiles}
    # Same features and attributes; a std may differ in its last bit (points summed in another order).
    # Except low-zoom roads, generalised since (merged features): the same total length.
    generalised = old_tiles.pop(("roads", 10, 582, 296))
    merged = new_tiles[("roads", 10, 582, 296)].values()
    assert sum(p["length_m"] for p in merged) >= sum(p["length_m"] for p in generalised.values()) * (1 - 1e-9)
    for t, old in old_tiles.items():
        assert {i: set(p) for i, p in new_tiles[t].items()} == {i: set(p) for i, p in old.items()}
        for i, props in old.items():
            for key, value in props.items():
                got = new_tiles[t][i][key]
                assert got == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), key
    with psycopg.connect(url) as conn:
        recorded = dict(conn.execute("SELECT name, checksum FROM streetaudit.schema_migration").fetchall())
        assert recorded == {m.name: m.checksum for m in discover()}
        new_version, model_id = conn.execute("SELECT version, model_id FROM api.data_version").fetchone()
        assert model_id == model and new_version > version  # tiles were re-encoded: caches must drop them
        assert {r[0] for r in conn.execute("SELECT DISTINCT layer FROM streetaudit.prebuilt_tile")} == {
            "api.roads",
            "api.areas",
        }
        inside = conn.execute(
            """SELECT count(*) FILTER (WHERE in_core AND area_ids = ARRAY[a.id]),
                      count(*) FILTER (WHERE ST_Intersects(a.geom, pe.geom)), count(*) FILTER (WHERE NOT in_core)
               FROM api.point_elements AS pe, streetaudit.heritage_area AS a"""
        ).fetchone()
        assert inside[0] == inside[1] > 0 and inside[2] > 0
        leftovers = conn.execute(
            "SELECT to_regclass('streetaudit.tile_layer'), to_regclass('streetaudit.segment_overview'), "
            "to_regproc('streetaudit.segments_mvt')"
        ).fetchone()
        assert leftovers == (None, None, None)
        # the road side renamed: new names present, old ones gone
        old = [
            "api.segment_stats",
            "streetaudit.segment_tile",
            "streetaudit.point_tile",
            "streetaudit.area_tile",
        ]
        new = [
            "api.road_stats",
            "streetaudit.road_features",
            "streetaudit.point_features",
            "streetaudit.area_features",
        ]
        assert [conn.execute("SELECT to_regclass(%s)", (n,)).fetchone()[0] for n in old] == [None] * 4
        assert all(conn.execute("SELECT to_regclass(%s)", (n,)).fetchone()[0] is not None for n in new)
        assert conn.execute("SELECT to_regproc('api.segments')").fetchone()[0] is None
        assert conn.execute("SELECT to_regproc('api.roads')").fetchone()[0] is not None
        layers = {r[0] for r in conn.execute("SELECT id FROM api.tile_layers")}
        layers_now = {"api.roads", "api.points", "api.areas", "api.ratings", "api.streets", "api.detections"}
        assert layers == layers_now
    assert migrate(url) == []


# -- the reader role -------------------------------------------------------------------------------
def test_reader_role_reads_api_but_not_streetaudit(pg_cluster, fresh_db_url: str) -> None:
    database = fresh_db_url.rsplit("/", 1)[1]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO streetaudit.road (source, source_id, geom, length_m) "
            "VALUES ('t', '1', 'SRID=4326;LINESTRING(24.9 60.1, 24.91 60.1)', 555)"
        )
        conn.execute("CREATE OR REPLACE VIEW api.reader_probe AS SELECT count(*) AS n FROM streetaudit.road")
    with psycopg.connect(pg_cluster.reader_url(database), autocommit=True) as reader:
        assert reader.execute("SELECT n FROM api.reader_probe").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT count(*) FROM streetaudit.road")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("CREATE TABLE api.sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("CREATE TABLE public.sneaky (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT streetaudit.utm_srid('SRID=4326;POINT(0 0)'::geometry)")


def test_helper_functions_are_not_executable_by_public(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        public = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'streetaudit' AND has_function_privilege('public', p.oid, 'EXECUTE')"
        ).fetchall()
    assert public == []
