"""Fair-competition review of tender documents (公平竞争审查).

Pure and database-free: :func:`review_file` extracts the text of a ``.docx``, ``.pdf``,
``.txt`` or ``.md`` tender document and runs the review rules (``rules/*.toml``, one file
per rule, the 14 kinds of restrictive clause in DOMAIN.md) over it; the tender lifecycle
stores the findings and blocks publication until they are resolved or overridden.

Every rule's title, legal basis, suggestion and numeric messages exist in Chinese and
English (``title_en`` …); stored findings keep the Chinese and are shown in the request
language by :func:`~bidding.projects.fairness.i18n.finding_text`.
"""

from __future__ import annotations

from bidding.projects.fairness.engine import (
    Finding,
    Rule,
    RuleFileError,
    Scope,
    Severity,
    load_rules,
    review_document,
    review_file,
)
from bidding.projects.fairness.extract import (
    MAX_TEXT_CHARS,
    Clause,
    extract_clauses,
    iter_clauses,
    split_clauses,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "Clause",
    "Finding",
    "Rule",
    "RuleFileError",
    "Scope",
    "Severity",
    "extract_clauses",
    "iter_clauses",
    "load_rules",
    "review_document",
    "review_file",
    "split_clauses",
]
