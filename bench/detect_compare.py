"""mAP per architecture on the synthetic windows, all trained on one stored split (`detect compare`).

Run: `python bench/detect_compare.py` (CPU, small images, random initial weights: a few
minutes) or with `--device cuda --size 1024x512 --epochs 12` on a GPU machine. A throwaway
PostGIS cluster holds the seeded facades (or `--url`). Nothing is downloaded: every
detector starts from random weights, so on this synthetic set and schedule the figures show
how the architectures compare from scratch in minutes, not what they reach with COCO weights
on real panoramas. Prints `detect compare`'s rows as a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from streetaudit.flows.detect_evaluate import compare, evaluate
from streetaudit.flows.detect_train import train
from streetaudit.sql.connect import scratch_database
from streetaudit.testing.detection_data import seed_detection_dataset

FAST = ("fasterrcnn_tiny", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn")


def _train(url: str, architecture: str, dataset: str, args, width: int, height: int, tmp: Path) -> None:
    train(
        url,
        architecture,
        dataset,
        architecture=architecture,
        weights="none",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        step_size=max(1, args.epochs - 1),
        min_size=min(width, height),
        max_size=max(width, height),
        device=args.device,
        workers=0,
        out_dir=str(tmp / "runs"),
        progress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default=",".join(FAST))
    parser.add_argument("--size", default="128x96", help="WIDTHxHEIGHT of the images")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--url", default=None, help="scratch database URL (default: a throwaway cluster)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="sa-bench-compare-") as tmp, scratch_database(args.url) as url:
        data = seed_detection_dataset(
            url, Path(tmp) / "images", n=args.images, size=(width, height), test=0.25, val=0.15
        )
        for architecture in args.architectures.split(","):
            started = time.perf_counter()
            try:
                _train(url, architecture, data.dataset, args, width, height, Path(tmp))
            except Exception as error:  # a diverged loss (from scratch) is a result, not the end
                print(f"{architecture}: not trained ({type(error).__name__}: {error})", flush=True)
                continue
            scores = evaluate(url, architecture, data.dataset, "test", device=args.device)
            print(
                f"{architecture}: trained and evaluated in {time.perf_counter() - started:.0f} s; "
                f"mAP {scores.map:.3f}, mAP@.5 {scores.map50:.3f}",
                flush=True,
            )
        rows = compare(url, data.dataset, "test")
    print(
        f"\nsynthetic windows, {args.images} images of {width}x{height}, {args.epochs} epochs from random "
        f"weights on {args.device}; test split:\n"
    )
    print("| architecture | mAP@[.5:.95] | mAP@.5 | mAP@.75 | test images/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['architecture']} | {row['map']:.3f} | {row['map50']:.3f} | {row['map75']:.3f} "
            f"| {row['images_per_s'] or 0:.1f} |"
        )


if __name__ == "__main__":
    main()
