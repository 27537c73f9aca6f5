"""The lease functions (sql/post/050_work_leases.sql) on their own, two and three workers at once."""

from __future__ import annotations

import time

import psycopg


def claim(conn: psycopg.Connection, me: str, items: list[int], ttl: float = 60.0) -> set[int]:
    rows = conn.execute(
        "SELECT streetaudit.claim_work('segment', 'm1', %s, %s, %s)", (me, ttl, items)
    ).fetchall()
    return {r[0] for r in rows}


def wait(conn: psycopg.Connection, me: str) -> float | None:
    return conn.execute("SELECT streetaudit.others_lease_wait('segment', 'm1', %s)", (me,)).fetchone()[0]


def test_claims_expire_and_are_taken_over_and_released(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert claim(conn, "a", [1, 2, 3], ttl=0.5) == {1, 2, 3}
        assert claim(conn, "b", [2, 3, 4]) == {4}  # 2 and 3 are a's
        assert claim(conn, "a", [1, 2]) == {1, 2}  # a may claim its own again (renewal)
        assert wait(conn, "c") is not None and wait(conn, "nobody-else") is not None
        assert 0 < wait(conn, "b") <= 60.5
        time.sleep(0.6)  # a died: 3 has expired (1 and 2 were renewed for 60 s)
        assert wait(conn, "b") == 0  # an expired lease: look again now
        assert claim(conn, "b", [1, 2, 3]) == {3}
        assert wait(conn, "b") > 30  # then a's live ones
        assert conn.execute("SELECT streetaudit.release_work('a')").fetchone()[0] == 2
        assert conn.execute("SELECT streetaudit.release_work('b', ARRAY[3]::bigint[])").fetchone()[0] == 1
        owners = conn.execute("SELECT item, worker FROM streetaudit.work_lease ORDER BY item").fetchall()
        assert owners == [(4, "b")] and wait(conn, "b") is None


def test_an_expired_batch_being_taken_is_skipped_not_waited_for(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert claim(conn, "dead", [10, 11, 12], ttl=0.01) == {10, 11, 12}
    time.sleep(0.05)
    with psycopg.connect(fresh_db_url) as b, psycopg.connect(fresh_db_url, autocommit=True) as c:
        assert claim(b, "b", [10, 11]) == {10, 11}  # b's transaction holds their rows
        c.execute("SET lock_timeout = '2s'")  # a wait would fail the test instead of hanging it
        started = time.perf_counter()
        assert claim(c, "c", [10, 11, 12]) == {12}
        assert time.perf_counter() - started < 1.5
        b.commit()
        owners = dict(c.execute("SELECT item, worker FROM streetaudit.work_lease").fetchall())
        assert owners == {10: "b", 11: "b", 12: "c"}


def test_a_dead_workers_lease_on_a_done_item_is_dropped_not_waited_for_ever(fresh_db_url: str) -> None:
    # "dead" wrote item 20's rows and died before releasing it; 21 it had not done.
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert claim(conn, "dead", [20], ttl=0.01) == {20}
        time.sleep(0.05)
        (since,) = conn.execute("SELECT clock_timestamp()").fetchone()  # b looks: nothing to do
        assert claim(conn, "dead", [21], ttl=0.3) == {21}  # (expires after b looked)
        found = conn.execute("SELECT streetaudit.others_lease_wait('segment', 'm1', 'b', %s)", (since,))
        assert 0 < found.fetchone()[0] <= 0.3  # 21 may be undone: waited for; 20 is dropped
        assert conn.execute("SELECT array_agg(item) FROM streetaudit.work_lease").fetchone()[0] == [21]
        time.sleep(0.35)
        (since,) = conn.execute("SELECT clock_timestamp()").fetchone()
        found = conn.execute("SELECT streetaudit.others_lease_wait('segment', 'm1', 'b', %s)", (since,))
        assert found.fetchone()[0] is None  # once b's next look began after it expired: done
        assert conn.execute("SELECT count(*) FROM streetaudit.work_lease").fetchone()[0] == 0


def test_append_heavy_tables_vacuum_early(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        options = dict(
            conn.execute(
                """SELECT relname, reloptions FROM pg_class
                   WHERE relnamespace = 'streetaudit'::regnamespace AND relname IN ('image', 'segmentation')"""
            ).fetchall()
        )
    for table in ("image", "segmentation"):
        assert "autovacuum_vacuum_insert_scale_factor=0.02" in options[table], options
