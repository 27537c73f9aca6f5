"""Commands for heritage-feature detectors: `detect train`, `detect evaluate`, `detect compare`, `detect runs`."""

from __future__ import annotations

import math

import typer
from rich.table import Table
from typer.core import TyperCommand

from streetaudit.cli.app import app, command_group, console, exit_on_database_loss, ready_url
from streetaudit.cli.options import model_options
from streetaudit.flows.stage_options import TrainOptions

detect_app = command_group(
    "Heritage-feature detectors: train on a stored split, evaluate with COCO mAP, compare architectures."
)
app.add_typer(detect_app, name="detect")


class _WithArchitectures(TyperCommand):
    """Lists the architectures with their summaries in --help, importing torch only then."""

    def format_help(self, ctx, formatter):
        from streetaudit.models.detectors import ARCHITECTURES, DEFAULT_ARCHITECTURE

        lines = [
            f"{name}{' (default)' if name == DEFAULT_ARCHITECTURE else ''}: {spec.summary}"
            for name, spec in ARCHITECTURES.items()
        ]
        if "Architectures:" not in (self.help or ""):
            self.help = (
                (self.help or "") + "\n\nArchitectures:\n\n" + "\n\n".join(f"• {line}" for line in lines)
            )
        return super().format_help(ctx, formatter)


@detect_app.command("train", cls=_WithArchitectures)
@model_options("train", TrainOptions, required=("name", "dataset"))
def detect_train(
    train: TrainOptions,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a detector on a stored split, validating with COCO mAP after every epoch.

    The Harbin study's schedule by default: batch 8, SGD momentum 0.9, lr 0.01 ×0.1 every 10
    epochs, with linear warm-up. A checkpoint is written every epoch; after a stop or a kill,
    the same command with --resume ends with the same number of epochs. Several GPUs:
    `torchrun --nproc-per-node 4 -m streetaudit.cli.main detect train …`.

    Exit status: 0 done; 2 bad input or a diverged loss; 3 the database went away
    (rerun with --resume).
    """
    from streetaudit.flows.detect_train import train as run_train

    with exit_on_database_loss("detect train"):
        report = run_train(ready_url(), **train.model_dump(), progress=progress)
    if report.model_id is None:  # a torchrun process other than rank 0
        return
    console.print(
        f"run {report.name} ({report.architecture}): {report.epochs} epochs"
        + (f" (resumed after {report.resumed_from})" if report.resumed_from else "")
        + f", train loss {_number(report.train_loss)}, val mAP {_number(report.val_map)}"
        f" (mAP@.5 {_number(report.val_map50)}), {report.images_per_s:.1f} training images/s",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"model {report.model_id}: {report.detector}; figure {report.figure}", highlight=False, soft_wrap=True
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


@detect_app.command("evaluate")
def detect_evaluate(
    model: str = typer.Option(..., help="Detector: model name, id or detector file."),
    dataset: str = typer.Option(..., help="Stored split (name or id)."),
    split: str = typer.Option("test", help="train, val or test."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    workers: int = typer.Option(None, help="DataLoader processes (default: 0 on CPU, up to 8 beside a GPU)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision (CUDA only)."),
) -> None:
    """COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP (pycocotools) of a model on a split; stored."""
    from streetaudit.flows.detect_evaluate import evaluate

    with exit_on_database_loss("detect evaluate"):
        r = evaluate(
            ready_url(), model, dataset, split, device=device, batch_size=batch_size, workers=workers, amp=amp
        )
    console.print(
        f"model {r.model_id} on {r.dataset}/{r.split} ({r.images} images): mAP {r.map:.3f}, "
        f"mAP@.5 {r.map50:.3f}, mAP@.75 {r.map75:.3f}; {r.images_per_s:.1f} images/s",
        highlight=False,
        soft_wrap=True,
    )
    for label, ap in r.per_class.items():
        console.print(f"  {label}: AP {_number(ap)}", highlight=False)


@detect_app.command("compare")
def detect_compare(
    dataset: str = typer.Option(..., help="Stored split (name or id)."),
    split: str = typer.Option("test", help="Split the evaluations ran on."),
) -> None:
    """One table of every model evaluated on the split (latest evaluation each), best mAP first."""
    from streetaudit.flows.detect_evaluate import compare

    rows = compare(ready_url(), dataset, split)
    if not rows:
        console.print(f"no evaluation on {dataset}/{split} yet: run `streetaudit detect evaluate`")
        return
    table = Table(title=f"detectors on {dataset}/{split}")
    for column in ("model", "architecture", "epochs", "mAP", "mAP@.5", "mAP@.75", "images/s", "images"):
        table.add_column(column, justify="left" if column in ("model", "architecture") else "right")
    for row in rows:
        table.add_row(
            row["model"],
            row["architecture"],
            "–" if row["epochs"] is None else str(row["epochs"]),
            _number(row["map"]),
            _number(row["map50"]),
            _number(row["map75"]),
            _number(row["images_per_s"], 1),
            str(row["images"]),
        )
    console.print(table)


@detect_app.command("runs")
def detect_runs() -> None:
    """Training runs, newest first: status, epochs done, last validation mAP, the model they made."""
    from streetaudit.flows.detect_evaluate import runs

    rows = runs(ready_url())
    if not rows:
        console.print("no training run yet: run `streetaudit detect train`")
        return
    table = Table(title="detector training runs")
    for column in ("name", "architecture", "dataset", "status", "epochs", "val mAP", "val mAP@.5", "model"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["architecture"],
            row["dataset"],
            row["status"] + (f" ({row['detail']})" if row["detail"] and row["status"] != "finished" else ""),
            f"{row['epochs_done']}/{row['epochs'] if row['epochs'] is not None else '?'}",
            _number(row["val_map"]),
            _number(row["val_map50"]),
            row["model"] or "–",
        )
    console.print(table)
