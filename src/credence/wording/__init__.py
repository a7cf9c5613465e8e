"""Reasons and notifications as codes with parameters, rendered in the reader's language.

A low layer: decisions, notifications, the API and the portal all use it, and it
imports nothing of Credence (see :mod:`credence.wording.catalogue` and
:mod:`credence.wording.render`).
"""

from credence.wording.render import (
    LOCALES,
    Coded,
    Names,
    UnknownCode,
    coded,
    language,
    render,
    render_all,
    translation,
)

__all__ = [
    "LOCALES",
    "Coded",
    "Names",
    "UnknownCode",
    "coded",
    "language",
    "render",
    "render_all",
    "translation",
]
