"""The permutation test's draws, kept in the database between stats refreshes.

flows/street_inference.py draw_core_units is the random part of the street-level
permutation test: which units each permutation puts on the core side. It depends only on
which units are core, the number of permutations and the seed, and at a city's scale it
costs more than the rest of the comparison together (a shuffle of every unit per
permutation). A refresh whose changes left the units as they were (an incremental one,
typically) reads the same draws back instead, so its p-values are the ones a fresh draw
gives, bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import psycopg

from streetaudit.flows import street_inference


class KeptDraws:
    """A street_inference.Draw that reads the draws from streetaudit.permutation_draw, or
    draws and keeps them; `forget_others` then removes those this comparison did not use."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.used: list[str] = []

    def __call__(self, unit_core: np.ndarray, permutations: int, seed: int) -> np.ndarray:
        unit_core = np.asarray(unit_core, dtype=bool)
        key = _key(unit_core, permutations, seed)
        self.used.append(key)
        n_core = int(unit_core.sum())
        row = (
            self.conn.cursor(binary=True)
            .execute("SELECT core_units FROM streetaudit.permutation_draw WHERE key = %s", (key,))
            .fetchone()
        )
        if row is not None:
            return np.frombuffer(row[0], dtype=np.int32).reshape(permutations, n_core)
        drawn = street_inference.draw_core_units(unit_core, permutations, seed)
        self.conn.execute(
            """INSERT INTO streetaudit.permutation_draw (key, n_permutations, n_core, core_units)
               VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO NOTHING""",
            (key, permutations, n_core, drawn.astype(np.int32).tobytes()),
        )
        return drawn

    def forget_others(self) -> None:
        self.conn.execute("DELETE FROM streetaudit.permutation_draw WHERE NOT key = ANY (%s)", (self.used,))


def _key(unit_core: np.ndarray, permutations: int, seed: int) -> str:
    """What the draws depend on: the units' sides, the count, the seed, numpy's generator."""
    digest = hashlib.sha256(np.packbits(unit_core).tobytes())
    digest.update(
        f"{len(unit_core)}:{permutations}:{seed}:{street_inference.CHUNK}:{np.__version__}".encode()
    )
    return digest.hexdigest()
