"""Loading rulebook files: parse, check, refuse, and name each version by its hash.

A rulebook is TOML text. :func:`check_text` parses it, validates it against the typed
model (:mod:`credence.rulebook.model`) and then runs the checks that need the whole book
(:mod:`credence.rulebook.checks`). It reports *every* problem, each located by file,
line and dotted path (:mod:`credence.rulebook.problems`), in file order, so an author can
fix a book in one pass. :func:`load_text` refuses a book with any problem.

Every record type of a book names its conduct domain and statute. An edition that was
published before record types declared them is still read back (``published=True``, as
the store and an export read their editions): a published edition stays readable, and
every other check still applies to it. Likewise a tier's written description (tiers'
descriptions are now generated) is refused in a new book only.

The content hash (:func:`content_hash`) of the exact text is what every score names.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from credence.errors import RulebookInvalid
from credence.rulebook.checks import AUTHORING_CHECKS, CHECKS, PREDATING_DOMAINS_CHECKS
from credence.rulebook.model import Rulebook
from credence.rulebook.parts import Parts
from credence.rulebook.problems import Locator, Problem, syntax_problem, validation_problems

__all__ = [
    "DEFAULT_PATH",
    "check_text",
    "content_hash",
    "default_rulebook",
    "default_text",
    "load_file",
    "load_text",
    "read_text",
]

#: The rulebook shipped with Credence (each value's real-world anchor is in its comments).
DEFAULT_PATH: Path = Path(__file__).with_name("default.toml")


def content_hash(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of a rulebook's text: the version's fingerprint."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _predates_domains(data: Mapping[str, Any]) -> bool:
    """Whether no record type of ``data`` declares a domain or a statute: the mark of an
    edition written before record types declared them (a later one declares them all)."""
    types = data.get("record_types")
    return not isinstance(types, list) or not any(
        isinstance(t, dict) and ("domain" in t or "statute" in t) for t in types
    )


def _check(
    text: str, origin: str, *, published: bool = False
) -> tuple[Rulebook | None, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [syntax_problem(exc, text, origin)]
    locate = Locator(text, origin, data)
    problems: list[Problem] = []
    book: Rulebook | None = None
    try:
        book = Rulebook.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, locate, ()))
    parts = Parts.of(data)
    checks = PREDATING_DOMAINS_CHECKS if published and _predates_domains(data) else CHECKS
    if not published:
        checks = (*checks, *AUTHORING_CHECKS)
    for check in checks:
        problems.extend(check(parts, locate))
    # File order (stable), as a compiler lists errors: fix from the top down.
    problems.sort(key=lambda p: locate.line_of.get(p.location, 0))
    return (book if not problems else None), problems


def check_text(text: str, origin: str = "<rulebook>") -> list[Problem]:
    """Every problem that stops ``text`` from loading as a rulebook (empty if none).

    ``origin`` names the file in each problem's location.
    """
    return _check(text, origin)[1]


def load_text(text: str, origin: str = "<rulebook>", *, published: bool = False) -> Rulebook:
    """Parse and check a rulebook; raise :class:`RulebookInvalid` listing every problem.

    ``published``: the text is an edition already published (read back from the store
    or an export). If it predates domain declarations (no record type declares a domain
    or a statute), its types are not required to; every other check applies.
    """
    book, problems = _check(text, origin, published=published)
    if problems or book is None:
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        raise RulebookInvalid(
            f"{origin} is not a valid rulebook ({count})",
            details=[str(p) for p in problems],
        )
    return book


def read_text(path: Path) -> str:
    """A rulebook file's text exactly as stored (no newline translation), for hashing."""
    return path.read_bytes().decode("utf-8")


def load_file(path: Path) -> Rulebook:
    """Load and check the rulebook at ``path``; problems are located in that file."""
    return load_text(read_text(path), origin=str(path))


def default_text() -> str:
    """The text of the default rulebook shipped with Credence."""
    return read_text(DEFAULT_PATH)


@cache
def default_rulebook() -> Rulebook:
    """The default rulebook, loaded once per process."""
    return load_text(default_text(), origin=DEFAULT_PATH.name)
