"""Imports every domain's models so ``Base.metadata`` is complete (migrations, tests)."""

from __future__ import annotations

import importlib

#: Modules that define tables, in dependency order.
MODEL_MODULES: tuple[str, ...] = (
    "bidding.core.audit",
    "bidding.accounts.models",
    "bidding.core.idempotency",
    "bidding.projects.models",
    "bidding.bids.models",
    "bidding.opening.models",
    "bidding.notifications.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
