"""Accounts (账户与权限): trading centers, organisations, users, roles, API tokens, sign-in.

``init_app`` wires authentication (``bidding.core.auth``), the accounts API under
``/api/v1`` and the sign-in, user administration and token pages.
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from bidding.core.tasks import register_sweep


@register_sweep("accounts.prune_login_attempts")
def _prune_login_attempts(at: datetime) -> int:
    from bidding.accounts.services import ATTEMPT_RETENTION, prune_login_attempts

    return prune_login_attempts(at - ATTEMPT_RETENTION)


def init_app(app: Flask) -> None:
    from bidding.accounts import api, pages
    from bidding.accounts.passwords import use_fast_hashing
    from bidding.core import auth

    settings = app.extensions.get("sunbid_settings")
    if settings is not None and settings.extra.get("password_hashing") == "fast":
        use_fast_hashing()  # tests only: SUNBID_PASSWORD_HASHING=fast
    auth.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
