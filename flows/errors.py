"""Errors caused by what the user gave us: a file, a row, a parameter."""

from streetaudit.sql.errors import StreetauditError


class InputError(StreetauditError):
    """Bad input; the message names the file, row or parameter and the reason."""
