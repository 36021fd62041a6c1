"""The online opening (不见面开标): share release, decryption, the hall, the signed record."""

from __future__ import annotations

import importlib

from flask import Flask


def init_app(app: Flask) -> None:
    """Wire the opening: models, tasks and sweeps, API, pages and the hall namespace."""
    importlib.import_module("bidding.opening.models")
    for name in ("tasks", "api", "pages", "namespace"):
        module = importlib.import_module(f"bidding.opening.{name}")
        register = getattr(module, "init_app", None)
        if register is not None:
            register(app)
