"""Settings of the /label page: the labels raters may give a box and how many top images they get.

The page's buttons and keys 1..9 follow the order of the labels; rating_api.label_save
refuses any other label, so a renamed label takes effect for the next save at once.
Boxes already stored keep their label (`annotations merge` reads what is stored).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from streetaudit.flows.errors import InputError
from streetaudit.sql.rows import one

MAX_LABELS = 50
MAX_TOP_N = 5000


@dataclass(frozen=True)
class LabelCampaign:
    labels: tuple[str, ...]
    top_n: int


def read_label_campaign(url: str) -> LabelCampaign:
    with psycopg.connect(url) as conn:
        labels, top_n = one(conn.execute("SELECT labels, top_n FROM streetaudit.label_campaign"))
    return LabelCampaign(tuple(labels), top_n)


def set_label_campaign(
    url: str, *, labels: list[str] | None = None, top_n: int | None = None
) -> LabelCampaign:
    """Change the given settings (others are kept)."""
    if labels is not None:
        labels = [label.strip() for label in labels]
        if not labels or len(labels) > MAX_LABELS:
            raise InputError(f"--labels: give 1 to {MAX_LABELS} labels, got {len(labels)}")
        bad = [label for label in labels if not 1 <= len(label) <= 100]
        if bad:
            raise InputError(f"--labels: each label must have 1 to 100 characters, got {bad[0]!r}")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise InputError(f"--labels: each label once, repeated: {', '.join(repeated)}")
    if top_n is not None and not 1 <= top_n <= MAX_TOP_N:
        raise InputError(f"--top-n must be between 1 and {MAX_TOP_N}, got {top_n}")
    with psycopg.connect(url) as conn:
        conn.execute(
            """UPDATE streetaudit.label_campaign
               SET labels = coalesce(%s, labels), top_n = coalesce(%s, top_n), updated_at = now()""",
            (labels, top_n),
        )
    return read_label_campaign(url)
