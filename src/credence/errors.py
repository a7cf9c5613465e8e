"""Domain errors.

Services raise these; the API turns each into the one JSON error envelope
``{"error": {"code", "message", "details"}}`` with the HTTP status named here, and the
CLI prints the message. Messages are written for a person to act on.
"""

from __future__ import annotations

from typing import Any


class CredenceError(Exception):
    """Base class: a problem the caller can understand and fix."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidInput(CredenceError):
    status = 422
    code = "invalid_input"


class InvalidIdentifier(InvalidInput):
    code = "invalid_identifier"


class NotFound(CredenceError):
    status = 404
    code = "not_found"


class Conflict(CredenceError):
    status = 409
    code = "conflict"


class Unauthenticated(CredenceError):
    status = 401
    code = "unauthenticated"


class Forbidden(CredenceError):
    status = 403
    code = "forbidden"


class RulebookInvalid(CredenceError):
    """A rulebook file that must not load; ``details`` lists every problem."""

    status = 422
    code = "rulebook_invalid"


class RulebookTampered(CredenceError):
    """A stored rulebook edition whose text no longer hashes to its recorded SHA-256:
    it is never applied (nothing is scored or decided with it) until an operator
    restores the published text."""

    status = 503
    code = "rulebook_tampered"
