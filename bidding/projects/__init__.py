"""Projects and sections (项目与标段): registration, review, publication, bidding, opening."""

from __future__ import annotations

import importlib

from flask import Flask


def init_app(app: Flask) -> None:
    """Wire the projects domain: models, the deadline sweep, the API and the pages."""
    importlib.import_module("bidding.projects.models")
    for name in ("tasks", "api", "pages"):
        try:
            module = importlib.import_module(f"bidding.projects.{name}")
        except ModuleNotFoundError as exc:  # parts still being written
            if exc.name != f"bidding.projects.{name}":
                raise
            continue
        register = getattr(module, "init_app", None)
        if register is not None:
            register(app)
