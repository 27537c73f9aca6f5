"""What /points/{id} and /map/config answer, for /docs.

api.point_detail and api.map_ranges (sql/post/035_point_photos.sql) build the JSON; these
models describe it, and tests/test_api_photos.py checks that a served answer has exactly
their fields.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Shares(BaseModel):
    building: float
    road: float
    sky: float
    greenery: float
    sidewalk: float
    car: float


class RoadRef(BaseModel):
    road_id: int
    name: str | None
    kind: str | None


class AreaRef(BaseModel):
    area_id: int
    name: str
    kind: str = Field(description="core, or another kind of heritage area")


class View(BaseModel):
    image_id: int
    provider: str
    pano_id: str | None
    heading: float
    pitch: float
    fov: float
    width: int | None
    height: int | None
    captured_at: str | None
    shares: Shares | None = Field(description="From the stats model; null: not segmented by it")
    mask: bool = Field(description="A segmentation mask is stored (segment --save-masks)")
    url: str | None = Field(description="images/{id}.jpg, relative; null: STREETAUDIT_SERVE_IMAGES forbids")
    thumb_url: str | None
    mask_url: str | None


class PointRating(BaseModel):
    image_id: int
    elo: float
    bt: float
    bt_se: float | None
    n_comparisons: int
    wins: int


class PointDetail(BaseModel):
    point_id: int
    lon: float
    lat: float
    retired: bool
    road: RoadRef
    areas: list[AreaRef]
    n_images: int | None = Field(
        description="Views the statistics average (ok and segmented by the stats model)"
    )
    shares: Shares | None = Field(description="The point's mean over those views, as in api.point_elements")
    model: str | None = Field(description="The stats model's name")
    views: list[View] = Field(description="Its ok views, by heading")
    ratings: list[PointRating] = Field(description="Pooled ratings of its images, when a campaign rated them")
    images_served: bool = Field(
        description="Whether this server serves any photos (STREETAUDIT_SERVE_IMAGES)"
    )


class Range(BaseModel):
    low: float = Field(description="2nd percentile")
    high: float = Field(description="98th percentile")
    n: int = Field(description="Values the percentiles come from")


class Basemap(BaseModel):
    type: str = Field(description="style (a MapLibre style URL) or raster (a {z}/{x}/{y} template)")
    url: str


class MapConfig(BaseModel):
    ranges: dict[str, Range] = Field(
        description="Keyed element_mean, element_std, element_point and *_n (n_points per road)"
    )
    basemap: Basemap | None = Field(description="STREETAUDIT_BASEMAP_STYLE; null: none (offline)")
    images_served: bool
    points_minzoom: int
