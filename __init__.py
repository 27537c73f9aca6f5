"""streetaudit: audit a city's streetscape from street-view imagery, with PostGIS at the centre."""

__version__ = "0.1.0"
