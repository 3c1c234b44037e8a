"""The WSGI entry point for production servers: ``gunicorn -w 4 'server_sync.wsgi:app'``."""

from .app import create_app

app = create_app()
