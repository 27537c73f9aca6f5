"""Training a heritage-feature detector on a stored split (`detect train`), as the Harbin study did.

The schedule is the study's by default: batch 8, SGD with momentum 0.9, learning rate 0.01
divided by 10 every 10 epochs, by transfer learning from library weights, with the linear
warm-up over the first iterations that torchvision's detection reference scripts use
(a fresh class head with lr 0.01 otherwise often diverges in the first batches).

A run is a detector_run row named by the user. After every epoch a checkpoint (model,
optimizer, scheduler, AMP scaler, epoch, RNG states and the epoch history) is written
atomically and its epoch row stored; `resume=True` continues from it, so a killed run
still ends with the number of epochs asked for, and a rerun never duplicates an epoch.
With `torchrun --nproc-per-node N` each process trains on its share of the batches
(DistributedDataParallel; `batch_size` is per process, as in torchvision's scripts) and
only rank 0 writes rows, checkpoints and the final detector.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import torch
from prefect import flow
from psycopg.types.json import Jsonb
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from streetaudit.flows.detect_evaluate import default_workers, score_items
from streetaudit.flows.detection_data import Augment, DetectionImages, collate, dataset_row, read_split
from streetaudit.flows.detector_registry import register_detector
from streetaudit.flows.errors import InputError
from streetaudit.flows.image_store import ImageSettings
from streetaudit.models.backend import BackendError, resolve_device
from streetaudit.models.detectors import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_OPTIONS,
    Detector,
    build_detector,
    save_detector,
)
from streetaudit.sql.rows import scalar

DEFAULT_EPOCHS = 30
#: `--weights default`: COCO weights of the whole detector where the library has them, else
#: ImageNet weights of its backbone (the study's ResNeXt-101), else none (fasterrcnn_tiny)
DEFAULT_WEIGHTS = "default"
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainReport:
    run_id: int
    name: str
    architecture: str
    status: str
    epochs: int
    resumed_from: int = 0
    model_id: int | None = None
    detector: str | None = None
    checkpoint: str | None = None
    figure: str | None = None
    train_loss: float | None = None
    val_map: float | None = None
    val_map50: float | None = None
    images_per_s: float = 0.0
    seconds: float = 0.0
    #: process CPU time of the training passes (a steadier yardstick than wall time on a shared machine)
    cpu_seconds: float = 0.0
    images: int = 0
    history: list[dict] = field(default_factory=list)


class TrainingDiverged(InputError):
    """The loss stopped being finite: the schedule (usually the learning rate) must change."""


def library_weights(architecture: str, weights: str | None, weights_backbone: str | None) -> tuple:
    """(weights, weights_backbone) for build_detector from the user's words (`default`, none, a name, a file)."""
    spec = ARCHITECTURES[architecture]
    if weights is None or weights.lower() != DEFAULT_WEIGHTS:
        return weights, weights_backbone
    if spec.detector_weights:
        return "DEFAULT", None
    if spec.backbone_weights:
        return None, weights_backbone or "DEFAULT"
    return None, None


# -- distributed ---------------------------------------------------------------------------
@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start_distributed(device: str) -> tuple[Ranks, torch.device]:
    """One process per GPU under torchrun (env WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        try:
            return Ranks(), resolve_device(device)
        except BackendError as error:
            raise InputError(str(error)) from None
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        # A rank left waiting on another (a barrier while rank 0 validates, an all_reduce)
        # fails after this instead of hanging for ever; STREETAUDIT_DIST_TIMEOUT seconds.
        timeout = timedelta(seconds=float(os.environ.get("STREETAUDIT_DIST_TIMEOUT", "1800")))
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    if cuda:
        torch.cuda.set_device(local)
    return Ranks(dist.get_rank(), dist.get_world_size(), local), torch.device(
        f"cuda:{local}" if cuda else "cpu"
    )


def _barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _mean_over_ranks(value: float, count: int, ranks: Ranks, device: torch.device) -> float:
    if ranks.world == 1:
        return value / max(count, 1)
    import torch.distributed as dist

    both = torch.tensor([value, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(both)
    return float(both[0] / both[1].clamp(min=1))


# -- the run row ---------------------------------------------------------------------------
def _open_run(
    url: str, name: str, dataset_id: int, architecture: str, labels: list[str], parameters: dict, resume: bool
) -> tuple[int, dict, str]:
    """(run id, its parameters, its architecture): a new run, or the stored one when resuming."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT id, parameters, status, epochs_done, dataset_id, architecture
                 FROM streetaudit.detector_run WHERE name = %s FOR UPDATE""",
            (name,),
        ).fetchone()
        if row is None:
            run_id = scalar(
                conn.execute(
                    """INSERT INTO streetaudit.detector_run (name, dataset_id, architecture, labels, parameters)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                    (name, dataset_id, architecture, labels, Jsonb(parameters)),
                )
            )
            return run_id, parameters, architecture
        run_id, stored, status, done, stored_dataset, stored_architecture = row
        if not resume:
            raise InputError(
                f"--name {name}: a run of that name exists ({status}, {done} epochs of "
                f"{stored.get('epochs')}); pass --resume to continue it or choose another name"
            )
        if stored_dataset != dataset_id:
            raise InputError(f"--resume {name}: that run trains on another dataset (id {stored_dataset})")
        conn.execute(
            "UPDATE streetaudit.detector_run SET status = 'running', detail = NULL, finished_at = NULL WHERE id = %s",
            (run_id,),
        )
        return run_id, stored, stored_architecture


def _store_epochs(url: str, run_id: int, history: list[dict], checkpoint: Path) -> None:
    """Upsert the epoch rows (all of them: a kill between checkpoint and row loses none)."""
    with psycopg.connect(url) as conn:
        for row in history:
            conn.execute(
                """INSERT INTO streetaudit.detector_epoch
                       (run_id, epoch, train_loss, val_map, val_map50, learning_rate, seconds)
                   VALUES (%(run)s, %(epoch)s, %(train_loss)s, %(val_map)s, %(val_map50)s,
                           %(learning_rate)s, %(seconds)s)
                   ON CONFLICT (run_id, epoch) DO UPDATE SET
                       train_loss = EXCLUDED.train_loss, val_map = EXCLUDED.val_map,
                       val_map50 = EXCLUDED.val_map50, learning_rate = EXCLUDED.learning_rate,
                       seconds = EXCLUDED.seconds, finished_at = now()""",
                {"run": run_id, **row},
            )
        conn.execute(
            "UPDATE streetaudit.detector_run SET epochs_done = %s, checkpoint_uri = %s WHERE id = %s",
            (len(history), str(checkpoint), run_id),
        )


def _close_run(url: str, run_id: int, status: str, detail: str | None = None, **columns: Any) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            """UPDATE streetaudit.detector_run
                  SET status = %s, detail = %s, finished_at = now(),
                      model_id = coalesce(%s, model_id), weights_uri = coalesce(%s, weights_uri)
                WHERE id = %s""",
            (status, detail, columns.get("model_id"), columns.get("weights_uri"), run_id),
        )


# -- checkpoints ---------------------------------------------------------------------------
def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    assert not isinstance(keys, str)  # legacy=True: the MT19937 tuple
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


# -- one epoch -----------------------------------------------------------------------------
def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    device: torch.device,
    epoch: int,
    *,
    scaler: torch.amp.GradScaler | None,
    warmup_iters: int,
    augment: Augment | None = None,
    bar: Progress | None = None,
) -> tuple[float, int, float, float]:
    """(sum of batch losses, batches, seconds, CPU seconds) of one pass; warm-up in the first epoch only."""
    model.train()
    warmup = None
    if epoch == 0 and warmup_iters > 0:
        warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3, total_iters=warmup_iters)
    task = bar.add_task(f"epoch {epoch + 1}", total=len(loader), loss=math.nan) if bar else None
    total, batches = 0.0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for images, targets in loader:
        images = [image.to(device, non_blocking=True) for image in images]
        if augment is not None:
            images = [augment.photometric(image) for image in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        with torch.autocast("cuda", enabled=scaler is not None):
            losses = model(images, targets)
            loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            parts = ", ".join(f"{k} {float(v):.3g}" for k, v in losses.items())
            raise TrainingDiverged(
                f"epoch {epoch + 1}, batch {batches + 1}: the loss is {value} ({parts}); "
                "lower --lr or lengthen --warmup-iters"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if warmup is not None and batches < warmup_iters:
            warmup.step()
        total += value
        batches += 1
        if bar is not None and task is not None:
            bar.update(task, advance=1, loss=total / batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if bar is not None and task is not None:
        bar.remove_task(task)
    return total, batches, time.perf_counter() - started, time.process_time() - cpu_started


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=True,
    )


# -- the figure ----------------------------------------------------------------------------
def plot_history(history: list[dict], path: Path, title: str) -> Path:
    """Training loss and validation mAP per epoch (the Harbin study's figure 9, right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, loss_axis = plt.subplots(figsize=(6, 3.6), dpi=120)
    loss_axis.plot(
        epochs, [row["train_loss"] for row in history], color="tab:blue", marker="o", label="train loss"
    )
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    map_axis = loss_axis.twinx()
    maps = [row["val_map"] if row["val_map"] is not None else math.nan for row in history]
    maps50 = [row["val_map50"] if row["val_map50"] is not None else math.nan for row in history]
    map_axis.plot(epochs, maps, color="tab:red", marker="s", label="val mAP@[.5:.95]")
    map_axis.plot(epochs, maps50, color="tab:orange", marker="^", linestyle="--", label="val mAP@.5")
    map_axis.set_ylabel("validation mAP", color="tab:red")
    map_axis.set_ylim(0, 1)
    lines = loss_axis.get_lines() + map_axis.get_lines()
    loss_axis.legend(lines, [str(line.get_label()) for line in lines], loc="center right", fontsize=8)
    loss_axis.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    fig.savefig(partial)
    plt.close(fig)
    os.replace(partial, path)
    return path


# -- the run -------------------------------------------------------------------------------
def _parameters(**values: Any) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def train(
    url: str,
    name: str,
    dataset: str,
    architecture: str = DEFAULT_ARCHITECTURE,
    weights: str | None = DEFAULT_WEIGHTS,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    epochs: int | None = None,
    batch_size: int = 8,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    step_size: int = 10,
    gamma: float = 0.1,
    warmup_iters: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    device: str = "auto",
    amp: bool = True,
    workers: int | None = None,
    seed: int = 0,
    out_dir: str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainReport:
    """Train `architecture` on the dataset's train split, validating on val after every epoch.

    `resume=True` continues the run `name` from its last checkpoint with its stored
    parameters (only `epochs`, `device`, `workers` and `progress` may change). `on_epoch`
    is called on rank 0 with each finished epoch's row.
    """
    if architecture not in ARCHITECTURES:
        raise InputError(f"--architecture {architecture}: choose one of {', '.join(ARCHITECTURES)}")
    for what, value, low in (
        ("--epochs", epochs if epochs is not None else 1, 1),
        ("--batch-size", batch_size, 1),
        ("--step-size", step_size, 1),
    ):
        if value < low:
            raise InputError(f"{what} {value}: must be at least {low}")
    if not lr > 0:
        raise InputError(f"--lr {lr}: must be positive")
    ranks, torch_device = _start_distributed(device)
    out = Path(out_dir) if out_dir else ImageSettings().data_dir.expanduser().resolve() / "detectors"
    folder = out / name
    checkpoint_path = folder / CHECKPOINT
    with psycopg.connect(url) as conn:
        dataset_id, labels = dataset_row(conn, dataset)
        stored = read_split(conn, dataset, ("train", "val"))
    if not stored.items["train"]:
        raise InputError(f"dataset {dataset}: the train split is empty")
    asked = _parameters(
        epochs=epochs or DEFAULT_EPOCHS,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        step_size=step_size,
        gamma=gamma,
        warmup_iters=warmup_iters,
        min_size=min_size or DEFAULT_OPTIONS["min_size"],
        max_size=max_size or DEFAULT_OPTIONS["max_size"],
        amp=amp,
        seed=seed,
        world_size=ranks.world,
        dataset=stored.name,
    )
    run_id = 0
    if ranks.main:
        run_id, params, architecture = _open_run(url, name, dataset_id, architecture, labels, asked, resume)
        if resume and epochs is not None and epochs != params.get("epochs"):
            params = {**params, "epochs": epochs}
            with psycopg.connect(url) as conn:
                conn.execute(
                    "UPDATE streetaudit.detector_run SET parameters = %s WHERE id = %s",
                    (Jsonb(params), run_id),
                )
    _barrier(ranks)
    if not ranks.main:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT parameters, architecture FROM streetaudit.detector_run WHERE name = %s", (name,)
            ).fetchone()
        params, architecture = row if row else (asked, architecture)
    try:
        return _run(
            url,
            run_id,
            name,
            architecture,
            labels,
            stored,
            params,
            ranks,
            torch_device,
            folder,
            checkpoint_path,
            resume=resume,
            workers=workers,
            progress=progress and ranks.main,
            on_epoch=on_epoch,
        )
    except KeyboardInterrupt:
        if ranks.main:
            _close_run(url, run_id, "stopped", "interrupted; continue with --resume")
        raise
    except BaseException as error:
        if ranks.main:
            _close_run(url, run_id, "failed", f"{type(error).__name__}: {error}"[:1000])
        if isinstance(error, BackendError):
            raise InputError(str(error)) from None
        raise


def _run(
    url: str,
    run_id: int,
    name: str,
    architecture: str,
    labels: list[str],
    stored,
    params: dict,
    ranks: Ranks,
    device: torch.device,
    folder: Path,
    checkpoint_path: Path,
    *,
    resume: bool,
    workers: int | None,
    progress: bool,
    on_epoch: Callable[[dict], None] | None,
) -> TrainReport:
    seed = int(params["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    start_weights, start_backbone = library_weights(
        architecture, params.get("weights"), params.get("weights_backbone")
    )
    options = {"min_size": int(params["min_size"]), "max_size": int(params["max_size"])}
    detector = build_detector(
        architecture,
        labels,
        weights=start_weights,
        weights_backbone=start_backbone,
        trainable_layers=params.get("trainable_backbone_layers"),
        options=options,
    )
    model = detector.model.to(device)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        trained,
        lr=float(params["lr"]),
        momentum=float(params["momentum"]),
        weight_decay=float(params["weight_decay"]),
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, int(params["step_size"]), float(params["gamma"]))
    scaler = torch.amp.GradScaler("cuda") if params.get("amp", True) and device.type == "cuda" else None
    history: list[dict] = []
    start = 0
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        start = int(state["epoch"])
    resumed_from = start

    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    network = getattr(model, "module", model)

    augment = Augment()
    train_set = DetectionImages(stored.items["train"], augment, photometric=False)
    sampler: Sampler
    if ranks.world > 1:
        sampler = DistributedSampler(train_set, num_replicas=ranks.world, rank=ranks.rank, seed=seed)
    else:
        generator = torch.Generator()
        sampler = RandomSampler(train_set, generator=generator)
    n_workers = default_workers(device, ranks.world) if workers is None else workers
    loader = DataLoader(
        train_set,
        batch_size=int(params["batch_size"]),
        sampler=sampler,
        num_workers=n_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        # Each rank's shard (DistributedSampler pads them to one length): every rank runs the
        # same number of batches, so none waits in an all_reduce the others never reach.
        drop_last=len(sampler) > int(params["batch_size"]),
        persistent_workers=False,
    )
    warmup = params.get("warmup_iters")
    warmup_iters = min(1000, len(loader) - 1) if warmup is None else int(warmup)
    epochs = int(params["epochs"])
    report = TrainReport(
        run_id, name, architecture, "running", epochs, resumed_from, checkpoint=str(checkpoint_path)
    )
    train_seconds, train_images = 0.0, 0
    started = time.perf_counter()
    with _progress(progress) as bar:
        for epoch in range(start, epochs):
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            else:
                generator.manual_seed(seed + epoch)  # the same order per epoch after a resume
            lr = optimizer.param_groups[0]["lr"] if epoch else float(params["lr"])
            total, batches, seconds, cpu_seconds = train_one_epoch(
                model,
                optimizer,
                loader,
                device,
                epoch,
                scaler=scaler,
                warmup_iters=warmup_iters,
                augment=augment,
                bar=bar,
            )
            scheduler.step()
            loss = _mean_over_ranks(total, batches, ranks, device)
            train_seconds += seconds
            report.cpu_seconds += cpu_seconds
            train_images += batches * int(params["batch_size"]) * ranks.world
            if ranks.main:
                row = {
                    "epoch": epoch + 1,
                    "train_loss": loss,
                    "val_map": None,
                    "val_map50": None,
                    "learning_rate": lr,
                    "seconds": seconds,
                }
                if stored.items["val"]:
                    scores, _ = score_items(
                        network, stored.items["val"], labels, device, batch_size=int(params["batch_size"])
                    )
                    if not math.isnan(scores.map):
                        row.update(val_map=scores.map, val_map50=scores.map50)
                history.append(row)
                _save_checkpoint(
                    checkpoint_path,
                    {
                        "format": "streetaudit-detector-checkpoint",
                        "run": name,
                        "architecture": architecture,
                        "labels": labels,
                        "parameters": params,
                        "epoch": epoch + 1,
                        "model": {k: v.detach().cpu() for k, v in network.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else {},
                        "rng": _rng_state(),
                        "history": history,
                    },
                )
                _store_epochs(url, run_id, history, checkpoint_path)
                bar.console.log(
                    f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, val mAP "
                    + (
                        f"{row['val_map']:.3f} (mAP@.5 {row['val_map50']:.3f})"
                        if row["val_map"] is not None
                        else "–"
                    )
                    + f", lr {lr:.2g}, {seconds:.1f} s"
                ) if progress else None
                if on_epoch is not None:
                    on_epoch(row)
            _barrier(ranks)
    report.history = history
    report.images_per_s = train_images / train_seconds if train_seconds > 0 else 0.0
    report.images = train_images
    report.seconds = time.perf_counter() - started
    if history:
        last = history[-1]
        report.train_loss, report.val_map, report.val_map50 = (
            last["train_loss"],
            last["val_map"],
            last["val_map50"],
        )
    if ranks.main:
        final = Detector(network, architecture, labels, options)
        detector_path = save_detector(
            folder / f"{name}.pt", final, run=name, dataset=stored.name, epochs=epochs
        )
        figure = plot_history(history, folder / "training.png", f"{name}: {architecture} on {stored.name}")
        with psycopg.connect(url) as conn:
            model_id = register_detector(conn, name, detector_path, final, {**params, "run": name})
        _close_run(url, run_id, "finished", None, model_id=model_id, weights_uri=str(detector_path))
        report.model_id, report.detector, report.figure = model_id, str(detector_path), str(figure)
    report.status = "finished"
    _barrier(ranks)
    return report


train_flow = flow(name="detect-train", log_prints=True)(train)
