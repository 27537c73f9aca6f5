"""The heat-map panel (the Harbin study's figure 10): overlays with their statistics.

A grid of the stored overlay PNGs of the most recent detector and method, the images with
the most heat inside their boxes first, each titled with its four shares.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

PANEL_NAME = "heatmap_panel.png"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def heat_panel(url: str, out: Path, n: int = 12, columns: int = 4) -> Path | None:
    """Write PANEL_NAME into `out`; None (nothing written) when there are no heat maps."""
    import matplotlib.pyplot as plt
    from PIL import Image

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """WITH latest AS (SELECT model_id, method FROM streetaudit.heatmap ORDER BY computed_at DESC LIMIT 1)
               SELECT h.image_id, h.uri, h.inside_boxes, h.on_building, h.facade_height, h.upper_third, h.method
               FROM streetaudit.heatmap AS h JOIN latest USING (model_id, method)
               WHERE h.uri IS NOT NULL
               ORDER BY h.inside_boxes DESC NULLS LAST, h.image_id LIMIT %s""",
            (n,),
        ).fetchall()
    if not rows:
        return None
    grid_rows = -(-len(rows) // columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4 * columns, 2.6 * grid_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image_id, uri, inside, building, height, upper, _method) in zip(
        axes.ravel(), rows, strict=False
    ):
        try:
            with Image.open(uri) as picture:
                ax.imshow(picture.convert("RGB"))
        except OSError:
            continue
        ax.set_title(
            f"image {image_id}: boxes {_fmt(inside)}, building {_fmt(building)}\n"
            f"facade height {_fmt(height)}, upper third {_fmt(upper)}",
            fontsize=8,
        )
    fig.suptitle(f"{rows[0][-1]} heat maps (share of heat inside boxes, on buildings; facade 0 base, 1 top)")
    path = Path(out) / PANEL_NAME
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
