"""/label: the raters' box-drawing page and its endpoints.

As /rate, every endpoint takes the rater's personal token as `Authorization: Bearer …`
and does its work through one rating_api function (sql/post/070_label.sql) on the raters'
pool, which logs in as streetaudit_rater: the token is checked in the database on every
call (401 unknown, 403 revoked), and so are the boxes (400, naming the bad one). Images
are streamed only after rating_api.label_image accepted the token. Boxes are in pixels of
the stored image; when its row lacks the size, it is read from the file's header here.
"""

from __future__ import annotations

import io

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from streetaudit.api.errors import BadRequest, NotFound
from streetaudit.api.map import STATIC_DIR
from streetaudit.api.rating import RaterDatabase, bearer, image_response, read_image
from streetaudit.api.rating_models import ImageBoxes, LabelQueue, Saved

router = APIRouter(tags=["labelling"])
_MAX_BOXES = 1000


class Box(BaseModel):
    label: str = Field(..., min_length=1, max_length=100)
    x1: float
    y1: float
    x2: float
    y2: float


class Boxes(BaseModel):
    boxes: list[Box] = Field(..., max_length=_MAX_BOXES, description="In pixels of the stored image")


def _raters(request: Request) -> RaterDatabase:
    return request.app.state.rater_db


def _private(payload: object) -> JSONResponse:
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


async def _image(request: Request, token: str, image_id: int) -> dict:
    found = await _raters(request).call("label_image", token, image_id)
    if found is None:
        raise NotFound(f"image {image_id} is not in the campaign")
    return found


async def _size(image_id: int, found: dict) -> tuple[int, int]:
    if found.get("width") and found.get("height"):
        return found["width"], found["height"]
    data = await read_image(image_id, found["uri"])
    try:
        with Image.open(io.BytesIO(data)) as picture:
            return picture.size
    except OSError:
        raise BadRequest(f"image {image_id}: its file is not a picture this server can read") from None


@router.get("/label", summary="The raters' box-drawing page (open it with the personal link)")
async def label_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "label.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get(
    "/label/api/queue",
    summary="The rater's top images to box, best first, and the labels",
    response_model=LabelQueue,
)
async def queue(
    request: Request,
    n: int | None = Query(None, ge=1, le=5000, description="How many (default: the campaign's top_n)"),
    authorization: str | None = Header(None),
) -> JSONResponse:
    return _private(await _raters(request).call("label_queue", bearer(authorization), n))


@router.get("/label/api/images/{image_id}", summary="An image to box (valid token only)")
async def image(request: Request, image_id: int, authorization: str | None = Header(None)) -> Response:
    found = await _image(request, bearer(authorization), image_id)
    return await image_response(image_id, found["uri"])


@router.get(
    "/label/api/images/{image_id}/boxes",
    summary="The rater's current boxes on an image",
    response_model=ImageBoxes,
)
async def boxes(request: Request, image_id: int, authorization: str | None = Header(None)) -> JSONResponse:
    found = await _raters(request).call("label_boxes", bearer(authorization), image_id)
    if found is None:
        raise NotFound(f"image {image_id} is not in the campaign")
    return _private(found)


@router.put(
    "/label/api/images/{image_id}/boxes",
    summary="Replace the rater's boxes on an image",
    response_model=Saved,
)
async def save(
    request: Request, image_id: int, body: Boxes, authorization: str | None = Header(None)
) -> JSONResponse:
    token = bearer(authorization)
    width, height = await _size(image_id, await _image(request, token, image_id))
    payload = Jsonb([box.model_dump() for box in body.boxes])
    saved = await _raters(request).call("label_save", token, image_id, payload, width, height)
    return _private({"image": image_id, "saved": saved})
