"""Benchmark: the segmentation pipeline against the model's own speed, same model and batch size.

Run: `python bench/segment.py` (starts a throwaway PostGIS cluster, or uses `--url`,
whose data it deletes; CPU unless --device cuda). The model is a SegFormer-B0
built from its config with random weights (speed does not depend on the weights, and
nothing is downloaded), saved with save_pretrained and loaded by path like any checkpoint.

(a) bare forward passes: pixel tensors decoded and preprocessed beforehand, already on the device;
(b) the whole pipeline: JPEG files -> DataLoader workers -> preprocessing -> model -> bilinear
    upsampling + argmax -> histograms on the device -> COPY into streetaudit.segmentation.
The figure that matters is (b)/(a); the goal is >= 0.85.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import torch
from PIL import Image

from streetaudit.flows.segment import segment
from streetaudit.models.label_sets import CITYSCAPES
from streetaudit.sql.connect import scratch_database


def build_segformer(folder: Path, height: int, width: int, variant: str) -> Path:
    """SegFormer from its config, random weights, with a processor at the benchmark's image size."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    labels = dict(enumerate(CITYSCAPES))
    if variant == "b0":
        config = SegformerConfig(id2label=labels, label2id={v: k for k, v in labels.items()})
    else:  # "tiny": a few MFLOPs, to see the pipeline's own overhead
        config = SegformerConfig(
            num_encoder_blocks=2,
            depths=[1, 1],
            sr_ratios=[2, 1],
            hidden_sizes=[16, 32],
            patch_sizes=[7, 3],
            strides=[4, 2],
            num_attention_heads=[1, 1],
            mlp_ratios=[2, 2],
            decoder_hidden_size=32,
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
        )
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": height, "width": width}).save_pretrained(folder)
    return folder


def write_jpegs(folder: Path, n: int, height: int, width: int, distinct: int = 64) -> list[Path]:
    """`n` JPEG files (quality 90) of smooth random scenes; `distinct` different pictures, repeated.

    Repeating bytes keeps set-up short for thousands of files; every file is still read
    and decoded on its own.
    """
    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(min(n, distinct)):
        small = rng.integers(0, 256, size=(max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((width, height), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        pictures.append(buffer.getvalue())
    paths = []
    for i in range(n):
        path = folder / f"{i}_0.jpg"
        path.write_bytes(pictures[i % len(pictures)])
        paths.append(path)
    return paths


def load_images(url: str, paths: list[Path]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE streetaudit.road, streetaudit.model CASCADE")
        road = conn.execute(
            """INSERT INTO streetaudit.road (source, source_id, geom, length_m)
               VALUES ('bench', '1', 'SRID=4326;LINESTRING(24.94 60.17, 24.95 60.17)', 555) RETURNING id"""
        ).fetchone()[0]
        points = conn.execute(
            """INSERT INTO streetaudit.sample_point (road_id, seq, distance_m, geom)
               SELECT %s, g, g, ST_SetSRID(ST_MakePoint(24.94, 60.17), 4326)
               FROM generate_series(0, %s) AS g RETURNING id""",
            (road, len(paths) - 1),
        ).fetchall()
        with conn.cursor().copy(
            "COPY streetaudit.image (point_id, provider, heading, uri, status) FROM STDIN"
        ) as copy:
            for (point_id,), path in zip(points, paths, strict=True):
                copy.write_row((point_id, "bench", 0.0, str(path), "ok"))


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader's decoding workers).

    On a machine shared with other work, wall-clock rates swing with the load; CPU seconds
    per image show the pipeline's own cost whatever else runs.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bare_forward(
    folder: Path, paths: list[Path], batch_size: int, device: torch.device, distinct: int
) -> tuple[float, float]:
    """Images/s and CPU s/image of the model alone on pixel tensors prepared beforehand.

    As many images as the pipeline sees, cycling over the distinct pictures' batches, so
    memory stays small however many images are measured.
    """
    from torchvision.io import decode_image
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    processor = SegformerImageProcessor.from_pretrained(folder)
    model = SegformerForSemanticSegmentation.from_pretrained(folder).eval().to(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # as the pipeline does
    count = max(batch_size, min(len(paths), distinct))
    images = torch.stack([decode_image(str(paths[i % len(paths)])) for i in range(count)])
    batches = []
    for start in range(0, count - batch_size + 1, batch_size):
        pixels = processor(images=images[start : start + batch_size], return_tensors="pt")["pixel_values"]
        pixels = pixels.to(device)
        batches.append(pixels.contiguous(memory_format=torch.channels_last) if cuda else pixels)
    steps = -(-len(paths) // batch_size)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    with torch.inference_mode(), autocast:
        model(pixel_values=batches[0])  # warm-up (kernels, allocator)
        if cuda:
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), cpu_seconds()
        for step in range(steps):
            logits = model(pixel_values=batches[step % len(batches)]).logits
        if cuda:
            torch.cuda.synchronize()
        del logits
    images = steps * batch_size
    return images / (time.perf_counter() - start), (cpu_seconds() - cpu) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--distinct", type=int, default=64, help="different pictures among the JPEGs")
    parser.add_argument("--size", default="512x256", help="WIDTHxHEIGHT of the JPEGs (and the model input)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: automatic)")
    parser.add_argument("--model", choices=["b0", "tiny"], default="b0")
    parser.add_argument(
        "--url",
        help="Use this database instead of a throwaway cluster: its roads, points, images and models are DELETED.",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory(prefix="sa-bench-seg-") as tmp, scratch_database(args.url) as url:
        work = Path(tmp)
        folder = build_segformer(work / "segformer", height, width, args.model)
        (work / "images").mkdir()
        paths = write_jpegs(work / "images", args.images, height, width, args.distinct)
        load_images(url, paths)
        print(
            f"SegFormer-{args.model} (random weights), {args.images} JPEGs {width}x{height}, "
            f"batch {args.batch_size}, device {device}, torch threads {torch.get_num_threads()}, "
            f"CPUs {os.cpu_count()}"
        )
        # Warm the pipeline once on a few images (process start-up, first kernels), then measure.
        options = {"workers": args.workers} if args.workers is not None else {}
        segment(url, model=str(folder), batch_size=args.batch_size, device=str(device), progress=False,
                limit=args.batch_size, **options)  # fmt: skip
        with psycopg.connect(url) as conn:
            conn.execute("TRUNCATE streetaudit.segmentation")
        bare, piped, total = 0.0, 0.0, 0.0
        bare_cpu, piped_cpu = float("inf"), float("inf")
        for _ in range(args.repeat):  # interleaved, best of each: other load on the machine hits both alike
            rate, cpu_per_image = bare_forward(folder, paths, args.batch_size, device, args.distinct)
            bare, bare_cpu = max(bare, rate), min(bare_cpu, cpu_per_image)
            with psycopg.connect(url) as conn:
                conn.execute("TRUNCATE streetaudit.segmentation")
            start, cpu = time.perf_counter(), cpu_seconds()
            report = segment(
                url,
                model=str(folder),
                batch_size=args.batch_size,
                device=str(device),
                progress=False,
                **options,
            )
            total = max(total, args.images / (time.perf_counter() - start))
            piped = max(piped, report.images_per_s)
            piped_cpu = min(piped_cpu, (cpu_seconds() - cpu) / args.images)
            with psycopg.connect(url) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM streetaudit.segmentation WHERE error IS NULL"
                ).fetchone()[0]
            assert rows == args.images == report.done, (rows, report)
        print(
            f"(a) bare forward passes on pre-decoded tensors : {bare:9.1f} images/s  {bare_cpu:7.3f} CPU s/image"
        )
        print(
            f"(b) whole pipeline, JPEG files -> PostGIS rows  : {piped:9.1f} images/s  {piped_cpu:7.3f} CPU s/image "
            f"({args.images} rows; {total:.1f} images/s counting model loading)"
        )
        print(f"ratio (b)/(a): {piped / bare:.2f}  (goal >= 0.85; best of {args.repeat} interleaved runs)")
        print(
            f"CPU-time ratio (a)/(b): {bare_cpu / piped_cpu:.2f}  (this process and its decoding workers; "
            "steadier than wall time on a busy machine; the database server's CPU is not counted)"
        )


if __name__ == "__main__":
    main()
