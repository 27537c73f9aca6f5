"""What a road or area load is told: one parameter list per loader, shared by every entry point.

`roads load`, `areas load`, `run pipeline` (as `--road-…` options), the `roads`, `areas` and
`pipeline` flows and the deployments in prefect.yaml all take these models, so an option
added here reaches all of them; a pipeline that reloaded a file with fewer options than the
first load had silently wiped its names and kinds. Kept free of heavy imports: the CLI builds
its options from these classes at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _blank_is_none(value):
    if isinstance(value, str) and "{{" in value and "}}" in value:
        # prefect.yaml fills "{{ $VARIABLE }}" at `prefect deploy`; an unset one stays as it is.
        raise ValueError(f"holds the unfilled placeholder {value}: set that variable before `prefect deploy`")
    return None if isinstance(value, str) and not value.strip() else value


def _comma_list(value):
    value = _blank_is_none(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] or None
    return value


class LoadOptions(BaseModel):
    """Common to every vector-file load; a stage's options model is one of these subclasses."""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(None, description="File to load.")
    layer: str | None = Field(None, description="Layer to read (default: the first).")
    source: str | None = Field(
        None, description="Source name; reloading a source replaces what it holds. Default: the file path."
    )

    @field_validator("path", "layer", "source", mode="before")
    @classmethod
    def _blank(cls, value):
        return _blank_is_none(value)

    def changed_fields(self) -> list[str]:
        """Options set to something other than their default (besides the path)."""
        defaults = type(self)()
        return [
            name
            for name in type(self).model_fields
            if name != "path" and getattr(self, name) != getattr(defaults, name)
        ]


class RoadLoading(LoadOptions):
    """Options of `streetaudit.flows.roads.load_roads` (a test keeps the two in step)."""

    path: Path | None = Field(None, description="GeoJSON, GeoPackage, Shapefile or OSM PBF (highway ways).")
    layer: str | None = Field(None, description="Layer to read (default: the first; 'lines' for OSM).")
    name_field: str | None = Field(None, description="Field with the road name ('name' for OSM).")
    kind_field: str | None = Field(None, description="Field with the road class ('highway' for OSM).")
    kinds: list[str] | None = Field(
        None, description="Keep only these kinds, comma-separated (e.g. primary,residential)."
    )
    source: str | None = Field(
        None, description="Source name; reloading a source replaces its roads. Default: the file path."
    )
    force: bool = Field(
        False,
        description="Reload even when it would take names or kinds from most of the source's roads, "
        "or delete roads (gone from the file) whose points hold images.",
    )

    @field_validator("name_field", "kind_field", mode="before")
    @classmethod
    def _blank_field(cls, value):
        return _blank_is_none(value)

    @field_validator("kinds", mode="before")
    @classmethod
    def _split_kinds(cls, value):
        return _comma_list(value)


class AreaLoading(LoadOptions):
    """Options of `streetaudit.flows.areas.load_areas` (a test keeps the two in step)."""

    path: Path | None = Field(None, description="Polygon file (GeoJSON, GeoPackage, Shapefile).")
    name_field: str = Field("name", description="Field with the area name.")
    kind: str = Field("core", description="Kind given to every area (heritage core by default).")
    kind_field: str | None = Field(None, description="Field with a per-area kind, overriding --kind.")
    source: str | None = Field(
        None, description="Source name; reloading replaces its areas. Default: the file path."
    )

    @field_validator("kind_field", mode="before")
    @classmethod
    def _blank_field(cls, value):
        return _blank_is_none(value)
