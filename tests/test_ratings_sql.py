"""The rating functions in SQL: tokens, the rater role's privileges, pairs, choices, undo, ELO.

ELO is checked against a re-implementation written here from the textbook formula (winner
and loser, not the product's left/right form), replaying the stored record in id order.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest

from streetaudit.flows.raters import add_rater, revoke_rater, token_hash
from streetaudit.flows.ratings import set_campaign
from streetaudit.flows.simulated_ratings import seed_rating_images


@pytest.fixture(scope="module")
def pool(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> list[int]:
    ids = seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 12, outside=3)
    set_campaign(db_url, repeat_share=0.0)
    return ids


def call(conn: psycopg.Connection, function: str, *args):
    placeholders = ", ".join(["%s"] * len(args))
    return conn.execute(f"SELECT rating_api.{function}({placeholders})", args).fetchone()[0]


def as_rater(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET ROLE streetaudit_rater")
    return conn


def textbook_elo(rows: list[tuple[int, int]], k: float = 32.0) -> dict[int, float]:
    rating: dict[int, float] = {}
    for winner, loser in rows:
        rw, rl = rating.get(winner, 1500.0), rating.get(loser, 1500.0)
        expected_w = 1.0 / (1.0 + 10.0 ** ((rl - rw) / 400.0))
        rating[winner] = rw + k * (1.0 - expected_w)
        rating[loser] = rl - k * (1.0 - expected_w)
    return rating


def decided_log(conn: psycopg.Connection) -> list[tuple[int, int]]:
    return conn.execute(
        """SELECT CASE WHEN choice = 'left' THEN left_image ELSE right_image END,
                  CASE WHEN choice = 'left' THEN right_image ELSE left_image END
           FROM streetaudit.comparison WHERE undone_at IS NULL AND choice <> 'skip' ORDER BY id"""
    ).fetchall()


def test_pool_is_the_images_inside_core_areas(db_url, pool):
    with psycopg.connect(db_url) as conn:
        in_pool = {r[0] for r in conn.execute("SELECT image_id FROM streetaudit.rating_pool")}
        total = conn.execute("SELECT count(*) FROM streetaudit.image").fetchone()[0]
    assert in_pool == set(pool) and total == len(pool) + 3


def test_stored_hash_is_sha256_of_the_token_and_session_names_the_rater(db_url, pool):
    rater = add_rater(db_url, "hash-check")
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT token_hash FROM streetaudit.rater WHERE name = 'hash-check'"
        ).fetchone()[0]
        tokens = conn.execute("SELECT count(*) FROM streetaudit.rater WHERE token_hash = %s", (rater.token,))
        assert tokens.fetchone()[0] == 0  # the token itself is nowhere
    assert stored == token_hash(rater.token) and len(stored) == 64
    assert rater.link.endswith(f"/rate#token={rater.token}")
    with as_rater(db_url) as conn:
        session = call(conn, "session", rater.token)
    assert session["rater"] == "hash-check" and session["campaign"]["pool"] == len(pool)


def test_unknown_and_revoked_tokens_are_refused_by_every_function(db_url, pool):
    rater = add_rater(db_url, "to-revoke")
    revoke_rater(db_url, "to-revoke")
    calls = [
        ("session", ()),
        ("next_pair", ()),
        ("submit_choice", (pool[0], pool[1], "left", None)),
        ("undo_last", ()),
        ("image_uri", (pool[0],)),
    ]
    with as_rater(db_url) as conn:
        for (function, args), (token, state) in itertools.product(
            calls, [("not-a-token", "SAU01"), (rater.token, "SAU03"), ("", "SAU01")]
        ):
            with pytest.raises(psycopg.Error) as error:
                call(conn, function, token, *args)
            assert error.value.sqlstate == state, (function, token)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM streetaudit.comparison",
        "SELECT * FROM streetaudit.rater",
        "SELECT * FROM streetaudit.rating_image",
        "SELECT * FROM streetaudit.image",
        "INSERT INTO streetaudit.comparison (rater_id, left_image, right_image, choice) VALUES (1, 1, 2, 'left')",
        "UPDATE streetaudit.rating_image SET elo = 9999",
        "SELECT * FROM api.area_stats",
        "SELECT streetaudit.rater_for('x')",
        "SELECT streetaudit.fill_rating_pool(NULL)",
        "SELECT streetaudit.pick_random_pair(1)",
        "CREATE TABLE rating_api.sneaky (x int)",
    ],
)
def test_the_rater_role_can_only_call_the_rating_functions(db_url, pool, statement):
    with as_rater(db_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_rater_login_role_works_with_its_own_password(pg_cluster, db_url, pool):
    rater = add_rater(db_url, "login-check")
    database = db_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_cluster.rater_url(database), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "streetaudit_rater"
        assert call(conn, "session", rater.token)["rater"] == "login-check"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM streetaudit.comparison")


def test_the_reader_cannot_call_the_rating_functions(db_url, pool):
    rater = add_rater(db_url, "reader-check")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET ROLE streetaudit_reader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            call(conn, "next_pair", rater.token)


@pytest.mark.parametrize("strategy", ["random", "adaptive"])
def test_a_rater_gets_every_pair_once_then_none(fresh_db_url, tmp_path: Path, strategy):
    ids = seed_rating_images(fresh_db_url, tmp_path, 8)
    set_campaign(fresh_db_url, strategy=strategy, repeat_share=0.0)
    rater = add_rater(fresh_db_url, "exhaustive")
    seen = []
    rng = np.random.default_rng(3)
    with as_rater(fresh_db_url) as conn:
        while True:
            pair = call(conn, "next_pair", rater.token)
            if pair["left"] is None:
                break
            seen.append(frozenset((pair["left"], pair["right"])))
            choice = ["left", "right", "skip"][int(rng.integers(3))]
            call(conn, "submit_choice", rater.token, pair["left"], pair["right"], choice, None)
            assert len(seen) <= 28
    assert len(seen) == len(set(seen)) == 28
    assert set().union(*seen) == set(ids)


def test_adaptive_pairs_come_in_rounds_that_pair_every_pool_image_once(fresh_db_url, tmp_path: Path):
    """Each run of pool/2 choices is one planned round (the queue of sql/061_pair_queue.sql),
    so every image is compared once per round. A new rater per round: a rater who judged a
    queued pair before leaves it to others, which would mix rounds."""
    ids = seed_rating_images(fresh_db_url, tmp_path, 10)
    set_campaign(fresh_db_url, strategy="adaptive", repeat_share=0.0)
    with as_rater(fresh_db_url) as conn:
        for round_ in range(4):
            rater = add_rater(fresh_db_url, f"round-{round_}")
            compared: list[int] = []
            for _ in range(len(ids) // 2):
                pair = call(conn, "next_pair", rater.token)
                compared += [pair["left"], pair["right"]]
                call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "left", None)
            assert sorted(compared) == sorted(ids), round_
    with psycopg.connect(fresh_db_url) as conn:
        assert {r[0] for r in conn.execute("SELECT n FROM streetaudit.rating_image")} == {4}
        assert conn.execute("SELECT max(round) FROM streetaudit.pair_queue").fetchone()[0] in (None, 4)


def test_setting_the_pool_empties_the_pair_queue(fresh_db_url, tmp_path: Path):
    seed_rating_images(fresh_db_url, tmp_path / "a", 8)
    other = seed_rating_images(fresh_db_url, tmp_path / "b", 6, seed=1, area="Other core")
    set_campaign(fresh_db_url, strategy="adaptive", repeat_share=0.0)
    rater = add_rater(fresh_db_url, "moved")
    with as_rater(fresh_db_url) as conn:
        call(conn, "next_pair", rater.token)
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.pair_queue").fetchone()[0] > 0
    set_campaign(fresh_db_url, area="Other core")
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM streetaudit.pair_queue").fetchone()[0] == 0
    with as_rater(fresh_db_url) as conn:
        for _ in range(6):
            pair = call(conn, "next_pair", rater.token)
            assert {pair["left"], pair["right"]} <= set(other)
            call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "right", None)


def test_choices_must_answer_an_offered_pair_with_a_valid_choice(db_url, pool):
    rater = add_rater(db_url, "strict")
    with as_rater(db_url) as conn:
        with pytest.raises(psycopg.Error) as error:
            call(conn, "submit_choice", rater.token, pool[0], pool[1], "left", None)
        assert error.value.sqlstate == "SAU09"
        pair = call(conn, "next_pair", rater.token)
        with pytest.raises(psycopg.Error) as error:
            call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "both", None)
        assert error.value.sqlstate == "SAU22"
        with pytest.raises(psycopg.Error) as error:  # sides swapped: not what was shown
            call(conn, "submit_choice", rater.token, pair["right"], pair["left"], "left", None)
        assert error.value.sqlstate == "SAU09"
        done = call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "left", '{"ua": "test"}')
        assert done["progress"]["done"] >= 1
        with pytest.raises(psycopg.Error) as error:  # answered already
            call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "left", None)
        assert error.value.sqlstate == "SAU09"


def test_undo_takes_back_the_elo_change_and_offers_the_pair_again(fresh_db_url, tmp_path):
    seed_rating_images(fresh_db_url, tmp_path, 6)
    set_campaign(fresh_db_url, repeat_share=0.0)
    rater = add_rater(fresh_db_url, "undoer")
    with as_rater(fresh_db_url) as conn:
        pair = call(conn, "next_pair", rater.token)
        call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "right", None)
        undone = call(conn, "undo_last", rater.token)
        assert (undone["left"], undone["right"]) == (pair["left"], pair["right"])
        assert undone["progress"]["done"] == 0
        call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "left", None)
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT choice, undone_at IS NOT NULL FROM streetaudit.comparison ORDER BY id"
        ).fetchall()
        elo = dict(conn.execute("SELECT image_id, elo FROM streetaudit.rating_image").fetchall())
    assert rows == [("right", True), ("left", False)]
    assert elo[pair["left"]] == pytest.approx(1516.0) and elo[pair["right"]] == pytest.approx(1484.0)


def test_the_record_is_append_only(db_url, pool):
    rater = add_rater(db_url, "append-only")
    with as_rater(db_url) as conn:
        pair = call(conn, "next_pair", rater.token)
        call(conn, "submit_choice", rater.token, pair["left"], pair["right"], "left", None)
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("UPDATE streetaudit.comparison SET choice = 'right'")
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("DELETE FROM streetaudit.comparison")


def test_thirty_concurrent_raters_lose_no_update(fresh_db_url, tmp_path):
    """A small pool, so nearly every choice competes for the same rows."""
    from streetaudit.flows.rating_scores import elo as product_elo

    ids = seed_rating_images(fresh_db_url, tmp_path, 10)
    set_campaign(fresh_db_url, repeat_share=0.2)
    raters = [add_rater(fresh_db_url, f"concurrent-{i}") for i in range(30)]
    rounds = 12
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(raters))

    def rate(token: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            with as_rater(fresh_db_url) as conn:
                barrier.wait()
                for _ in range(rounds):
                    pair = call(conn, "next_pair", token)
                    choice = "left" if rng.random() < 0.5 else "right"
                    call(conn, "submit_choice", token, pair["left"], pair["right"], choice, None)
        except BaseException as error:  # reported below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=rate, args=(r.token, i)) for i, r in enumerate(raters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    with psycopg.connect(fresh_db_url) as conn:
        log = decided_log(conn)
        online = dict(conn.execute("SELECT image_id, elo FROM streetaudit.rating_image").fetchall())
        n = dict(conn.execute("SELECT image_id, n FROM streetaudit.rating_image").fetchall())
    assert len(log) == len(raters) * rounds
    expected = textbook_elo(log)
    assert set(expected) <= set(ids)
    for image in ids:
        assert online[image] == pytest.approx(expected.get(image, 1500.0), abs=1e-9), image
        assert n[image] == sum(image in pair for pair in log)
    # The product's own replay agrees too (it is what `ratings recompute` uses).
    index = {image: i for i, image in enumerate(ids)}
    left = np.array([index[w] for w, _ in log])
    right = np.array([index[lo] for _, lo in log])
    replay = product_elo(len(ids), left, right, np.ones(len(log), dtype=bool))
    assert np.allclose(replay, [online[i] for i in ids], atol=1e-9)


def test_an_image_with_comparisons_cannot_be_deleted(db_url, pool):
    """Raters' work outlives re-densifying or re-collecting: the record keeps its images."""
    with psycopg.connect(db_url) as conn:
        rated = conn.execute("SELECT left_image FROM streetaudit.comparison LIMIT 1").fetchone()[0]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM streetaudit.image WHERE id = %s", (rated,))
