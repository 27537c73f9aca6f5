"""The demo's second half of the Harbin method, on the synthetic views: boxes → ground truth →
split → a tiny detector trained on the CPU → city-wide predictions → Grad-CAM heat maps.

The synthetic provider knows where it drew framed windows and cornices on heritage
facades and writes them as labelImg (VOC) files; they stand in for raters' boxes. The
detector is `fasterrcnn_tiny`, trained for a few epochs at a small input size so the
demo stays within a couple of minutes: its mAP shows the mechanics work, not what a
ResNeXt-101 Faster R-CNN reaches on real photographs.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from rich.console import Console

from streetaudit.sql.rows import scalar

DEMO_NAME = "demo-synthetic"
DEMO_DETECTOR = "demo-tiny-detector"


def step_detection(
    url: str,
    console: Console,
    out: Path,
    *,
    epochs: int = 4,
    sample: int = 120,
    explain_limit: int = 8,
    threshold: float = 0.05,
) -> None:
    from streetaudit.flows.detect_evaluate import evaluate
    from streetaudit.flows.detect_predict import predict
    from streetaudit.flows.detect_predict import summary_line as predict_line
    from streetaudit.flows.detect_split import split_dataset
    from streetaudit.flows.detect_train import train
    from streetaudit.flows.explain import explain
    from streetaudit.flows.explain import summary_line as explain_line
    from streetaudit.flows.ground_truth import merge_annotations
    from streetaudit.flows.heat_plots import heat_panel
    from streetaudit.flows.synthetic_boxes import import_synthetic_boxes

    console.rule("[bold]heritage features: boxes, a detector, heat maps (SYNTHETIC, tiny detector)")
    with psycopg.connect(url) as conn:
        synthetic = scalar(
            conn.execute(
                "SELECT count(*) FROM streetaudit.image WHERE provider = 'synthetic' AND status = 'ok'"
            )
        )
        done = scalar(
            conn.execute("SELECT count(*) FROM streetaudit.detector_run WHERE name = %s", (DEMO_DETECTOR,))
        )
    if not synthetic:
        console.print(
            "no synthetic views, so no demo detector: with real photographs, raters box their top images "
            "(/label or labelImg, then `streetaudit annotations import`)"
        )
        return
    if done:
        console.print(
            f"the demo detector {DEMO_DETECTOR} exists already; run the demo in a new data dir to redo it"
        )
        return
    console.print(
        "[bold yellow]The boxes below are the synthetic scenes' own drawings of framed windows and "
        "cornices (rater 'synthetic'), and the detector is a tiny CPU model trained for "
        f"{epochs} epochs: the figures show the mechanics, not a real detector's accuracy.[/]"
    )
    imported = import_synthetic_boxes(url)
    console.print(
        f"annotations: {imported.boxes} boxes on {imported.images} images "
        f"({', '.join(f'{k} {v}' for k, v in sorted(imported.labels.items()))})"
    )
    merge_annotations(url, DEMO_NAME, method="union", min_raters=1, replace=True)
    split = split_dataset(url, DEMO_NAME, DEMO_NAME, test=0.3, val=0.3, seed=0, replace=True, sample=sample)
    console.print(
        f"split by sample point (a sample of about {sample} images, so the CPU trains in a minute): "
        + ", ".join(f"{k} {v}" for k, v in split.counts.items())
        + " images"
    )
    report = train(
        url,
        name=DEMO_DETECTOR,
        dataset=DEMO_NAME,
        architecture="fasterrcnn_tiny",
        weights="none",
        epochs=epochs,
        batch_size=8,
        lr=0.01,
        step_size=max(1, epochs - 1),
        min_size=128,
        max_size=256,
        device="cpu",
        out_dir=str(out / "detectors"),
        progress=False,
    )
    console.print(
        f"trained {report.name} ({report.architecture}, {report.epochs} epochs, "
        f"{report.images_per_s:.1f} images/s): figure {report.figure}",
        highlight=False,
        soft_wrap=True,
    )
    scores = evaluate(url, DEMO_DETECTOR, DEMO_NAME, "test", device="cpu")
    console.print(
        f"test split ({scores.images} images): mAP {scores.map:.3f}, mAP@.5 {scores.map50:.3f}, "
        f"mAP@.75 {scores.map75:.3f} (a minute of CPU training); boxes scoring at least {threshold} are kept below"
    )
    console.print(
        "predict "
        + predict_line(
            predict(url, DEMO_DETECTOR, score_threshold=threshold, device="cpu", workers=0, progress=False)
        ),
        highlight=False,
    )
    explained = explain(
        url,
        DEMO_DETECTOR,
        method="hirescam",
        score_threshold=threshold,
        limit=explain_limit,
        device="cpu",
        progress=False,
    )
    console.print("explain " + explain_line(explained), highlight=False)
    panel = heat_panel(url, out / "plots")
    if panel is not None:
        console.print(f"heat-map panel: {panel}")
    console.print(
        "read them in SQL: api.detection_stats, api.heat_stats; on the map: the api.detections tile layer"
    )
