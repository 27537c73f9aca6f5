"""The app object for `uvicorn streetaudit.api.app:app` (and `streetaudit serve`).

The database is STREETAUDIT_API_DATABASE_URL, else STREETAUDIT_DATABASE_URL, else the
private cluster's read-only role; the app refuses to start as a user that could write.
"""

from __future__ import annotations

from streetaudit.api.database import api_database_url
from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings

settings = ApiSettings()
app = create_app(api_database_url(settings), settings)
