"""Benchmark: rating choices under 30 concurrent raters, and how fast rankings converge.

Run: `python bench/ratings.py` (a throwaway cluster unless --url is given). In one run, on
the same server:

- ours: each of --raters threads (own connection, acting as streetaudit_rater) loops
  rating_api.next_pair + rating_api.submit_choice for --seconds on a pool of --pool
  seeded images (adaptive strategy, 5 % repeated pairs); latency is next + submit;
- bare: the same threads loop a bare `SELECT 1` + `INSERT` of one row (two round trips,
  like ours) for --seconds;

printing p50/p95 latency, choices/s and ours/bare, and the same pair of loops for one
rater alone (the work's own cost, free of waits on the others). Then the simulation:
simulated raters answer from known latent scores with Bradley–Terry noise, and Kendall τ
between the true and the estimated (Bradley–Terry) ranking is tabled against comparisons per image 2…12 for
random and adaptive pairs, at latent spreads of 1 and 2.5 logits, averaged over --seeds, with
adaptive's gain and its standard error (paired by seed).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg

from streetaudit.flows.ratings import set_campaign
from streetaudit.flows.simulated_ratings import add_simulated_raters, seed_rating_images, tau_curve
from streetaudit.sql.connect import scratch_database

PER_IMAGE = list(range(2, 13))


def drive(
    url: str,
    workers: int,
    seconds: float,
    step: Callable[[psycopg.Connection, int, np.random.Generator], None],
):
    """`workers` threads call step() for `seconds`; returns (latencies in s, wall time)."""
    latencies: list[list[float]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        rng = np.random.default_rng(i)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET ROLE streetaudit_rater")
                barrier.wait()
                while not stop.is_set():
                    t = time.perf_counter()
                    step(conn, i, rng)
                    latencies[i].append(time.perf_counter() - t)
        except BaseException as error:
            errors.append(error)
            raise

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return np.array([x for lat in latencies for x in lat]), wall


def throughput(url: str, pool: int, workers: int, seconds: float) -> None:
    seed_rating_images(url, Path(tempfile.mkdtemp(prefix="sa-bench-img-")), pool)
    set_campaign(url, strategy="adaptive", repeat_share=0.05)
    raters = add_simulated_raters(url, workers, prefix="bench")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_bare (id bigserial PRIMARY KEY, x integer)")
        conn.execute("GRANT SELECT, INSERT ON public.bench_bare TO streetaudit_rater")
        conn.execute("GRANT USAGE ON SEQUENCE public.bench_bare_id_seq TO streetaudit_rater")

    def ours(conn: psycopg.Connection, i: int, rng: np.random.Generator) -> None:
        token = raters[i].token
        pair = conn.execute("SELECT rating_api.next_pair(%s)", (token,), prepare=True).fetchone()[0]
        choice = "left" if rng.random() < 0.5 else "right"
        conn.execute(
            "SELECT rating_api.submit_choice(%s, %s, %s, %s, %s)",
            (token, pair["left"], pair["right"], choice, None),
            prepare=True,
        )

    def bare(conn: psycopg.Connection, i: int, rng: np.random.Generator) -> None:
        conn.execute("SELECT 1", prepare=True).fetchone()
        conn.execute("INSERT INTO public.bench_bare (x) VALUES (%s)", (i,), prepare=True)

    results = {}
    for name, step in (("bare", bare), ("ours", ours)):
        latencies, wall = drive(url, workers, seconds, step)
        results[name] = (latencies, wall)
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM streetaudit.comparison").fetchone()[0]
    print(f"\n{workers} concurrent raters, pool of {pool} images, {seconds:g} s each (same server, same run)")
    print(f"{'':6s} {'p50 ms':>8s} {'p95 ms':>8s} {'per s':>9s}")
    for name, (lat, wall) in results.items():
        print(
            f"{name:6s} {np.percentile(lat, 50) * 1e3:8.2f} {np.percentile(lat, 95) * 1e3:8.2f} {len(lat) / wall:9.0f}"
        )
    ours_rate = len(results["ours"][0]) / results["ours"][1]
    bare_rate = len(results["bare"][0]) / results["bare"][1]
    print(
        f"ours/bare throughput: {ours_rate / bare_rate:.2f} (goal >= 0.5); "
        f"ours p95 {np.percentile(results['ours'][0], 95) * 1e3:.1f} ms (goal < 50 ms); "
        f"comparisons stored {stored} = choices made {len(results['ours'][0])}"
    )
    # One rater alone: the cost of the work itself, without waits on other raters' locks and
    # pages (on a machine with fewer cores than raters those waits dominate the figures above).
    alone = {name: drive(url, 1, min(seconds, 3.0), step) for name, step in (("bare", bare), ("ours", ours))}
    mean = {name: lat.mean() * 1e3 for name, (lat, _) in alone.items()}
    print(
        f"one rater alone: bare {mean['bare']:.2f} ms, ours {mean['ours']:.2f} ms per choice "
        f"(ratio {mean['bare'] / mean['ours']:.2f})"
    )


def simulation(url: str, pool: int, seeds: int) -> None:
    ids = seed_rating_images(
        url, Path(tempfile.mkdtemp(prefix="sa-bench-sim-")), pool, seed=99, area="Simulation core"
    )
    for spread in (1.0, 2.5):
        curves: dict[str, list] = {"random": [], "adaptive": []}
        for seed in range(seeds):
            for strategy in curves:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("TRUNCATE streetaudit.comparison, streetaudit.rating_offer")
                    conn.execute("UPDATE streetaudit.rating_image SET elo = 1500, n = 0")
                set_campaign(url, strategy=strategy, repeat_share=0.0, area="Simulation core")
                raters = add_simulated_raters(url, 5, prefix=f"sim-{spread}-{strategy}-{seed}")
                rng = np.random.default_rng(seed)
                latent = {i: float(v) for i, v in zip(ids, rng.normal(0, spread, len(ids)), strict=True)}
                curve = tau_curve(url, raters, latent, PER_IMAGE, rng)
                curves[strategy].append([curve[c] for c in PER_IMAGE])
        mean = {s: np.mean(v, axis=0) for s, v in curves.items()}  # [c, (bt, elo)]
        # Paired by seed (same latent scores): adaptive's BT gain and its standard error, so
        # that a lead or a loss can be told from the seeds' noise.
        gain = np.array(curves["adaptive"])[:, :, 0] - np.array(curves["random"])[:, :, 0]
        se = gain.std(axis=0, ddof=1) / np.sqrt(seeds) if seeds > 1 else np.full(len(PER_IMAGE), np.nan)
        print(
            f"\nKendall τ vs true ranking: {pool} images, 5 simulated raters, latent spread {spread:g} logits, "
            f"mean of {seeds} seeds"
        )
        print(
            f"{'per image':>9s} {'random BT':>10s} {'adaptive BT':>12s} {'gain ± se':>14s}"
            f" {'random ELO':>11s} {'adaptive ELO':>13s}"
        )
        for j, c in enumerate(PER_IMAGE):
            r, a = mean["random"][j], mean["adaptive"][j]
            lead = f"{gain[:, j].mean():+.3f} ± {se[j]:.3f}"
            print(f"{c:9d} {r[0]:10.3f} {a[0]:12.3f} {lead:>14s} {r[1]:11.3f} {a[1]:13.3f}")
        target = mean["random"][PER_IMAGE.index(10)][0]
        reached = next((c for j, c in enumerate(PER_IMAGE) if mean["adaptive"][j][0] >= target), None)
        print(
            f"random reaches τ {target:.3f} with 10 per image; adaptive reaches it with "
            f"{reached if reached is not None else '>12'} (goal <= 6)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Database to use (default: a throwaway cluster)")
    parser.add_argument("--raters", type=int, default=30)
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sim-pool", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    with scratch_database(args.url) as url:
        throughput(url, args.pool, args.raters, args.seconds)
        simulation(url, args.sim_pool, args.seeds)


if __name__ == "__main__":
    main()
