"""Sealed bids (投标): upload, commit with signature and receipt, replace, withdraw."""

from __future__ import annotations

import importlib

from flask import Flask


def init_app(app: Flask) -> None:
    """Wire the bids domain: models, the bid counter and sweep, the API and the pages."""
    importlib.import_module("bidding.bids.models")
    for name in ("services", "api", "pages"):
        try:
            module = importlib.import_module(f"bidding.bids.{name}")
        except ModuleNotFoundError as exc:  # parts still being written
            if exc.name != f"bidding.bids.{name}":
                raise
            continue
        register = getattr(module, "init_app", None)
        if register is not None:
            register(app)
