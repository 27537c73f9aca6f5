"""`synthetic`: drawn street scenes with their true label maps, for the demo and tests.

No key, no network: each view is drawn from a seed made of point id and heading, so a rerun
draws the same picture. The true Cityscapes label map travels beside the image as
`<name>.labels.png` (same path, suffix replaced), which the segmentation stage's `masks`
backend reads by file name. The true boxes of the heritage features drawn (window groups,
facade tops) travel as `<name>.boxes.xml` in Pascal VOC, empty for plain scenes (negatives), so
`annotations import IMAGES --format voc` (or flows/synthetic_boxes.py) makes a detection set
offline.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from streetaudit.flows.annotation_formats import BOXES_SUFFIX, voc_xml
from streetaudit.flows.providers.base import Http, Image, NoImagery, Provider, SamplePoint, View
from streetaudit.flows.providers.synthetic_scene import draw_scene, scene_seed
from streetaudit.models.label_sets import LABELS_SUFFIX


def render(point: SamplePoint, view: View) -> Image:
    seed = scene_seed(point.id, view.heading)
    scene = draw_scene(seed, view.width, view.height, heritage=point.in_heritage)
    # A summer date (April to October), so cleaning's winter rule keeps synthetic views.
    captured = datetime(2023, 4 + seed % 7, 1 + seed % 28, tzinfo=UTC)
    return Image(
        data=scene.jpeg(),
        extension="jpg",
        pano_id=f"synthetic-{point.id}",
        captured_at=captured,
        lon=point.lon,
        lat=point.lat,
        width=view.width,
        height=view.height,
        sidecars={
            LABELS_SUFFIX: scene.labels_png(),
            # named as view_key names the image, so an import matches it by file name
            BOXES_SUFFIX: voc_xml(f"{point.id}_{view.heading:g}.jpg", view.width, view.height, scene.boxes),
        },
    )


class SyntheticProvider(Provider):
    name = "synthetic"
    uses_http = False

    async def fetch(self, http: Http | None, point: SamplePoint, view: View) -> Image | NoImagery:
        return await asyncio.to_thread(render, point, view)
