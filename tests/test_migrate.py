"""Migrations: fresh apply, idempotent re-run, a changed file refused, the reader role's limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from streetaudit.sql.errors import MigrationError
from streetaudit.sql.migrate import MIGRATIONS_DIR, discover, migrate


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    target.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, target / path.name)
    return target


def test_migrate_fresh_database_applies_every_file_in_order(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    names = [m.name for m in discover()]
    assert applied == names
    assert names == sorted(names)
    with psycopg.connect(empty_db_url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_migration ORDER BY name")]
        assert recorded == names
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
    """Each file must survive being run again (e.g. after a manual restore)."""
    migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        for migration in discover():
            conn.execute(migration.sql)


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


def test_failing_migration_rolls_back_alone(empty_db_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "998_half.sql").write_text(
        "CREATE TABLE streetaudit.half_done (id int);\nSELECT no_such_function();"
    )
    with pytest.raises(MigrationError, match=r"998_half\.sql"):
        migrate(empty_db_url, directory)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('streetaudit.half_done')").fetchone()[0] is None
        names = {r[0] for r in conn.execute("SELECT name FROM streetaudit.schema_migration")}
        assert "998_half.sql" not in names
        assert {m.name for m in discover()} <= names


def test_duplicate_migration_numbers_are_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="001"):
        discover(directory)


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
