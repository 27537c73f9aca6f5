"""Benchmark: `detect predict` against a bare torchvision inference loop, and Grad-CAM speed.

Run: `python bench/detect_predict.py --quick` (CPU, tiny detector, small images) or with
`--device cuda --architecture fasterrcnn_resnet50_fpn_v2 --size 1024x512`. Starts a
throwaway PostGIS (or uses `--url`, whose data it may overwrite). Random weights: speed
does not depend on them (the score threshold is 0 so every box is written).

(a) bare loop: the same JPEGs decoded beforehand, already on the device, model(list) in
    inference mode (with autocast on CUDA), batch by batch;
(b) our loop: JPEG files -> DataLoader workers -> model -> COPY into streetaudit.detection.
The figure that matters is (b)/(a); the goal is >= 0.9. (c) Grad-CAM images/s (one image at
a time, as `explain` runs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import torch
from PIL import Image

from streetaudit.flows.detect_predict import inference_context, predict
from streetaudit.models.detectors import build_detector, load_detector, save_detector
from streetaudit.models.gradcam import explain_image
from streetaudit.sql.connect import scratch_database


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CPU, fasterrcnn_tiny, 24 images of 256x128")
    parser.add_argument("--architecture", default="fasterrcnn_tiny")
    parser.add_argument("--size", default="256x128", help="WIDTHxHEIGHT")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cam-images", type=int, default=8)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    if args.quick:
        args.architecture, args.size, args.images, args.device, args.cam_images = (
            "fasterrcnn_tiny",
            "256x128",
            24,
            "cpu",
            4,
        )
    width, height = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="sa-bench-det-") as tmp, scratch_database(args.url) as url:
        work = Path(tmp)
        torch.manual_seed(0)
        detector = build_detector(
            args.architecture, ["window", "roof"], options={"min_size": height, "max_size": width}
        )
        path = save_detector(work / "detector.pt", detector)
        rng = np.random.default_rng(0)
        files = []
        for i in range(args.images):
            small = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
            files.append(work / f"{i}.jpg")
            Image.fromarray(small).resize((width, height), Image.BILINEAR).save(files[-1], quality=90)
        with psycopg.connect(url) as conn:
            road = conn.execute(
                """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
                   VALUES ('bench', gen_random_uuid()::text, 'SRID=4326;LINESTRING(0 0, 0.01 0)', 1000) RETURNING id"""
            ).fetchone()[0]
            for i, file in enumerate(files):
                point = conn.execute(
                    """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
                       VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(0, 0), 4326)) RETURNING id""",
                    (road, i, float(i)),
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO streetaudit.image (point_id, provider, heading, uri, status) "
                    "VALUES (%s, 'bench', 0, %s, 'ok')",
                    (point, str(file)),
                )

        model = load_detector(path, device).model
        decoded = [
            torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).to(device).float() / 255
            for f in files
        ]
        with torch.inference_mode(), inference_context(device):
            model(decoded[: args.batch_size])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode(), inference_context(device):
            for k in range(0, len(decoded), args.batch_size):
                outputs = model(decoded[k : k + args.batch_size])
                [o["boxes"].cpu() for o in outputs]
        bare = len(decoded) / (time.perf_counter() - start)

        report = predict(
            url,
            str(path),
            batch_size=args.batch_size,
            score_threshold=0.0,
            device=args.device,
            progress=False,
        )
        ours = report.images_per_s

        image = decoded[0]
        explain_image(model, image, "gradcam", score_threshold=0.0)  # warm-up
        start = time.perf_counter()
        for k in range(args.cam_images):
            explain_image(model, decoded[k % len(decoded)], "gradcam", score_threshold=0.0)
        cam = args.cam_images / (time.perf_counter() - start)

    print(f"{args.architecture} {width}x{height} on {device}, batch {args.batch_size}, {args.images} images")
    print(f"(a) bare torchvision loop : {bare:8.2f} images/s")
    print(f"(b) detect predict        : {ours:8.2f} images/s  ({report.detections} detections stored)")
    print(f"    ratio (b)/(a)          : {ours / bare:8.2f}  (goal >= 0.9)")
    print(f"(c) Grad-CAM              : {cam:8.2f} images/s")


if __name__ == "__main__":
    main()
