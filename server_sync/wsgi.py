"""The WSGI entry point for production: ``gunicorn -w 4 'server_sync.wsgi:app'``.

Production means several processes sharing one database, so the URL must be given:
without ``FIELDSYNC_DATABASE_URL`` gunicorn refuses to start (exit 4, "App failed to
load") rather than serve a SQLite file of its own choosing. ``fieldsync-server serve``
is the embedded default that picks a SQLite file.
"""

import os

from gunicorn.errors import AppImportError  # type: ignore[import-untyped]

from .app import DATABASE_URL_ENV, create_app

MISSING_URL = (
    f"{DATABASE_URL_ENV} is not set: the production server needs the database all "
    f"workers share, e.g. {DATABASE_URL_ENV}=postgresql+psycopg://USER@HOST/DATABASE "
    "(then `fieldsync-server db upgrade`); for one process on a SQLite file, run "
    "`fieldsync-server serve`"
)

if not os.environ.get(DATABASE_URL_ENV, "").strip():
    # gunicorn prints an AppImportError as one line, without a traceback, and halts.
    raise AppImportError(MISSING_URL)

app = create_app()
