"""`streetaudit raters …`, `ratings campaign|recompute|status|top` and `run ratings`, in-process."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import psycopg
import pytest

from streetaudit.flows import rating_scores as scores
from streetaudit.flows.ratings import read_log
from streetaudit.flows.simulated_ratings import SimulatedRater, seed_rating_images, simulate_choices

TOKEN = re.compile(r"/rate#token=([A-Za-z0-9_-]{40,})")


@pytest.fixture(scope="module")
def pool(db_url: str, tmp_path_factory) -> list[int]:
    return seed_rating_images(db_url, tmp_path_factory.mktemp("images"), 16, outside=4)


def test_raters_add_prints_a_link_once_list_and_revoke(cli, pool):
    added = cli("raters", "add", "Alice", "--base-url", "http://rate.example:8000")
    assert added.exit_code == 0, added.output
    assert "http://rate.example:8000/rate#token=" in added.output and TOKEN.search(added.output)
    twice = cli("raters", "add", "Alice")
    assert twice.exit_code == 2 and "exists already" in twice.output
    listed = cli("raters", "list")
    assert "Alice" in listed.output and "active" in listed.output
    assert TOKEN.search(listed.output) is None  # the token is never shown again
    assert cli("raters", "revoke", "Alice").exit_code == 0
    assert "revoked" in cli("raters", "list").output
    unknown = cli("raters", "revoke", "Nobody")
    assert unknown.exit_code == 2 and "no rater named 'Nobody'" in unknown.output
    empty = cli("raters", "add", "   ")
    assert empty.exit_code == 2 and "1 to 100 characters" in empty.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "clever"], "--strategy must be one of adaptive, random"),
        (["--target", "0"], "--target must be a positive"),
        (["--k", "-1"], "--k must be a positive"),
        (["--repeat-share", "2"], "--repeat-share must be between 0 and 1"),
        (["--where-area", "Atlantis"], "no heritage area named 'Atlantis'; areas: Seeded core"),
    ],
)
def test_campaign_rejects_bad_settings_and_changes_nothing(cli, db_url, pool, args, message):
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT * FROM streetaudit.rating_campaign").fetchone()
    result = cli("ratings", "campaign", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT * FROM streetaudit.rating_campaign").fetchone() == before


def test_campaign_recompute_status_and_top(cli, db_url, pool, tmp_path: Path):
    result = cli(
        "ratings",
        "campaign",
        "--strategy",
        "random",
        "--where-area",
        "Seeded core",
        "--target",
        "40",
        "--k",
        "24",
    )
    assert result.exit_code == 0, result.output
    assert (
        "random pairs from 16 images in Seeded core; target 40 comparisons per rater; K 24" in result.output
    )
    raters = []
    for name in ("Bea", "Cem"):
        token = TOKEN.search(cli("raters", "add", name).output).group(1)
        raters.append(SimulatedRater(name, token))
    rng = np.random.default_rng(5)
    latent = {image: float(i) / 4 for i, image in enumerate(pool)}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.5)")  # the pair functions draw with this session's random()
        assert simulate_choices(conn, raters, latent, 80, rng) == 80
    recomputed = cli("ratings", "recompute")
    assert (
        recomputed.exit_code == 0
        and "from 80 comparisons of 16 images by 2 raters (K 24)" in recomputed.output
    )
    with psycopg.connect(db_url) as conn:
        log = read_log(conn)
        stored = dict(
            conn.execute(
                "SELECT image_id, score FROM streetaudit.rating WHERE method = 'elo' AND rater_id IS NULL"
            ).fetchall()
        )
        bt = dict(
            conn.execute(
                "SELECT image_id, score FROM streetaudit.rating WHERE method = 'bt' AND rater_id IS NULL"
            ).fetchall()
        )
        per_rater = conn.execute(
            "SELECT count(DISTINCT rater_id) FROM streetaudit.rating WHERE rater_id IS NOT NULL"
        ).fetchone()[0]
    expected = scores.elo(len(log.images), log.left, log.right, log.left_won, k=24)
    assert [stored[i] for i in log.images.tolist()] == pytest.approx(expected.tolist())
    assert per_rater == 2
    # With true scores 0, 0.25, …, 3.75 logits, 80 random choices already rank the pool well:
    # τ 0.67 on average, below 0.43 in 0.5 % of draws (numpy replica, 400 draws; 0.5 failed
    # one CI run in twenty), against 0 ± 0.19 for a ranking that ignored the choices.
    assert scores.kendall_tau(np.array([bt[i] for i in pool]), np.arange(16)) > 0.4

    status = cli("ratings", "status", "--lag", "10")
    assert status.exit_code == 0, status.output
    for text in ("80 decided", "Bea 40", "Cem 40", "split-half reliability", "10 choices ago", "stable when"):
        assert text in status.output, text
    assert cli("ratings", "status", "--lag", "0").exit_code == 2

    out = tmp_path / "top"
    top = cli("ratings", "top", "--n", "5", "--per-rater", "--method", "bt", "--out", out)
    assert top.exit_code == 0, top.output
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["rater"] for r in manifest] == ["Bea"] * 5 + ["Cem"] * 5
    assert all((out / r["file"]).read_bytes()[:2] == b"\xff\xd8" for r in manifest)
    assert {r["file"].split("/")[0] for r in manifest} == {"Bea", "Cem"}
    union = len({r["image_id"] for r in manifest})
    assert f"{union} distinct images" in top.output
    with psycopg.connect(db_url) as conn:
        bea_best = conn.execute(
            """SELECT r.image_id FROM streetaudit.rating AS r JOIN streetaudit.rater AS p ON p.id = r.rater_id
               WHERE p.name = 'Bea' AND r.method = 'bt' ORDER BY r.score DESC, r.image_id LIMIT 5"""
        ).fetchall()
    assert [int(r["image_id"]) for r in manifest[:5]] == [b[0] for b in bea_best]
    again = cli("ratings", "top", "--out", out)
    assert again.exit_code == 2 and "not empty" in again.output
    bad = cli("ratings", "top", "--method", "glicko", "--out", tmp_path / "other")
    assert bad.exit_code == 2 and "--method must be one of elo, bt" in bad.output
    assert not (tmp_path / "other").exists()

    pooled = cli("ratings", "top", "--n", "3", "--out", tmp_path / "pooled")
    assert pooled.exit_code == 0 and "pooled: 3 images" in pooled.output


def test_ratings_flow_runs_under_prefect(prefect_harness, db_url, pool):
    from streetaudit.flows.ratings import ratings_flow

    result = ratings_flow(db_url)
    assert result["recompute"]["comparisons"] == result["status"]["comparisons"]
    assert result["status"]["rule"].startswith("stable when")


def test_demo_step_runs_a_clearly_simulated_campaign(db_url, pool):
    from rich.console import Console

    from streetaudit.flows.demo import step_ratings

    console = Console(record=True, width=200)
    step_ratings(db_url, console)
    text = console.export_text()
    assert "SIMULATED raters" in text and "top 1: image" in text and "split-half reliability" in text
