"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class StreetauditError(Exception):
    """Base for every error whose message alone tells the user what went wrong."""


class DatabaseSetupError(StreetauditError):
    """PostgreSQL or PostGIS is missing or the private cluster cannot start."""


class MigrationError(StreetauditError):
    """The database's schema history disagrees with the migration files."""
