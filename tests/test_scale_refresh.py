"""Publishing statistics never blocks readers, and readers always see one whole version.

A reader thread (the API's login role) asks for the data version, the rest-of-city
statistics and two road tiles (one pre-built, one computed) in one statement, in a loop,
while `stats refresh` publishes another model and holds its transaction open for HOLD_S
(a slow comparison step). Each model gives every image the same building share, so the
content of every answer says which model it came from, independently of the version row.
"""

from __future__ import annotations

import functools
import threading
import time

import mapbox_vector_tile
import psycopg
import pytest

import streetaudit.flows.stats as stats_flow
from streetaudit.flows.stats import refresh_stats
from streetaudit.testing.grid_city import add_model, build, city_tiles

BUILDING = {"A": 0.2, "B": 0.7}
# The publishing transaction stays open this long after the views are refreshed; a refresh
# that locked readers out would make them wait at least this long.
HOLD_S = 2.0
# What a reader may wait at most: well under HOLD_S, far over an uncontended statement
# (a few ms) even on a loaded 2-core runner.
BOUND_S = 1.0

READ = """
SELECT d.model_id, s.building_mean, api.roads(%(z1)s, %(x1)s, %(y1)s), api.roads(%(z2)s, %(x2)s, %(y2)s)
FROM api.data_version AS d, api.area_stats AS s
WHERE s.area_id IS NULL
"""


@pytest.fixture(scope="module")
def city(db_url: str) -> dict:
    build(db_url, 9)
    with psycopg.connect(db_url) as conn:
        models = {name: add_model(conn, f"model {name}", building=value) for name, value in BUILDING.items()}
        conn.commit()
    refresh_stats(db_url, model=models["A"])
    prebuilt, computed = city_tiles(db_url, 12), city_tiles(db_url, 14)
    return {"models": models, "tiles": (prebuilt[len(prebuilt) // 2], computed[len(computed) // 2])}


@functools.cache
def building_means(tile: bytes) -> list[float]:
    features = mapbox_vector_tile.decode(tile)["api.roads"]["features"]
    return [f["properties"]["building_mean"] for f in features]


@pytest.mark.slow
def test_readers_never_wait_for_a_refresh_and_see_one_version(db_url, reader_db_url, city, monkeypatch):
    (z1, x1, y1), (z2, x2, y2) = city["tiles"]
    params = {"z1": z1, "x1": x1, "y1": y1, "z2": z2, "x2": x2, "y2": y2}
    model_name = {v: k for k, v in city["models"].items()}
    answers: list[tuple[float, float, int, float, bytes, bytes]] = []
    lock_waits: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(reader_db_url, autocommit=True) as conn:
            while not stop.is_set():
                start = time.perf_counter()
                row = conn.execute(READ, params).fetchone()
                done = time.perf_counter()
                answers.append((done - start, done, *row))

    def lock_monitor() -> None:
        # Lock waits of the reader, straight from the server: independent of CPU noise.
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.is_set():
                lock_waits.append(
                    conn.execute(
                        """SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
                           WHERE NOT l.granted AND a.usename = 'streetaudit_reader'"""
                    ).fetchone()[0]
                )
                time.sleep(0.02)

    slow_comparisons = stats_flow.comparisons

    def comparisons_then_hold(conn, **options):
        results = slow_comparisons(conn, **options)
        time.sleep(HOLD_S)
        return results

    monkeypatch.setattr(stats_flow, "comparisons", comparisons_then_hold)
    threads = [threading.Thread(target=reader), threading.Thread(target=lock_monitor)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        began = time.perf_counter()
        refresh_stats(db_url, model=city["models"]["B"])
        ended = time.perf_counter()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    seen = [model_name[model_id] for _, _, model_id, *_ in answers]
    assert seen[0] == "A" and seen[-1] == "B"
    assert seen == sorted(seen), "a reader went back to the old version"
    for _, _, model_id, rest_mean, prebuilt, computed in answers:
        expected = BUILDING[model_name[model_id]]
        assert rest_mean == pytest.approx(expected)
        for tile in (prebuilt, computed):
            means = building_means(bytes(tile))
            assert means and means == pytest.approx([expected] * len(means))
    assert lock_waits and max(lock_waits) == 0
    waits = [seconds for seconds, *_ in answers]
    assert max(waits) < BOUND_S, f"a reader waited {max(waits):.2f} s during the refresh"
    # The loop kept being answered all through the refresh, not just before and after it.
    during = [done for _, done, *_ in answers if began < done < ended]
    assert len(during) > 10 and max(during) > ended - BOUND_S
