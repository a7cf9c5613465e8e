"""Digests the journal keeps in place of content: what a source asserts in a record, and
free text (a reason may carry personal data; the journal is published in proofs)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from credence.journal.canonical import canonical


def record_content_hash(
    *,
    subject_id: str,
    record_type: str,
    occurred_at: datetime,
    quantity: float | None,
    decision_ref: str | None,
) -> str:
    """SHA-256 of what a source asserts in a record (not when we received it).

    A resend with the same (source, source_ref) and the same hash is a harmless
    duplicate; with another hash it is a conflict.
    """
    body = canonical(
        {
            "subject": subject_id,
            "type": record_type,
            "occurred_at": occurred_at,
            "quantity": quantity,
            "decision_ref": decision_ref,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of free text (UTF-8): what an entry keeps of a reason or a statement."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
