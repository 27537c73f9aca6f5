"""The API as a hostile client sees it: every reproduced attack and bad input, over real HTTP.

The module runs its own cluster (migrated from scratch, so database-level grants are the
real ones rather than a clone's, and so the last test may stop it) and a real uvicorn
server on 127.0.0.1 logged in as streetaudit_reader. Escalation is checked from the
owner's side: who the API's sessions are, the sequence, large objects, files on disk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from streetaudit.api.factory import create_app
from streetaudit.api.role_check import UnsafeRole, check_read_only
from streetaudit.api.settings import ApiSettings
from streetaudit.flows.stats import refresh_stats
from streetaudit.sql.cluster import LocalCluster, free_port
from streetaudit.sql.migrate import MIGRATIONS_DIR, migrate
from streetaudit.testing.http_server import serving
from streetaudit.testing.seeded_results import helsinki_with_synthetic

ITEMS = "/ogc/collections/api.road_stats/items"
# Text that would mean an internal message reached the client.
LEAKS = (
    "select ",
    " from ",
    "where ",
    "asyncpg",
    "psycopg",
    "traceback",
    "syntax error",
    "streetaudit.",
    "sqlstate",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    own = LocalCluster(tmp_path_factory.mktemp("secure-pg"), fast_unsafe=True)
    own.up()
    migrate(own.url())
    helsinki_with_synthetic(own.url(), seeds=(71,))
    refresh_stats(own.url())
    yield own
    own.destroy()


@pytest.fixture(scope="module")
def owner(cluster: LocalCluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def server(cluster: LocalCluster) -> Iterator[str]:
    app = create_app(cluster.reader_url(), ApiSettings(version_ttl=0, statement_timeout_ms=3000))
    with serving(app) as base:
        yield base


def get(base: str, path: str, params: dict | None = None, timeout: float = 10) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, timeout=timeout)


def assert_short_and_clean(response: httpx.Response) -> None:
    detail = response.json()["detail"]
    text = json.dumps(detail).lower()
    assert len(text) < 500, text
    assert not any(leak in text for leak in LEAKS), text


def api_sessions(owner: psycopg.Connection) -> list[tuple[str, str]]:
    return owner.execute(
        """SELECT usename, application_name FROM pg_stat_activity
           WHERE application_name IN ('streetaudit-api', 'streetaudit-ogc') AND datname = current_database()"""
    ).fetchall()


# -- the reproduced attacks ----------------------------------------------------------------------

ATTACKS = [
    "set_config('role','none',false)='x'",
    "current_user()='streetaudit'",
    "substr(pg_read_file('/etc/hostname'),1,2)='ab'",
    "nextval('streetaudit.road_id_seq')=0",
    "lo_from_bytea(0,'\\x41')=0",
    "road_id=1 AND pg_sleep(4) IS NULL",
    "casei(set_config('role','none',false))='x'",
    "road_id IN (1, pg_backend_pid())",
]


def test_filters_cannot_call_functions_or_undo_the_role(server, owner, tmp_path: Path):
    sequence_before = owner.execute("SELECT last_value, is_called FROM streetaudit.road_id_seq").fetchone()
    objects_before = owner.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]
    target = tmp_path / f"sa-pwn-{uuid.uuid4().hex}"
    export = f"lo_export(lo_from_bytea(0,'\\x41'),'{target}')=1"
    started = time.monotonic()
    # More requests than both pools hold connections, so every pooled connection was offered them.
    requests = (
        [a for a in ATTACKS for _ in range(3)] + ["set_config('role','none',false)='x'"] * 20 + [export]
    )
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda f: get(server, ITEMS, {"limit": 1, "filter": f}), requests))
    assert time.monotonic() - started < 20  # pg_sleep(4) x3 alone would take 12 s on one connection
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "not an allowed operator" in answer.json()["detail"]
        assert_short_and_clean(answer)
    as_json = {"op": "=", "args": [{"op": "set_config", "args": ["role", "none", False]}, "x"]}
    answer = get(server, ITEMS, {"filter": json.dumps(as_json), "filter-lang": "cql2-json"})
    assert answer.status_code == 400
    quoted = {"op": "=", "args": [{"property": 'road_id" OR 1=1 --'}, 1]}
    assert get(server, ITEMS, {"filter": json.dumps(quoted)}).status_code == 400
    # No escalation, no write, no file; the API still answers honest filters.
    assert (
        owner.execute("SELECT last_value, is_called FROM streetaudit.road_id_seq").fetchone()
        == sequence_before
    )
    assert owner.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0] == objects_before
    assert not target.exists()
    sessions = api_sessions(owner)
    assert sessions and {user for user, _ in sessions} == {"streetaudit_reader"}
    honest = get(server, ITEMS, {"filter": "n_points >= 1 AND road_id > 0", "limit": 2})
    assert honest.status_code == 200 and len(honest.json()["features"]) == 2


def test_standard_cql2_still_works(server):
    for cql in [
        "name LIKE 'A%' OR name IS NULL",
        "n_points BETWEEN 1 AND 50 AND NOT (road_id IN (1, 2))",
        "casei(kind) = 'residential' OR greenery_mean > 0.1",
        "S_INTERSECTS(geom, POLYGON((24.9 60.1, 25.0 60.1, 25.0 60.2, 24.9 60.1)))",
    ]:
        answer = get(server, ITEMS, {"filter": cql, "limit": 1})
        assert answer.status_code == 200, (cql, answer.text)


def test_reader_role_has_no_temp_no_large_objects_and_a_statement_timeout(cluster):
    with psycopg.connect(cluster.reader_url(), autocommit=True) as reader:
        assert reader.execute("SHOW statement_timeout").fetchone()[0] == "5s"
        for forbidden in [
            "CREATE TEMP TABLE sneaky (id int)",
            "SELECT lo_from_bytea(0, 'x')",
            "SELECT lo_create(0)",
            "SELECT pg_read_file('/etc/hostname')",
            "SELECT set_config('role', 'none', false)",
            "SELECT pg_sleep(0)",
            "SELECT pg_advisory_lock(1)",
            "SET ROLE streetaudit",
            "SELECT nextval('streetaudit.road_id_seq')",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(forbidden)
        # PostGIS and the tile functions stay callable.
        assert reader.execute("SELECT api.roads(0, 0, 0) IS NOT NULL").fetchone()[0]


def test_the_api_sets_its_own_statement_timeout(cluster):
    app = create_app(cluster.reader_url(), ApiSettings(ogc=False, statement_timeout_ms=1234))
    with TestClient(app) as client:

        async def probe() -> str:
            async with client.app.state.db.pool.connection() as conn:
                return (await (await conn.execute("SHOW statement_timeout")).fetchone())[0]

        assert client.portal.call(probe) == "1234ms"


# -- who may serve ------------------------------------------------------------------------------


def test_the_app_refuses_the_owner_and_any_role_that_can_write(cluster, owner):
    with (
        pytest.raises(UnsafeRole, match="superuser"),
        TestClient(create_app(cluster.url(), ApiSettings(ogc=False))),
    ):
        pass
    owner.execute("DROP ROLE IF EXISTS sa_writer")
    owner.execute("CREATE ROLE sa_writer LOGIN PASSWORD 'pw'")
    owner.execute("GRANT USAGE ON SCHEMA streetaudit TO sa_writer")
    owner.execute("GRANT INSERT ON streetaudit.road TO sa_writer")
    writer = cluster.state().url(user="sa_writer", password="pw")
    with pytest.raises(UnsafeRole, match=r"may write streetaudit\.road"):
        check_read_only(writer)
    check_read_only(cluster.reader_url())


def test_serve_refuses_an_owner_url_and_a_bad_port_before_listening(cluster, monkeypatch):
    from streetaudit.cli.main import app

    runner = CliRunner()
    monkeypatch.setenv("STREETAUDIT_API_DATABASE_URL", cluster.url())
    result = runner.invoke(app, ["serve", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "refusing to serve as database user 'streetaudit'" in result.output
    assert "streetaudit_reader" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "--port", "99999"])
    assert result.exit_code == 2 and "--port" in result.output and "65535" in result.output


def test_without_urls_the_api_uses_the_private_clusters_reader(cluster, monkeypatch):
    from streetaudit.api.database import api_database_url

    monkeypatch.delenv("STREETAUDIT_API_DATABASE_URL", raising=False)
    monkeypatch.delenv("STREETAUDIT_DATABASE_URL", raising=False)
    monkeypatch.setenv("STREETAUDIT_DATA_DIR", str(cluster.root))
    url = api_database_url(ApiSettings())
    assert url == cluster.reader_url() and url.startswith("postgresql://streetaudit_reader:")
    check_read_only(url)
    # An owner's STREETAUDIT_DATABASE_URL is used only to be refused.
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", cluster.url())
    with pytest.raises(UnsafeRole, match="superuser"):
        check_read_only(api_database_url(ApiSettings()))


def test_cors_is_off_by_default_and_an_allow_list_when_set(server):
    evil = httpx.get(f"{server}/index.json", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    preflight = httpx.options(
        f"{server}{ITEMS}",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert ApiSettings().cors_origin_list == []
    assert ApiSettings(cors_origins="https://a.example/, https://b.example").cors_origin_list == [
        "https://a.example",
        "https://b.example",
    ]


# -- bad input: 4xx with a short message, never 500 or SQL ------------------------------------------

BAD_INPUTS = [
    (ITEMS, {"bbox": "a,b,c,d"}),
    (ITEMS, {"bbox": "nan,0,1,1"}),
    (ITEMS, {"bbox": "inf,0,1,1"}),
    (ITEMS, {"bbox": "1,2,3"}),
    (ITEMS, {"bbox": "0,0,200,1"}),
    (ITEMS, {"offset": "99999999999999999999"}),
    (ITEMS, {"offset": "-1"}),
    (ITEMS, {"limit": "abc"}),
    (ITEMS, {"filter": "nosuch=1"}),
    (ITEMS, {"filter": "((((("}),
    (ITEMS, {"filter": "name = 1"}),
    (ITEMS, {"filter": "S_INTERSECTS(geom, BBOX(24.9, 60.1, 25.0, 60.2))"}),  # tipg: no SRID
    (ITEMS, {"filter": "road_id = 1e400"}),
    (ITEMS, {"filter": '{"op": "=", "args": [1'}),
    (ITEMS, {"filter-lang": "xml"}),
    (ITEMS, {"datetime": "garbage"}),
    (ITEMS, {"datetime": "2020-01-01T00:00:00Z/garbage"}),
    (ITEMS, {"road_id": "abc"}),
    (ITEMS, {"road_id": "99999999999999999999"}),
    (ITEMS, {"simplify": "nan"}),
    (ITEMS, {"sortby": "nosuch"}),
    (ITEMS, {"ids": "abc"}),
    (f"{ITEMS}/99999999999999999999", None),
    (f"{ITEMS}/abc", None),
    ("/ogc/collections/api.road_stats/tiles/WebMercatorQuad/-1/0/0", None),
    ("/ogc/collections/api.road_stats/tiles/WebMercatorQuad/1/5/0", None),
    ("/ogc/collections/api.road_stats/tiles/WebMercatorQuad/99/0/0", None),
    ("/ogc/collections/api.road_stats/tiles/NoSuchMatrix/0/0/0", None),
    ("/ogc/collections/api.road_stats/tiles/WebMercatorQuad/tilejson.json", {"minzoom": "-5"}),
    ("/ogc/collections/api.nosuch/items", None),
    ("/ogc/collections", {"bbox": "a,b,c,d"}),
    ("/ogc/collections", {"datetime": "garbage"}),
]


@pytest.mark.parametrize(("path", "params"), BAD_INPUTS, ids=[f"{p} {q}" for p, q in BAD_INPUTS])
def test_bad_ogc_input_is_a_short_4xx(server, path, params):
    answer = get(server, path, params)
    assert 400 <= answer.status_code < 500, answer.text
    assert_short_and_clean(answer)


def test_filters_that_would_hang_or_crash_the_parser_are_refused_quickly(server):
    """cql2's parser takes minutes on 24 unclosed brackets and crashes on 10,000."""
    for cql in ["(" * 24, "(" * 10_000, "(" * 7 + "a=1" + ")" * 7, "x" * 5000, "[" * 20_000]:
        started = time.monotonic()
        answer = httpx.get(f"{server}{ITEMS}", params={"filter": cql}, timeout=10)
        assert time.monotonic() - started < 5
        assert answer.status_code in (400, 414, 431), answer.status_code
    assert get(server, "/health").status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cql=st.text(
        alphabet=st.sampled_from(list("()'\" =<>,.-+*/ab_1%NOTANDORLIKEnameroad_idgeom")), max_size=40
    )
)
def test_random_filters_never_answer_5xx(server, cql):
    answer = httpx.get(f"{server}{ITEMS}", params={"filter": cql, "limit": 1}, timeout=10)
    assert answer.status_code < 500, (cql, answer.text)


# -- the property-based test of the whole HTTP API --------------------------------------------------


def _no_server_error(case, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=15)
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text[:300])


def check_every_operation(schema_url: str, base_url: str, max_examples: int) -> int:
    """Hypothesis over every operation of an OpenAPI schema (schemathesis' own pytest
    integration, `from_fixture`, does not run under pytest 9)."""
    schema = schemathesis.openapi.from_url(schema_url)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def no_server_error(case) -> None:
            _no_server_error(case, base_url)

        no_server_error()
    return operations


def test_own_openapi_finds_no_server_error(server):
    assert check_every_operation(f"{server}/openapi.json", server, max_examples=15) >= 8


def test_ogc_openapi_finds_no_server_error(server):
    assert check_every_operation(f"{server}/ogc/api", f"{server}/ogc", max_examples=10) >= 10


# -- tipg's catalog functions ------------------------------------------------------------------------


def test_the_tipg_catalog_migration_matches_the_installed_tipg():
    """An upgraded tipg with other catalog functions needs a new migration (and fails here)."""
    from tipg.database import DB_CATALOG_FILE

    migration = (MIGRATIONS_DIR / "041_tipg_catalog.sql").read_text()
    shipped = DB_CATALOG_FILE.read_text().replace("pg_temp", "tipg").strip()
    assert shipped in migration


# -- last: the database goes away ----------------------------------------------------------------------


def test_database_down_is_a_503_within_seconds_and_the_api_recovers(server, cluster, owner, monkeypatch):
    paths = ["/health", "/stats/areas", ITEMS, "/api.roads/0/0/0.pbf?properties=name", f"{ITEMS}/1"]
    assert all(get(server, p).status_code == 200 for p in paths[:3])
    owner.close()
    cluster.stop()
    try:
        for path in paths:
            started = time.monotonic()
            answer = get(server, path, timeout=30)
            assert answer.status_code == 503, (path, answer.text)
            assert time.monotonic() - started < 3, path
            assert_short_and_clean(answer)
    finally:
        # Same port again: the probe would see the old connections' TIME_WAIT (PostgreSQL
        # itself binds with SO_REUSEADDR) and move the cluster where the API cannot follow.
        monkeypatch.setattr("streetaudit.sql.cluster.port_in_use", lambda port: False)
        cluster.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(get(server, p).status_code == 200 for p in paths[:3]):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the API did not recover after the database came back")
