"""Time-driven transitions of the projects domain (定时任务), run by the locked sweep.

``projects.close_due_sections`` closes every published section whose bid deadline has come
(and fails it when fewer than 3 bids arrived, through the bid counter the bids domain
installs — see :mod:`bidding.projects.services`). Idempotent: a repeated or missed tick is
harmless.
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from bidding.core.tasks import register_sweep
from bidding.projects import services


@register_sweep("projects.close_due_sections")
def close_due_sections(at: datetime) -> int:
    """Close the sections whose bid deadline is at or before ``at``."""
    return services.close_due_sections(at)


def init_app(app: Flask) -> None:
    """Nothing to configure: importing this module registers the sweep handler."""
