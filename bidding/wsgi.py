"""WSGI entry point for gunicorn: ``gunicorn -c deploy/gunicorn.conf.py``."""

from __future__ import annotations

from bidding.app import create_app

app = create_app()
