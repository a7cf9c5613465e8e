"""Reading a form the portal's pages post (``application/x-www-form-urlencoded``).

The API's request guard checks JSON bodies for what no field may hold; a form body is
checked here, before any field is read: UTF-8 only, no NUL or other control character
but tab and line breaks (PostgreSQL refuses NUL in text, and nobody types the rest),
each field at most once. A problem is a :class:`FormProblem`, which the page turns into
a 400 naming it; nothing is stored.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"

#: Control characters no field may hold (tab, line feed and carriage return may).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class FormProblem(Exception):
    """A form the page cannot read; ``code`` names what is wrong."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def read_form(request: Request) -> dict[str, str]:
    """The fields of the form posted with ``request``."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise FormProblem("not_a_form")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except UnicodeError:
        raise FormProblem("invalid_encoding") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise FormProblem("repeated_field")
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise FormProblem("invalid_character")
        fields[name] = value
    return fields
