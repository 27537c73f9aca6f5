"""Commands for segmentation: `segment` and `run segment`."""

from __future__ import annotations

import typer

from streetaudit.cli.app import (
    app,
    console,
    exit_on_database_loss,
    image_size,
    quiet_prefect,
    ready_url,
    run_app,
)


# -- segment -----------------------------------------------------------------------------
def _segment_options(
    terrain: bool,
    label_set: str | None,
    arch: str | None,
    checkpoint: str | None,
    mask_dir: str | None,
    input_size: str | None,
    cache_dir: str | None,
    workers: int | None,
    masks_dir: str | None,
    retry_failed: bool,
) -> dict:
    """Only options the user set reach the backend, which refuses ones it does not take."""
    from streetaudit.flows.segment import check_input_size

    options: dict = {"terrain": True} if terrain else {}
    if input_size:
        width, height = image_size(input_size, "--input-size")
        options["input_size"] = check_input_size((height, width))  # the backends take (height, width)
    named = {
        "label_set": label_set,
        "arch": arch,
        "checkpoint": checkpoint,
        "mask_dir": mask_dir,
        "cache_dir": cache_dir,
        "workers": workers,
        "masks_dir": masks_dir,
    }
    options.update({k: v for k, v in named.items() if v is not None})
    if retry_failed:
        options["retry_failed"] = True
    return options


_SEGMENT_HELP = {
    "model": "hf: hub id or checkpoint folder (default nvidia/segformer-b0-finetuned-cityscapes-1024-1024); "
    "torchvision: .pth file or URL; mmseg: config .py; masks: folder of label maps (default: beside the images).",
    "backend": "hf (transformers), torchvision (FCN/DeepLabV3/LR-ASPP), mmseg (OpenMMLab extra), "
    "masks (import label-map PNGs).",
    "batch_size": "Images per forward pass.",
    "device": "auto (CUDA when available), cpu, cuda or cuda:N.",
    "limit": "Segment at most N images in this run.",
    "save_masks": "Store each predicted label map as a PNG of class ids (mask_uri).",
    "terrain": "Count terrain (ground vegetation: grass, soil) as greenery; a separate model row.",
    "label_set": "Class names: cityscapes, ade20k, mapillary-vistas, a text file (one per line) or a "
    "comma list. Default: the checkpoint's own (hf, mmseg), cityscapes (torchvision, masks).",
    "arch": "torchvision architecture, e.g. deeplabv3_resnet50, fcn_resnet101, lraspp_mobilenet_v3_large.",
    "checkpoint": "mmseg weights file (.pth) for the --model config.",
    "mask_dir": "masks: folder of label maps named IMAGESTEM.labels.png or IMAGESTEM.png.",
    "input_size": "Resize images to WIDTHxHEIGHT for the model (default: the checkpoint's processor).",
    "cache_dir": "Where hub weights are cached (default: HF_HOME).",
    "workers": "DataLoader processes decoding images (default: by device and CPU count).",
    "masks_dir": "Where --save-masks writes (default: STREETAUDIT_DATA_DIR/masks).",
    "retry_failed": "Segment again images recorded as failed (corrupt) for this model.",
}


@app.command("segment")
def segment_cmd(
    model: str = typer.Option(None, help=_SEGMENT_HELP["model"]),
    backend: str = typer.Option("hf", help=_SEGMENT_HELP["backend"]),
    batch_size: int = typer.Option(8, help=_SEGMENT_HELP["batch_size"]),
    device: str = typer.Option("auto", help=_SEGMENT_HELP["device"]),
    limit: int = typer.Option(None, help=_SEGMENT_HELP["limit"]),
    save_masks: bool = typer.Option(False, "--save-masks", help=_SEGMENT_HELP["save_masks"]),
    terrain: bool = typer.Option(False, "--terrain", help=_SEGMENT_HELP["terrain"]),
    label_set: str = typer.Option(None, "--labels", help=_SEGMENT_HELP["label_set"]),
    arch: str = typer.Option(None, help=_SEGMENT_HELP["arch"]),
    checkpoint: str = typer.Option(None, help=_SEGMENT_HELP["checkpoint"]),
    mask_dir: str = typer.Option(None, help=_SEGMENT_HELP["mask_dir"]),
    input_size: str = typer.Option(None, help=_SEGMENT_HELP["input_size"]),
    cache_dir: str = typer.Option(None, help=_SEGMENT_HELP["cache_dir"]),
    workers: int = typer.Option(None, help=_SEGMENT_HELP["workers"]),
    masks_dir: str = typer.Option(None, help=_SEGMENT_HELP["masks_dir"]),
    retry_failed: bool = typer.Option(False, "--retry-failed", help=_SEGMENT_HELP["retry_failed"]),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment collected images into building/road/sky/greenery/sidewalk/car shares. Idempotent.

    Exit status: 0 done; 2 bad input (nothing written); 3 the database went away (rows written
    are kept; rerun after `db up` to resume).
    """
    from streetaudit.flows.segment import segment

    options = _segment_options(
        terrain,
        label_set,
        arch,
        checkpoint,
        mask_dir,
        input_size,
        cache_dir,
        workers,
        masks_dir,
        retry_failed,
    )
    with exit_on_database_loss("segment"):
        report = segment(
            ready_url(),
            model=model,
            backend=backend,
            batch_size=batch_size,
            device=device,
            limit=limit,
            save_masks=save_masks,
            progress=progress,
            **options,
        )
    console.print(
        f"model {report.model_id} ({report.model_name}, {report.label_set}) on {report.device}: "
        f"{report.done} segmented, {report.skipped} already done, {report.failed} failed; "
        f"{report.images_per_s:.1f} images/s",
        highlight=False,
    )
    if report.vanished:
        console.print(
            f"  {report.vanished} images were deleted while segmenting (points re-densified?) and skipped"
        )
    for image_id, error in report.errors[:10]:
        console.print(f"  image {image_id}: {error}", highlight=False)


@run_app.command("segment")
def run_segment(
    model: str = typer.Option(None, help=_SEGMENT_HELP["model"]),
    backend: str = typer.Option("hf", help=_SEGMENT_HELP["backend"]),
    batch_size: int = typer.Option(8, help=_SEGMENT_HELP["batch_size"]),
    device: str = typer.Option("auto", help=_SEGMENT_HELP["device"]),
    limit: int = typer.Option(None, help=_SEGMENT_HELP["limit"]),
    save_masks: bool = typer.Option(False, "--save-masks", help=_SEGMENT_HELP["save_masks"]),
    terrain: bool = typer.Option(False, "--terrain", help=_SEGMENT_HELP["terrain"]),
    label_set: str = typer.Option(None, "--labels", help=_SEGMENT_HELP["label_set"]),
    arch: str = typer.Option(None, help=_SEGMENT_HELP["arch"]),
    checkpoint: str = typer.Option(None, help=_SEGMENT_HELP["checkpoint"]),
    mask_dir: str = typer.Option(None, help=_SEGMENT_HELP["mask_dir"]),
    input_size: str = typer.Option(None, help=_SEGMENT_HELP["input_size"]),
    workers: int = typer.Option(None, help=_SEGMENT_HELP["workers"]),
) -> None:
    """Segment images as the Prefect flow `segment`."""
    quiet_prefect()
    from streetaudit.flows.segment import segment_flow

    options = _segment_options(
        terrain, label_set, arch, checkpoint, mask_dir, input_size, None, workers, None, False
    )
    with exit_on_database_loss("segment"):
        segment_flow(
            ready_url(),
            model=model,
            backend=backend,
            batch_size=batch_size,
            device=device,
            limit=limit,
            save_masks=save_masks,
            options=options,
        )
