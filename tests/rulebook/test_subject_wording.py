"""What the rulebook tells subjects points them to what they can use: the API with their
subject key, never an operator's command line."""

from __future__ import annotations

from credence.rulebook.loader import default_rulebook


def test_subject_facing_text_names_no_operator_command() -> None:
    book = default_rulebook()
    texts = [book.dispute.how_to, *(r.reason for s in book.services for r in s.rules)]
    assert all("credence " not in t for t in texts)
    assert "POST /v1/disputes" in book.dispute.how_to
