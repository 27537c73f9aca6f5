"""The synthetic provider's true boxes as annotations of a rater named "synthetic".

For the demo and offline tests: after `collect --provider synthetic`, every view has a
`.boxes.xml` (Pascal VOC) beside it; importing them gives a detection set (heritage views with
window-group and facade-top boxes, plain views as negatives) that merge and split take like any
rater's boxes. Clearly labelled: the rater is "synthetic", the source each sidecar file.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from streetaudit.flows.annotations import ImportReport, import_annotations
from streetaudit.flows.errors import InputError
from streetaudit.flows.raters import add_rater

RATER = "synthetic"


def import_synthetic_boxes(
    url: str, images_root: Path | str | None = None, progress: bool = False
) -> ImportReport:
    """Import every `.boxes.xml` under the local image store (default: STREETAUDIT_IMAGES_URL or
    the data dir's images/) as the rater "synthetic"; re-running replaces, never duplicates."""
    from streetaudit.flows.image_store import ImageSettings

    root = Path(images_root or ImageSettings().root()) / "synthetic"
    if not root.is_dir():
        raise InputError(
            f"{root}: no synthetic views here; run `streetaudit collect --provider synthetic` first"
        )
    with psycopg.connect(url) as conn:
        known = conn.execute("SELECT 1 FROM streetaudit.rater WHERE name = %s", (RATER,)).fetchone()
    if known is None:
        add_rater(url, RATER)  # its link is never shown: nobody rates as "synthetic"
    return import_annotations(url, root, "voc", rater=RATER, progress=progress)
