"""A detector that has learnt something, in under a minute on a CPU, for tests and benches.

Scenes are a noisy grey background with one to three saturated red rectangles (label
`window`) whose boxes are known exactly; `fasterrcnn_tiny` is trained on them with a bare
torchvision loop (seeded), and saved with `save_detector` like a real training run would.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from streetaudit.models.detectors import build_detector, save_detector

LABELS = ["window"]


def toy_scene(seed: int, size: tuple[int, int] = (96, 128), n: int | None = None):
    """(H, W, 3) uint8 image and its (n, 4) true boxes x1 y1 x2 y2 in pixels."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = rng.normal(110, 25, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(n if n is not None else int(rng.integers(1, 4))):
        for _attempt in range(20):
            w, h = int(rng.integers(16, 36)), int(rng.integers(16, 36))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            if all(x + w <= a or a2 <= x or y + h <= b or b2 <= y for a, b, a2, b2 in boxes):
                break
        image[y : y + h, x : x + w] = (220, 40, 40)
        boxes.append((x, y, x + w, y + h))
    return image, np.array(boxes, dtype=np.float32).reshape(-1, 4)


def write_scenes(folder: Path, seeds, size=(96, 128)) -> list[tuple[Path, np.ndarray]]:
    """JPEG files of toy scenes (quality 95) and their boxes."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in seeds:
        image, boxes = toy_scene(seed, size)
        path = folder / f"scene_{seed}.jpg"
        Image.fromarray(image).save(path, quality=95)
        out.append((path, boxes))
    return out


def train_toy_detector(path: Path, *, steps: int = 150, size=(96, 128), seed: int = 0) -> Path:
    """fasterrcnn_tiny trained on toy scenes (batch 4, SGD); the saved file's path."""
    torch.manual_seed(seed)
    detector = build_detector(
        "fasterrcnn_tiny", LABELS, options={"min_size": min(size), "max_size": max(size)}
    )
    model = detector.model
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    scenes = [toy_scene(1000 + i, size) for i in range(64)]
    started = time.perf_counter()
    for step in range(steps):
        chosen = [scenes[(step * 4 + k) % len(scenes)] for k in range(4)]
        images = [torch.from_numpy(img).permute(2, 0, 1).float() / 255 for img, _ in chosen]
        targets = [
            {"boxes": torch.from_numpy(b), "labels": torch.ones(len(b), dtype=torch.int64)} for _, b in chosen
        ]
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return save_detector(path, detector, trained_seconds=time.perf_counter() - started, steps=steps)
