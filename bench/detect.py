"""Benchmark: our detector training loop against a bare torchvision loop, same model, data and device.

Run: `python bench/detect.py --quick` (CPU, fasterrcnn_tiny, small images: about a minute) or
`python bench/detect.py --device cuda --architecture fasterrcnn_resnext101_32x8d_fpn --size 1024x512`
(bench/gpu_detect.sh). A throwaway PostGIS cluster holds the seeded facades (or `--url`, whose
data it may change); weights are random (speed does not depend on them; nothing is downloaded).

--part train (this file's part so far):
(a) bare loop: the reference scripts' loop reduced to its core — a Dataset decoding the same
    JPEG files, DataLoader, model(images, targets), sum of losses, SGD step (AMP + GradScaler on CUDA);
(b) ours: `flows.detect_train.train` on the same split (no validation images), its epoch time
    (augmentation, warm-up, progress, loss checks) and its whole wall time (with model
    building, per-epoch checkpoints, rows, the final detector file and figure).
Both count images per second of training; goal (b)/(a) >= 0.9. Runs are interleaved, best of --repeat.

Prediction and Grad-CAM: bench/detect_predict.py (same scratch-database pattern).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, read_file

from streetaudit.flows.detect_train import train
from streetaudit.flows.detection_data import StoredSplit, collate, read_split
from streetaudit.models.detectors import build_detector
from streetaudit.sql.connect import scratch_database
from streetaudit.testing.detection_data import seed_detection_dataset


class BareImages(Dataset):
    """What a hand-written loop would read: the file, decoded, as floats; the boxes as they are."""

    def __init__(self, items) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        image = decode_image(read_file(item.uri), mode=ImageReadMode.RGB).float() / 255
        return image, {"boxes": torch.from_numpy(item.boxes), "labels": torch.from_numpy(item.classes)}


def bare_loop(stored: StoredSplit, args, device: torch.device) -> tuple[float, float]:
    """(images per wall second, per CPU second) of the core of torchvision's detection reference loop."""
    torch.manual_seed(0)
    width, height = args.width, args.height
    detector = build_detector(
        args.architecture,
        stored.labels,
        options={"min_size": min(width, height), "max_size": max(width, height)},
    )
    model = detector.model.to(device).train()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9, weight_decay=1e-4
    )
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and args.amp else None
    items = stored.items["train"]
    loader = DataLoader(
        BareImages(items),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        drop_last=len(items) > args.batch_size,
    )
    seen, seconds, cpu = 0, 0.0, 0.0
    for _ in range(args.epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        for images, targets in loader:
            images = [image.to(device, non_blocking=True) for image in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            with torch.autocast("cuda", enabled=scaler is not None):
                loss = sum(model(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            seen += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    return seen / seconds, seen / cpu


def our_loop(url: str, stored: StoredSplit, args, out: Path, run: int) -> tuple[float, float, float]:
    """(images per wall second over the epochs, per CPU second, images/s over the whole call) of `train`."""
    width, height = args.width, args.height
    started = time.perf_counter()
    report = train(
        url,
        f"bench-{run}",
        stored.name,
        architecture=args.architecture,
        weights="none",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        min_size=min(width, height),
        max_size=max(width, height),
        device=args.device,
        amp=args.amp,
        workers=args.workers,
        out_dir=str(out),
        progress=False,
    )
    wall = time.perf_counter() - started
    return report.images_per_s, report.images / report.cpu_seconds, report.images / wall


def part_train(url: str, args, folder: Path) -> None:
    device = torch.device(args.device)
    seed_detection_dataset(
        url,
        folder / "images",
        n=args.images,
        name="bench",
        size=(args.width, args.height),
        test=0.0,
        val=0.0,
        views_per_point=1,
    )
    with psycopg.connect(url) as conn:
        stored = read_split(conn, "bench", ("train", "val"))
    # the seeded split keeps at least one point per split; the benchmark trains on all but those
    print(
        f"{args.architecture} on {device} ({torch.get_num_threads()} threads), {len(stored.items['train'])} "
        f"train images {args.width}x{args.height}, batch {args.batch_size}, {args.epochs} epochs, "
        f"AMP {'on' if args.amp and device.type == 'cuda' else 'off'}, workers {args.workers}"
    )
    bare, bare_cpu, ours, ours_cpu, whole = [], [], [], [], []
    for run in range(args.repeat):
        wall_rate, cpu_rate = bare_loop(stored, args, device)
        bare.append(wall_rate)
        bare_cpu.append(cpu_rate)
        epoch_rate, cpu_rate, whole_rate = our_loop(url, stored, args, folder / "runs", run)
        ours.append(epoch_rate)
        ours_cpu.append(cpu_rate)
        whole.append(whole_rate)
        print(
            f"  run {run + 1}: bare {bare[-1]:.2f} ({bare_cpu[-1]:.2f} per CPU s), ours {ours[-1]:.2f} "
            f"({ours_cpu[-1]:.2f} per CPU s; whole call {whole[-1]:.2f}) images/s"
        )
    print(f"(a) bare torchvision loop: {max(bare):.2f} images/s, {max(bare_cpu):.2f} per CPU second")
    print(
        f"(b) our training loop:     {max(ours):.2f} images/s, {max(ours_cpu):.2f} per CPU second "
        f"(whole call incl. checkpoints: {max(whole):.2f} images/s)"
    )
    print(f"ratio (b)/(a): {max(ours) / max(bare):.2f} wall, {max(ours_cpu) / max(bare_cpu):.2f} CPU time")
    print(
        f"  (goal >= 0.9; best of {args.repeat} interleaved runs; on a shared CPU trust the CPU-time ratio)"
    )


#: --part NAME -> function(url, args, folder); prediction and Grad-CAM benchmarks join here
PARTS = {"train": part_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="train")
    parser.add_argument("--quick", action="store_true", help="CPU: tiny model, 128x96 images, ~1 minute")
    parser.add_argument("--architecture", default="fasterrcnn_resnet50_fpn_v2")
    parser.add_argument("--size", default="1024x512", help="WIDTHxHEIGHT of the images")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--url", default=None, help="scratch database URL (default: a throwaway cluster)")
    args = parser.parse_args()
    if args.quick:
        args.architecture, args.size, args.images, args.batch_size, args.device = (
            "fasterrcnn_tiny",
            "128x96",
            40,
            4,
            "cpu",
        )
        args.threads = args.threads or 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="sa-bench-detect-") as tmp, scratch_database(args.url) as url:
        PARTS[args.part](url, args, Path(tmp))


if __name__ == "__main__":
    main()
