"""The colour ramps of our maps, defined once: /style.json (MapLibre), /{layer}.qml (QGIS)
and /ramps.json, which the /map page can read instead of its own copy.

A client that styles our layers differently from /map shows the same street in two
colours, so every style is written from these numbers. An element's ramp spans 0 to its
largest value over the heritage areas and the rest of the city (area_stats' `<element>_max`):
fixed shares would paint a scarce element like car or greenery in one colour. A std ramp
spans half that. ELO starts at 1500 and a campaign spreads images over about ±200; the ramp
clamps beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
NO_DATA = "#bbbbbb"
AREA = "#d9480f"
BACKGROUND = "#f4f1ea"
DEFAULT_MAX = 0.6  # an element's ramp top when no area has a value yet
ELO_LOW, ELO_HIGH = 1300.0, 1700.0
STATISTICS = ("mean", "std")


@dataclass(frozen=True)
class Ramp:
    """Linear from `low` to `high` through `colours`, clamped at both ends; NULL is NO_DATA."""

    attribute: str
    low: float
    high: float
    colours: tuple[str, ...] = VIRIDIS

    def stops(self) -> list[tuple[float, str]]:
        n = len(self.colours) - 1
        return [(self.low + (self.high - self.low) * i / n, c) for i, c in enumerate(self.colours)]

    def maplibre(self) -> list:
        """A MapLibre expression, as map.js builds it."""
        stops: list = [v for stop in self.stops() for v in stop]
        return [
            "case",
            ["==", ["get", self.attribute], None],
            NO_DATA,
            ["interpolate", ["linear"], ["to-number", ["get", self.attribute]], *stops],
        ]

    def qgis(self) -> str:
        """A QGIS expression giving the same colour (create_ramp wants positions 0..1)."""
        span = self.high - self.low
        positions = ", ".join(f"{(v - self.low) / span!r}, '{c}'" for v, c in self.stops())
        field = '"' + self.attribute.replace('"', '""') + '"'
        return (
            f"CASE WHEN {field} IS NULL THEN '{NO_DATA}' ELSE ramp_color(create_ramp(map({positions})), "
            f"min(1, max(0, ({field} - {self.low!r}) / {span!r}))) END"
        )

    def as_json(self) -> dict:
        return {"attribute": self.attribute, "low": self.low, "high": self.high, "stops": self.stops()}


def element_top(observed_max: float | None, statistic: str) -> float:
    top = observed_max if observed_max is not None and observed_max > 0 else DEFAULT_MAX
    return top / 2 if statistic == "std" else top


def road_ramp(element: str, statistic: str, observed_max: float | None) -> Ramp:
    return Ramp(f"{element}_{statistic}", 0.0, element_top(observed_max, statistic))


def point_ramp(element: str, observed_max: float | None) -> Ramp:
    return Ramp(element, 0.0, element_top(observed_max, "mean"))


def elo_ramp() -> Ramp:
    return Ramp("elo", ELO_LOW, ELO_HIGH)
