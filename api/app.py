"""The app object for `uvicorn streetaudit.api.app:app` (and `streetaudit serve`).

The database is STREETAUDIT_API_DATABASE_URL, else STREETAUDIT_DATABASE_URL, else the
private cluster; connections act as the reader role (STREETAUDIT_API_ROLE).
"""

from __future__ import annotations

from streetaudit.api.factory import create_app
from streetaudit.api.settings import ApiSettings
from streetaudit.sql.connect import database_url

settings = ApiSettings()
app = create_app(settings.database_url or database_url(), settings)
