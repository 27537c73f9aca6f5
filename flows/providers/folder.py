"""`folder`: images already on disk, located by a CSV or by their EXIF GPS tags.

Give the folder as `--provider folder:/path/to/photos` (or STREETAUDIT_FOLDER_PATH). If it
holds `index.csv` (columns path, lon, lat, heading, captured_at; path relative to the CSV)
that is used; otherwise every JPEG's EXIF GPS position and GPSImgDirection are read. Each
image is matched to its nearest sample point within STREETAUDIT_FOLDER_RADIUS metres (a
PostGIS KNN query), and a view takes the image of its point whose heading is closest to the
requested one, within half the field of view. Images without a heading count as facing 0°.

A `missing` answer holds only for the folder as it was: its detail carries a fingerprint of
the folder (path, radius, every file's name, size and modification time), and a view whose
fingerprint differs — another folder, new or changed photos — is looked up again.
A photo whose EXIF date is unreadable (cameras write `0000:00:00 00:00:00`) is kept without a
capture time; one with impossible GPS values is ignored, like one without GPS.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from PIL import Image as PILImage

from streetaudit.flows.database_loss import CONNECT_OPTIONS
from streetaudit.flows.errors import InputError
from streetaudit.flows.providers.base import (
    Http,
    Image,
    NoImagery,
    Provider,
    ProviderConfigError,
    ProviderError,
    SamplePoint,
    View,
    looks_like_image,
)
from streetaudit.flows.providers.geometry import angle_between
from streetaudit.flows.providers.settings import ProviderSettings

INDEX_NAME = "index.csv"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

_NEAREST_POINT = """
SELECT i.n, p.id
FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS i(lon, lat, n)
CROSS JOIN LATERAL (
    SELECT s.id, s.geom FROM streetaudit.sample_point AS s
    WHERE s.retired_at IS NULL
    ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326) LIMIT 1
) AS p
WHERE ST_DWithin(p.geom::geography, ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326)::geography, %s)
"""


@dataclass(frozen=True)
class LocatedImage:
    path: Path
    lon: float
    lat: float
    heading: float | None
    captured_at: datetime | None


def _parse_time(value: str | None, where: str) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S",):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where}: captured_at {value!r} is not an ISO date/time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _exif_time(value: str | None) -> datetime | None:
    """A camera's date as written, or None: `0000:00:00`, blanks and garbage are common."""
    try:
        return _parse_time(value.strip("\x00 ") if isinstance(value, str) else None, "")
    except (InputError, ValueError):
        return None


def read_index(csv_path: Path) -> list[LocatedImage]:
    try:
        raw = csv_path.read_bytes()
    except OSError as error:
        raise InputError(f"{csv_path}: cannot read it ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            f"{csv_path} line {line}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    images = []
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "lon", "lat"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            where = f"{csv_path} row {row_number}"
            try:
                lon, lat = float(row["lon"]), float(row["lat"])
                heading = float(row["heading"]) % 360 if row.get("heading") else None
            except (TypeError, ValueError):
                raise InputError(f"{where}: lon, lat and heading must be numbers") from None
            if heading is not None and not math.isfinite(heading):
                raise InputError(f"{where}: heading must be a finite number of degrees")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise InputError(f"{where}: lon/lat out of range ({lon}, {lat})")
            path = (csv_path.parent / row["path"]).resolve()
            images.append(LocatedImage(path, lon, lat, heading, _parse_time(row.get("captured_at"), where)))
    return images


def _dms(value) -> float:
    d, m, s = (float(v) for v in value)
    return d + m / 60 + s / 3600


def read_exif(path: Path) -> LocatedImage | None:
    """GPS position, direction and time from EXIF; None when the file has no GPS tags."""
    try:
        with PILImage.open(path) as image:
            exif = image.getexif()
    except (OSError, SyntaxError):
        return None
    gps = exif.get_ifd(0x8825)
    if 2 not in gps or 4 not in gps:
        return None
    try:
        lat = _dms(gps[2]) * (-1 if gps.get(1) == "S" else 1)
        lon = _dms(gps[4]) * (-1 if gps.get(3) == "W" else 1)
        heading = float(gps[17]) % 360 if 17 in gps else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
        return None
    if heading is not None and not math.isfinite(heading):
        heading = None
    taken = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    return LocatedImage(path, lon, lat, heading, _exif_time(taken))


def folder_fingerprint(folder: Path, radius: float) -> str:
    """Changes when any file under the folder is added, removed, resized or touched."""
    digest = hashlib.sha256(f"{folder}\0{radius!r}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = path.stat()
        digest.update(f"\0{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def scan_folder(folder: Path) -> list[LocatedImage]:
    index = folder / INDEX_NAME
    if index.exists():
        return read_index(index)
    located = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in _IMAGE_SUFFIXES and (entry := read_exif(path)):
            located.append(entry)
    return located


class FolderProvider(Provider):
    name = "folder"
    uses_http = False

    def __init__(self, settings: ProviderSettings, folder: str | None = None):
        path = Path(folder) if folder else settings.folder_path
        if path is None:
            raise ProviderConfigError(
                "provider folder needs a folder: --provider folder:/path/to/photos or STREETAUDIT_FOLDER_PATH"
            )
        if not path.is_dir():
            raise ProviderConfigError(f"provider folder: {path} is not a folder")
        self.folder = path.resolve()
        self.radius = settings.folder_radius
        self.by_point: dict[int, list[LocatedImage]] = {}
        self.state: str | None = None

    def source_state(self) -> str | None:
        return self.state

    async def prepare(self, url: str) -> None:
        images = await asyncio.to_thread(scan_folder, self.folder)
        if not images:
            raise InputError(f"{self.folder}: no {INDEX_NAME} and no images with EXIF GPS positions")
        fingerprint = await asyncio.to_thread(folder_fingerprint, self.folder, self.radius)
        self.state = f"folder state {fingerprint}"
        with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
            rows = conn.execute(
                _NEAREST_POINT, ([i.lon for i in images], [i.lat for i in images], self.radius)
            ).fetchall()
        self.by_point = {}
        for n, point_id in rows:
            self.by_point.setdefault(point_id, []).append(images[n - 1])

    async def fetch(self, http: Http | None, point: SamplePoint, view: View) -> Image | NoImagery:
        candidates = [
            (angle_between(i.heading or 0.0, view.heading), str(i.path), i)
            for i in self.by_point.get(point.id, [])
            if angle_between(i.heading or 0.0, view.heading) <= view.fov / 2
        ]
        if not candidates:
            return NoImagery(
                f"folder: no image within {self.radius:g} m facing {view.heading:g}° ({self.state})"
            )
        chosen = min(candidates)[2]
        try:
            data = await asyncio.to_thread(chosen.path.read_bytes)
        except OSError as error:
            raise ProviderError(f"folder: cannot read {chosen.path}: {error.strerror}") from None
        extension = looks_like_image(data)
        if extension is None:
            raise ProviderError(f"folder: {chosen.path} is not a JPEG/PNG/WebP image")
        return Image(
            data=data,
            extension=extension,
            pano_id=chosen.path.name,
            captured_at=chosen.captured_at,
            lon=chosen.lon,
            lat=chosen.lat,
        )
