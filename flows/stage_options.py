"""What each stage after loading is told: one options model per stage, shared by every entry point.

Like `load_options` for roads and areas: the stage's command (`points densify`, `collect`,
`images clean`, `segment`, `stats refresh`), the `run pipeline` command (as `--points-…`,
`--collect-…`, … options), the pipeline flow and the deployments in prefect.yaml take these
models, and the stage function's keyword parameters carry the same names and defaults (a test,
tests/test_stage_options.py, walks them all). Kept free of heavy imports: the CLI builds its
options from these classes at import time, before Prefect or torch are loaded.

Values a person types arrive as text: lists comma-separated, sizes as WIDTHxHEIGHT; the
validators here turn them into what the stage functions take.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The stage names in pipeline order; `roads` and `areas` take load_options' models. predict and
# explain need a trained detector (`detect train`), so the pipeline runs them only when asked.
STAGES = ("roads", "areas", "points", "collect", "clean", "segment", "predict", "explain", "stats")
DEFAULT_STAGES = tuple(s for s in STAGES if s not in ("predict", "explain"))
# The `run pipeline` option prefix of each stage's options (`--road-name-field`, `--collect-limit`).
PREFIXES = {
    "roads": "road-",
    "areas": "area-",
    "points": "points-",
    "collect": "collect-",
    "clean": "clean-",
    "segment": "segment-",
    "predict": "predict-",
    "explain": "explain-",
    "stats": "stats-",
}


def image_size(value, option: str = "--size") -> tuple[int, int]:
    """`WIDTHxHEIGHT` (or a (width, height) pair) as (width, height): the one parser for every
    size option; models that want (height, width) swap it where they are called."""
    from streetaudit.flows.errors import InputError

    if isinstance(value, (tuple, list)):
        return tuple(value)  # pydantic checks the two ints
    width, sep, height = str(value).lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InputError(f"{option} must look like 1024x512 (WIDTHxHEIGHT), got {value!r}")
    return int(width), int(height)


def comma_list(value):
    """'a,b' -> ['a', 'b']; '' -> [] (a list option given empty means none)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class StageOptions(BaseModel):
    """Options of one stage; a field not given keeps the stage function's default."""

    model_config = ConfigDict(extra="forbid")

    def changed_fields(self) -> list[str]:
        defaults = type(self).model_construct()
        return [name for name in type(self).model_fields if getattr(self, name) != getattr(defaults, name)]


class PointsOptions(StageOptions):
    """Keywords of `streetaudit.flows.points.densify`."""

    interval: float = Field(30.0, description="Metres between sample points along each road (1 to 100000).")
    dedupe_within: float = Field(
        1.0,
        description="Drop a point when a point of an earlier-loaded road lies within this many metres "
        "(0: keep all; at most 50).",
    )
    srid: int | None = Field(None, description="Metric CRS to measure in (default: each road's UTM zone).")
    prune: bool = Field(
        False,
        description="DELETE retired points with their images, segmentations and image files (says how many).",
    )
    full: bool = Field(
        False,
        description="Densify every road, even when the roads have only grown since the last run "
        "(then only the new roads are densified, with the same result).",
    )


class CollectOptions(StageOptions):
    """Keywords of `streetaudit.flows.collect.collect` (besides `progress`, which only the CLI shows)."""

    provider: str | None = Field(
        None,
        description="baidu, google, mapillary, synthetic, or folder:/path (keys from STREETAUDIT_* variables).",
    )
    headings: list[float] = Field(
        [0.0, 90.0, 180.0, 270.0], description="Compass headings of the views, comma-separated degrees."
    )
    pitch: float = Field(0.0, description="Vertical angle of the views in degrees.")
    fov: float = Field(90.0, description="Horizontal field of view in degrees.")
    size: tuple[int, int] = Field(
        (1024, 512), description="Image size WIDTHxHEIGHT (Baidu serves at most 1024x512)."
    )
    limit: int | None = Field(
        None, description="Collect only N points, spread over the city (same N on reruns)."
    )
    where_area: str | None = Field(None, description="Only points inside the heritage area of this name.")
    concurrency: int = Field(8, description="Requests in flight at once (1 to 1000).")
    rate: float | None = Field(None, description="At most R requests per second (token bucket).")
    retry_errors: bool = Field(False, description="Fetch views that failed before again.")
    recheck_missing: bool = Field(False, description="Ask again for views the provider had no imagery for.")
    relative_headings: list[float] | None = Field(
        None,
        description="Views relative to the road instead of --headings, comma-separated degrees: 0 ahead, "
        "90 right, 180 behind, 270 left of the road's bearing at each point (computed in PostGIS).",
    )

    @field_validator("headings", "relative_headings", mode="before")
    @classmethod
    def _headings(cls, value, info):
        from streetaudit.flows.errors import InputError

        if value is None and info.field_name == "relative_headings":
            return None
        try:
            return [float(v) for v in comma_list(value)]
        except (TypeError, ValueError):
            flag = "--" + info.field_name.replace("_", "-")
            raise InputError(f"{flag} must be comma-separated numbers, got {value!r}") from None

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value):
        return image_size(value, "--size")


class CleanOptions(StageOptions):
    """Keywords of `streetaudit.flows.clean.clean_images`."""

    exclude_months: list[int] = Field(
        [11, 12, 1, 2, 3], description="Exclude views captured in these months (snow, ice), comma-separated."
    )
    min_bytes: int = Field(5000, description="Exclude files smaller than this many bytes.")
    undo: bool = Field(False, description="Restore every excluded view to ok (and exclude nothing).")
    workers: int = Field(4, description="Threads decoding the image files.")

    @field_validator("exclude_months", mode="before")
    @classmethod
    def _months(cls, value):
        from streetaudit.flows.errors import InputError

        try:
            return [int(float(v)) for v in comma_list(value)]
        except (TypeError, ValueError):
            raise InputError(
                f"--exclude-months must be comma-separated month numbers, got {value!r}"
            ) from None


class SegmentOptions(StageOptions):
    """Keywords of `streetaudit.flows.segment.segment` (besides `progress`)."""

    model: str | None = Field(
        None,
        description="hf: hub id or checkpoint folder (default nvidia/segformer-b0-finetuned-cityscapes-1024-1024); "
        "torchvision: .pth file or URL; mmseg: config .py; masks: folder of label maps (default: beside the images).",
    )
    backend: str = Field(
        "hf",
        description="hf (transformers), torchvision (FCN/DeepLabV3/LR-ASPP), mmseg (OpenMMLab extra), "
        "masks (import label-map PNGs).",
    )
    batch_size: int = Field(8, description="Images per forward pass.")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N.")
    limit: int | None = Field(None, description="Segment at most N images in this run.")
    save_masks: bool = Field(
        False,
        description="Store each predicted label map as a PNG of class ids coloured by the label set's palette (mask_uri; the map's overlay).",
    )
    terrain: bool = Field(
        False, description="Count terrain (ground vegetation: grass, soil) as greenery; a separate model row."
    )
    labels: str | None = Field(
        None,
        description="Class names: cityscapes, ade20k, mapillary-vistas, a text file (one per line) or a "
        "comma list. Default: the checkpoint's own (hf, mmseg), cityscapes (torchvision, masks).",
    )
    arch: str | None = Field(
        None,
        description="torchvision architecture, e.g. deeplabv3_resnet50, fcn_resnet101, lraspp_mobilenet_v3_large.",
    )
    checkpoint: str | None = Field(None, description="mmseg weights file (.pth) for the --model config.")
    mask_dir: str | None = Field(
        None, description="masks: folder of label maps named IMAGESTEM.labels.png or IMAGESTEM.png."
    )
    input_size: tuple[int, int] | None = Field(
        None, description="Resize images to WIDTHxHEIGHT for the model (default: the checkpoint's processor)."
    )
    cache_dir: str | None = Field(None, description="Where hub weights are cached (default: HF_HOME).")
    workers: int | None = Field(
        None, description="DataLoader processes decoding images (default: by device and CPU count)."
    )
    masks_dir: str | None = Field(
        None, description="Where --save-masks writes (default: STREETAUDIT_DATA_DIR/masks)."
    )
    retry_failed: bool = Field(
        False, description="Segment again images recorded as failed (corrupt) for this model."
    )
    provider: str | None = Field(
        None, description="Segment only this provider's images (statistics use one provider; default: all)."
    )

    @field_validator("input_size", mode="before")
    @classmethod
    def _input_size(cls, value):
        return None if value is None else image_size(value, "--input-size")


class StatsOptions(StageOptions):
    """Keywords of `streetaudit.flows.stats.refresh_stats`."""

    model: str | None = Field(None, description="Segmentation model id or name (default: the most recent).")
    provider: str | None = Field(
        None,
        description="Use only this provider's images (default: the one with the most ok images the model "
        "segmented; views of different providers are never averaged).",
    )
    complete_only: bool = Field(
        False,
        description="Use only points whose every recorded view is ok and segmented (n_images = n_views).",
    )
    holm: str = Field(
        "elements",
        description="Holm family: elements (the six of each comparison) or all (every area x element; "
        "they share one rest group).",
    )
    permutations: int = Field(
        2000, description="Street reassignments of the street-level permutation test (99 to 100000)."
    )
    full: bool = Field(
        False,
        description="Recompute everything, even when nothing changed since the last refresh of this "
        "selection or only some points did (by default such a refresh leaves the published statistics "
        "as they are, or recomputes only what the changed points reach).",
    )


DETECTOR_HELP = "Detector: a model name or id (from `detect train`), or a detector file (.pt)."
AREA_HELP = "Only images of points inside this heritage area (name or id)."


class PredictOptions(StageOptions):
    """Keywords of `streetaudit.flows.detect_predict.predict` (besides `progress`)."""

    model: str | None = Field(None, description=DETECTOR_HELP)
    batch_size: int = Field(8, description="Images per forward pass.")
    score_threshold: float = Field(0.3, description="Keep detections scoring at least this (0-1).")
    limit: int | None = Field(None, description="Predict at most N images in this run.")
    where_area: str | None = Field(None, description=AREA_HELP)
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N.")
    workers: int | None = Field(
        None,
        description="DataLoader processes decoding images (default: none beside a CPU model, "
        "which needs the cores; by CPU count beside a GPU).",
    )
    backend: str = Field(
        "torchvision",
        description="torchvision (detectors of `detect train`) or mmdet (an mmdetection config and "
        "checkpoint; optional openmmlab extra, README 'OpenMMLab backend').",
    )
    config: str | None = Field(None, description="--backend mmdet: the mmdet config file (.py).")
    checkpoint: str | None = Field(None, description="--backend mmdet: the checkpoint (.pth, path or URL).")


class ExplainOptions(StageOptions):
    """Keywords of `streetaudit.flows.explain.explain` (besides `progress`)."""

    model: str | None = Field(None, description=DETECTOR_HELP)
    method: str = Field(
        "gradcam",
        description="gradcam, gradcam++, eigencam (gradient-free) or hirescam (gradient x activation; "
        "use it when gradcam maps come out empty, as they can on small detectors).",
    )
    limit: int | None = Field(
        None, description="Explain at most N images (those with most detections first)."
    )
    target: str = Field("boxes", description="What to explain: boxes (the detector's own boxes).")
    score_threshold: float = Field(0.3, description="Boxes scoring at least this are explained.")
    where_area: str | None = Field(None, description=AREA_HELP)
    redo: bool = Field(False, description="Compute again images already explained (rows replaced).")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N.")


class TrainOptions(StageOptions):
    """Keywords of `streetaudit.flows.detect_train.train` (besides `progress`); name and dataset are required."""

    name: str | None = Field(
        None, description="Name of the run; the trained detector is registered as a model of this name."
    )
    dataset: str | None = Field(
        None, description="Stored split to train on (name or id, from `detect split`)."
    )
    architecture: str = Field(
        "fasterrcnn_resnet50_fpn_v2", description="Detector architecture (listed above)."
    )
    weights: str | None = Field(
        "default",
        description="Start from: default (COCO weights of the detector where the library has them, else ImageNet weights of its backbone; downloaded once, cached under TORCH_HOME), none (random), a torchvision weights name (COCO_V1), or a detector file (.pt) from an earlier run (other labels: its class head is new).",
    )
    weights_backbone: str | None = Field(
        None,
        description="ImageNet backbone weights (DEFAULT, IMAGENET1K_V1, none) when --weights gives none.",
    )
    trainable_backbone_layers: int | None = Field(
        None, description="Backbone stages to train (0-5; default: torchvision's, 3 with pretrained weights)."
    )
    epochs: int | None = Field(
        None, description="Epochs (default 30 for a new run; with --resume: the run's own)."
    )
    batch_size: int = Field(8, description="Images per batch per process (the Harbin study: 8).")
    lr: float = Field(0.01, description="Initial learning rate of SGD (the study: 0.01).")
    momentum: float = Field(0.9, description="SGD momentum.")
    weight_decay: float = Field(1e-4, description="SGD weight decay.")
    step_size: int = Field(
        10, description="Divide the learning rate by 1/--gamma every this many epochs (the study: 10)."
    )
    gamma: float = Field(0.1, description="Learning-rate factor per step.")
    warmup_iters: int | None = Field(
        None,
        description="Batches of linear learning-rate warm-up in the first epoch (default min(1000, batches - 1)).",
    )
    min_size: int | None = Field(
        None,
        description="Shorter image side the model resizes to (default 512: 1024×512 panoramas stay as they are).",
    )
    max_size: int | None = Field(None, description="Longest image side after resizing (default 1024).")
    device: str = Field(
        "auto",
        description="auto (CUDA when available), cpu, cuda or cuda:N. Under torchrun: one GPU per process.",
    )
    amp: bool = Field(True, description="Mixed precision with a gradient scaler (CUDA only; ignored on CPU).")
    workers: int | None = Field(
        None,
        description="DataLoader processes per training process (default: 0 on CPU, up to 8 beside a GPU).",
    )
    seed: int = Field(0, description="Seed of weights, batch order and augmentation.")
    out_dir: str | None = Field(
        None,
        description="Folder for the run's checkpoint, detector file and figure (default STREETAUDIT_DATA_DIR/detectors).",
    )
    resume: bool = Field(
        False, description="Continue the run --name from its last checkpoint, with its stored parameters."
    )
