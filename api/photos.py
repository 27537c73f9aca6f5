"""/points/{id} and /images/{id}.jpg, /images/{id}/mask.png: the photos behind the map's points.

Everything is read through api.point_detail and api.image_file (sql/post/035_point_photos.sql)
on the reader's pool. The files are streamed only when STREETAUDIT_SERVE_IMAGES allows the
image's provider: a provider's licence, not the API, decides whether its images may be passed on.
"""

from __future__ import annotations

import colorsys
import io
from typing import Literal

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from streetaudit.api.dependencies import BIGINT
from streetaudit.api.errors import NotFound
from streetaudit.api.photo_models import PointDetail
from streetaudit.api.photo_settings import PhotoSettings
from streetaudit.api.rating import read_image

router = APIRouter(tags=["photos"])
THUMB_PX = 320
_CACHE = "public, max-age=86400"


def _photos(request: Request) -> PhotoSettings:
    return request.app.state.photo_settings


def _refused(provider: str | None = None) -> HTTPException:
    which = f"images of provider {provider!r} are" if provider else "images are"
    return HTTPException(
        403,
        f"{which} not served here: set STREETAUDIT_SERVE_IMAGES (all, or comma-separated providers) "
        "once the providers' licences allow passing their imagery on",
    )


@router.get(
    "/points/{point_id}",
    summary="A sample point: its views, shares, road, areas and ratings",
    response_model=PointDetail,
)
async def point(request: Request, point_id: int = Path(ge=0, le=BIGINT)) -> JSONResponse:
    async with request.app.state.db.pool.connection() as conn:
        row = await (await conn.execute("SELECT api.point_detail(%s)", (point_id,))).fetchone()
    if row is None or row[0] is None:
        raise NotFound(f"no sample point {point_id}")
    detail = row[0]
    settings = _photos(request)
    for view in detail["views"]:
        served = settings.allows(view["provider"])
        image = f"images/{view['image_id']}"
        view["url"] = f"{image}.jpg" if served else None
        view["thumb_url"] = f"{image}.jpg?size=thumb" if served else None
        view["mask_url"] = f"{image}/mask.png" if served and view["mask"] else None
    detail["images_served"] = settings.any
    return JSONResponse(detail, headers={"Cache-Control": f"max-age={request.app.state.settings.max_age}"})


async def _file(request: Request, image_id: int) -> tuple[str, str, str | None, str | None, int | None]:
    settings = _photos(request)
    if not settings.any:
        raise _refused()
    async with request.app.state.db.pool.connection() as conn:
        row = await (await conn.execute("SELECT * FROM api.image_file(%s)", (image_id,))).fetchone()
    if row is None:
        raise NotFound(f"no stored ok image {image_id}")
    if not settings.allows(row[0]):
        raise _refused(row[0])
    return row


def _not_modified(request: Request, etag: str | None) -> bool:
    return etag is not None and etag in request.headers.get("if-none-match", "")


def _jpeg(data: bytes, size: str) -> bytes:
    """The stored bytes when they are a JPEG already at full size, else re-encoded (thumbnail: 320 px wide)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        if size == "full" and opened.format == "JPEG":
            return data
        image = opened.convert("RGB")
        if size == "thumb":
            image.thumbnail((THUMB_PX, THUMB_PX * 4))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=82)
    return out.getvalue()


@router.get(
    "/images/{image_id}.jpg",
    summary="An ok image as JPEG (size=thumb: 320 px wide); only when STREETAUDIT_SERVE_IMAGES allows",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 403: {"description": "not allowed for this provider"}},
)
async def image(
    request: Request,
    image_id: int = Path(ge=0, le=BIGINT),
    size: Literal["full", "thumb"] = Query("full", description="full or thumb"),
) -> Response:
    _, uri, sha256, _, _ = await _file(request, image_id)
    etag = f'"{sha256}-{size}"' if sha256 else None
    headers = {"Cache-Control": _CACHE, **({"ETag": etag} if etag else {})}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = await read_image(image_id, uri)
    try:
        body = await anyio.to_thread.run_sync(_jpeg, data, size)
    except OSError:
        raise NotFound(f"image {image_id}: its stored file is not a readable image") from None
    return Response(body, media_type="image/jpeg", headers=headers)


def _fallback_palette() -> list[int]:
    """For label maps stored without colours (imported ones): a distinct hue per class id, 255 void."""
    colours = []
    for class_id in range(256):
        r, g, b = colorsys.hsv_to_rgb((class_id * 0.618033988749895) % 1.0, 0.6, 0.9)
        colours += [round(r * 255), round(g * 255), round(b * 255)]
    return colours


def _coloured_mask(data: bytes) -> bytes:
    """Masks saved by `segment --save-masks` carry the label set's palette and go out as they are."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as mask:
        if mask.mode == "P":
            return data
        ids = np.asarray(mask)
        image = Image.fromarray(np.where(ids > 255, 255, ids).astype(np.uint8), "L")
        image.putpalette(_fallback_palette())
        out = io.BytesIO()
        image.save(out, format="PNG", transparency=255)
    return out.getvalue()


@router.get(
    "/images/{image_id}/mask.png",
    summary="The image's segmentation as a coloured PNG (from `segment --save-masks`)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def mask(request: Request, image_id: int = Path(ge=0, le=BIGINT)) -> Response:
    _, _, _, mask_uri, model_id = await _file(request, image_id)
    if mask_uri is None:
        raise NotFound(f"image {image_id} has no stored mask: run `streetaudit segment --save-masks`")
    etag = f'"mask-{image_id}-{model_id}"'
    headers = {"Cache-Control": f"max-age={request.app.state.settings.max_age}", "ETag": etag}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = await read_image(image_id, mask_uri)
    try:
        body = await anyio.to_thread.run_sync(_coloured_mask, data)
    except OSError:
        raise NotFound(f"image {image_id}: its mask file is not a readable PNG") from None
    return Response(body, media_type="image/png", headers=headers)
