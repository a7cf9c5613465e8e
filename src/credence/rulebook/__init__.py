"""The rulebook: published weights, decay, retention, tiers and services."""

from credence.rulebook.model import (
    Category,
    EvidenceKind,
    RecordType,
    Rule,
    Rulebook,
    Service,
    ServiceKind,
    Severity,
    Tier,
)

__all__ = [
    "Category",
    "EvidenceKind",
    "RecordType",
    "Rule",
    "Rulebook",
    "Service",
    "ServiceKind",
    "Severity",
    "Tier",
]
