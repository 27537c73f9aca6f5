"""What the rating endpoints answer, for /docs: the JSON the rating_api functions build.

The functions (sql/post/060_ratings.sql) own the payloads; these models describe them so
clients and the OpenAPI schema know every field. The endpoints pass the functions' JSON
through unchanged (with no-store headers), so a model that drifted from its function would
show in tests/test_api_openapi.py's comparison of documented and served fields.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Progress(BaseModel):
    done: int = Field(description="Choices made (left or right), not undone")
    skipped: int
    target: int = Field(description="Comparisons the campaign asks of each rater")


class CampaignInfo(BaseModel):
    strategy: str = Field(description="adaptive or random")
    area: str | None = Field(description="Heritage area the pool comes from (null: every core area)")
    target: int
    k: float = Field(description="ELO K factor")
    repeat_share: float = Field(description="Share of pairs repeated from other raters (agreement)")
    question: str
    pool: int = Field(description="Images in the campaign's pool")


class Session(BaseModel):
    rater: str
    progress: Progress
    campaign: CampaignInfo


class Pair(BaseModel):
    left: int | None = Field(description="Image id shown on the left (null: nothing left to judge)")
    right: int | None
    progress: Progress


class ChoiceResult(BaseModel):
    comparison: int = Field(description="Id of the stored comparison")
    progress: Progress


class Undone(BaseModel):
    left: int | None = Field(description="The undone pair, offered again (null: nothing to undo)")
    right: int | None
    undone: int | None = Field(None, description="Id of the comparison marked undone")
    progress: Progress


class RatingStatusOut(BaseModel):
    computed_at: str
    comparisons: int
    skipped: int
    undone: int
    images: int
    pool: int
    per_image_mean: float | None
    per_image_min: int
    raters: list[dict]
    split_half: float | None
    reliability: float | None = Field(description="Spearman–Brown corrected split-half reliability")
    lag: int
    lag_correlation: float | None
    repeated_pairs: int
    agreement: float | None
    stable: bool
    rule: str


class QueuedImage(BaseModel):
    id: int
    width: int | None
    height: int | None
    basis: str = Field(description="Why it is offered: the rater's own ELO, their choices, or the pool")
    boxes: int = Field(description="Boxes this rater has saved on it")


class LabelQueue(BaseModel):
    rater: str
    labels: list[str] = Field(description="Labels a box may take, in key order (1..9)")
    images: list[QueuedImage]


class StoredBox(BaseModel):
    id: int
    label: str
    x1: float = Field(description="Pixels of the stored image, top-left origin")
    y1: float
    x2: float
    y2: float
    source: str


class ImageBoxes(BaseModel):
    image: int
    width: int | None
    height: int | None
    boxes: list[StoredBox]


class Saved(BaseModel):
    image: int
    saved: int = Field(description="Boxes now current for this rater on the image")
