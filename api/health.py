"""/health: the database answers and the statistics' data version."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    data_version: int | None
    model_id: int | None
    model_name: str | None
    ogc: bool
    map: bool


@router.get("/health", summary="Database reachable; data version and model", response_model=Health)
async def health(request: Request) -> JSONResponse:
    db = request.app.state.db
    db.forget_version()
    version = await db.version()
    return JSONResponse(
        {
            "status": "ok",
            "data_version": version.version,
            "model_id": version.model_id,
            "model_name": version.model_name,
            "ogc": request.app.state.ogc_enabled,
            "map": request.app.state.map_ready,
        },
        headers={"Cache-Control": "no-store"},
    )
