"""Stored review findings in the reader's language (审查意见的中英文显示).

A :class:`~bidding.projects.models.ReviewFinding` stores the rule's Chinese title, legal
basis and suggestion as they were when the review ran (that record does not change). At
display and serialisation time :func:`finding_text` shows the rule's English text instead
when the request locale is English (``?lang=en``, the ``lang`` cookie, the user's setting
or ``Accept-Language``; flask_babel ``get_locale``), provided the stored Chinese is still
the rule's current text; if the rule file has changed since (or the rule is gone), the
stored Chinese is shown, since no English rendering of it is known.
"""

from __future__ import annotations

from typing import Protocol

from flask import has_request_context
from flask_babel import get_locale

from bidding.projects.fairness.engine import TEXT_FIELDS, Rule, is_english, load_rules

#: How long ReviewFinding keeps each text (services.submit_for_review cuts to these).
STORED_LENGTH = {"title": 200, "legal_basis": 500, "suggestion": None}


class StoredFinding(Protocol):
    rule_id: str
    title: str
    legal_basis: str
    suggestion: str


def request_locale() -> object:
    """The locale of the current request (None outside one: the default, Chinese)."""
    return get_locale() if has_request_context() else None


def _rules_by_id() -> dict[str, Rule]:
    return {rule.id: rule for rule in load_rules()}


def finding_text(finding: StoredFinding, name: str, locale: object = ...) -> str:
    """``title``, ``legal_basis`` or ``suggestion`` of a stored finding in ``locale``
    (default: the request's); the stored Chinese unless English is asked for and known."""
    if name not in TEXT_FIELDS:
        raise ValueError(f"no finding text {name!r}")
    stored: str = getattr(finding, name)
    if not is_english(request_locale() if locale is ... else locale):
        return stored
    rule = _rules_by_id().get(finding.rule_id)
    if rule is None:
        return stored
    current = rule.text(name)
    limit = STORED_LENGTH[name]
    if stored not in (current, current[:limit] if limit else current):
        return stored
    return rule.text(name, "en")
