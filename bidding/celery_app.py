"""Entry point for Celery worker and beat processes.

``celery -A bidding.celery_app worker`` / ``celery -A bidding.celery_app beat``: builds the
Flask app from the ``SUNBID_*`` environment (so the workers use the same settings as the
web nodes) and exposes its Celery app as ``celery``.
"""

from __future__ import annotations

from bidding.app import create_app
from bidding.core.tasks import celery

flask_app = create_app()

__all__ = ["celery", "flask_app"]
