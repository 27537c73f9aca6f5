"""Simulated raters and a seeded image pool, for the demo, benchmarks and tests. Never real data.

A simulated rater answers from known latent scores with Bradley–Terry noise: the left
image wins with probability 1 / (1 + exp(-(θ_left - θ_right))). Their pairs come from the
real rating_api functions, so a simulation exercises the same pair selection and ELO
updates as the web page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image, ImageDraw

from streetaudit.flows.image_store import ImageStore
from streetaudit.flows.raters import add_rater
from streetaudit.sql.rows import scalar

# Around Helsinki's centre; a made-up road and core area, far from nothing in particular.
_ORIGIN = (24.95, 60.17)


def seed_rating_images(
    url: str, root: Path, n: int, *, outside: int = 0, seed: int = 0, area: str = "Seeded core"
) -> list[int]:
    """`n` ok images (small JPEGs under `root`) at points inside a square core area named `area`,
    plus `outside` images outside it; returns the ids of the images inside."""
    rng = np.random.default_rng(seed)
    store = ImageStore(str(root))
    x0, y0 = _ORIGIN
    y0 += 0.003 * (seed % 50)  # pools seeded differently do not overlap
    total = n + outside
    step = 0.0004
    with psycopg.connect(url) as conn:
        road = scalar(
            conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, name, kind, geom, length_m)
               VALUES ('seeded-ratings', %s, 'Seeded street', 'residential',
                       ST_SetSRID(ST_MakeLine(ST_MakePoint(%s, %s), ST_MakePoint(%s, %s)), 4326), %s)
               RETURNING id""",
                (f"road-{seed}-{total}", x0, y0, x0 + step * total, y0, 22.0 * total),
            )
        )
        conn.execute(
            """INSERT INTO streetaudit.heritage_area (source, source_id, name, kind, geom, area_m2)
               VALUES ('seeded-ratings', %s, %s, 'core',
                       ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, 4326)), 1)
               ON CONFLICT (source, source_id) DO NOTHING""",
            (f"core-{seed}-{area}", area, x0 - step / 2, y0 - 0.001, x0 + step * (n - 0.5), y0 + 0.001),
        )
        inside = []
        for seq in range(total):
            point = scalar(
                conn.execute(
                    """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                   VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id""",
                    (road, seq, 22.0 * seq, x0 + step * seq, y0),
                )
            )
            key = f"seeded/{point}_0.jpg"
            uri = store.put(key, _jpeg(rng, seq))
            image = scalar(
                conn.execute(
                    """INSERT INTO streetaudit.image (point_id, provider, heading, width, height, uri, status)
                   VALUES (%s, 'seeded', 0, 320, 200, %s, 'ok') RETURNING id""",
                    (point, uri),
                )
            )
            if seq < n:
                inside.append(image)
    return inside


def _jpeg(rng: np.random.Generator, seq: int) -> bytes:
    """A small picture that looks different for every image: sky, a row of facades, a street."""
    import io

    image = Image.new("RGB", (320, 200), tuple(int(v) for v in rng.integers(150, 230, 3)))
    draw = ImageDraw.Draw(image)
    x = 0
    while x < 320:
        width = int(rng.integers(30, 80))
        top = int(rng.integers(40, 110))
        draw.rectangle([x, top, x + width, 150], fill=tuple(int(v) for v in rng.integers(60, 200, 3)))
        for wy in range(top + 8, 140, 18):
            for wx in range(x + 6, x + width - 8, 14):
                draw.rectangle([wx, wy, wx + 6, wy + 9], fill=(40, 50, 70))
        x += width
    draw.rectangle([0, 150, 320, 200], fill=(90, 90, 95))
    draw.text((8, 178), f"seeded #{seq}", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


@dataclass
class SimulatedRater:
    name: str
    token: str


def add_simulated_raters(url: str, count: int, prefix: str = "simulated") -> list[SimulatedRater]:
    return [
        SimulatedRater(r.name, r.token) for r in (add_rater(url, f"{prefix}-{i + 1}") for i in range(count))
    ]


def answer(latent: dict[int, float], left: int, right: int, rng: np.random.Generator) -> str:
    p_left = 1.0 / (1.0 + math.exp(-(latent[left] - latent[right])))
    return "left" if rng.random() < p_left else "right"


def simulate_choices(
    conn: psycopg.Connection,
    raters: list[SimulatedRater],
    latent: dict[int, float],
    choices: int,
    rng: np.random.Generator,
) -> int:
    """`choices` rounds of next pair + choice, raters taking turns; returns the choices made."""
    made = 0
    for i in range(choices):
        token = raters[i % len(raters)].token
        pair = scalar(conn.execute("SELECT rating_api.next_pair(%s)", (token,)))
        if pair["left"] is None:
            continue
        choice = answer(latent, pair["left"], pair["right"], rng)
        conn.execute(
            "SELECT rating_api.submit_choice(%s, %s, %s, %s, %s)",
            (token, pair["left"], pair["right"], choice, '{"simulated": true}'),
        )
        made += 1
    return made


def tau_curve(
    url: str,
    raters: list[SimulatedRater],
    latent: dict[int, float],
    per_image: list[int],
    rng: np.random.Generator,
) -> dict[int, tuple[float, float]]:
    """Kendall τ between the true and the estimated ranking (Bradley–Terry, online ELO) after
    each number of comparisons per image in `per_image`, pairs chosen by the campaign's
    strategy through rating_api. Needs an empty record: run it on a scratch database."""
    from streetaudit.flows.rating_scores import bradley_terry, kendall_tau

    images = sorted(latent)
    index = {image: i for i, image in enumerate(images)}
    truth = np.array([latent[i] for i in images])
    curve: dict[int, tuple[float, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        if scalar(conn.execute("SELECT count(*) FROM streetaudit.comparison")):
            raise ValueError("tau_curve needs an empty comparison record (a scratch database)")
        # The pair functions draw with the server's random(): seed this session's.
        conn.execute("SELECT setseed(%s)", (float(rng.uniform(-1, 1)),))
        made = 0
        for c in sorted(per_image):
            wanted = c * len(images) // 2
            made += simulate_choices(conn, raters, latent, wanted - made, rng)
            rows = conn.execute(
                """SELECT CASE WHEN choice = 'left' THEN left_image ELSE right_image END,
                          CASE WHEN choice = 'left' THEN right_image ELSE left_image END
                   FROM streetaudit.comparison WHERE choice <> 'skip' AND undone_at IS NULL"""
            ).fetchall()
            winners = np.array([index[w] for w, _ in rows])
            losers = np.array([index[lo] for _, lo in rows])
            bt, _ = bradley_terry(len(images), winners, losers)
            elo: dict[int, float] = dict(
                conn.execute("SELECT image_id, elo FROM streetaudit.rating_image").fetchall()
            )
            curve[c] = (kendall_tau(bt, truth), kendall_tau(np.array([elo[i] for i in images]), truth))
    return curve
