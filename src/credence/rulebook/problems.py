"""Problems found in a rulebook, each located by file, line and dotted path.

A :class:`Problem` reads ``default.toml:142 record_types[3] (code=loan_default).evidence:
message``. The :class:`Locator` finds the line that defines a path in the data (by a
best-effort scan of the text) and spells the path with the code of each list item;
:func:`syntax_problem` and :func:`validation_problems` turn TOML syntax errors and the
typed model's validation errors into located problems.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

__all__ = ["Loc", "Locator", "Problem", "syntax_problem", "validation_problems"]

#: A path in the parsed data, as pydantic spells it: keys and list indices.
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One reason a rulebook does not load, and where in the file it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")


def _key_parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _KEY_PART.findall(dotted)]


def _line_index(text: str) -> dict[Loc, int]:
    """Map table and key paths (as pydantic spells them) to the line that defines them.

    A best-effort scanner, not a TOML parser: it follows table headers, arrays of
    tables (counting their elements) and ``key =`` lines, and skips multi-line strings
    and arrays so their contents are not taken for keys. The file has already parsed,
    so it only has to be right about valid TOML.
    """
    lines: dict[Loc, int] = {}
    counts: dict[Loc, int] = {}
    current: Loc = ()
    in_string: str | None = None
    depth = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        if depth > 0:
            stripped = _STRING.sub("", line).split("#", 1)[0]
            depth += stripped.count("[") - stripped.count("]")
            continue
        header = _HEADER.match(line)
        if header:
            keys = _key_parts(header.group(2))
            resolved: list[str | int] = []
            for i, key in enumerate(keys):
                resolved.append(key)
                # A parent that is an array of tables means its latest element.
                if i < len(keys) - 1 and tuple(resolved) in counts:
                    resolved.append(counts[tuple(resolved)] - 1)
            if header.group(1) == "[[":
                array = tuple(resolved)
                counts[array] = counts.get(array, 0) + 1
                current = (*array, counts[array] - 1)
            else:
                current = tuple(resolved)
            # ``[severity_classes.minor]`` also locates ``severity_classes`` itself.
            for n in range(1, len(current) + 1):
                lines.setdefault(current[:n], lineno)
            continue
        assignment = _KEY.match(line)
        if not assignment:
            continue
        path = (*current, *_key_parts(assignment.group(1)))
        # A dotted key (``scale.base = 1``) also defines its parent tables.
        for n in range(len(current) + 1, len(path) + 1):
            lines.setdefault(path[:n], lineno)
        rest = line[assignment.end() :].strip()
        for delim in ('"""', "'''"):
            if rest.startswith(delim) and delim not in rest[3:]:
                in_string = delim
        if in_string is None and rest.startswith("["):
            stripped = _STRING.sub("", rest).split("#", 1)[0]
            depth = stripped.count("[") - stripped.count("]")
    return lines


class Locator:
    """Turns a path in the data into ``file:line dotted.path (code=...)``."""

    def __init__(self, text: str, origin: str, data: Mapping[str, Any]) -> None:
        self.origin = origin
        self.data = data
        self.lines = _line_index(text)
        #: Line of each location handed out, so problems can be listed in file order.
        self.line_of: dict[str, int] = {}

    def line(self, path: Loc) -> int | None:
        # The longest prefix that the file spells out: a missing key is located at
        # the table that should hold it.
        for n in range(len(path), 0, -1):
            found = self.lines.get(path[:n])
            if found is not None:
                return found
        return None

    def dotted(self, path: Loc) -> str:
        out = ""
        node: Any = self.data
        for part in path:
            if isinstance(part, int):
                out += f"[{part}]"
                node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
                if isinstance(node, dict) and isinstance(node.get("code"), str):
                    out += f" (code={node['code']})"
            else:
                out += f".{part}" if out else part
                node = node.get(part) if isinstance(node, dict) else None
        return out

    def __call__(self, path: Loc) -> str:
        line = self.line(path)
        where = f"{self.origin}:{line}" if line is not None else self.origin
        dotted = self.dotted(path)
        location = f"{where} {dotted}" if dotted else where
        self.line_of[location] = line or 0
        return location


_SYNTAX_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def syntax_problem(exc: tomllib.TOMLDecodeError, text: str, origin: str) -> Problem:
    """The TOML syntax error ``exc`` of ``text``, located at its line and column."""
    message = str(exc)
    position = _SYNTAX_POSITION.search(message)
    if position:
        location = f"{origin}:{position.group(1)}:{position.group(2)}"
        message = message[: position.start()].rstrip()
    elif "(at end of document)" in message:
        location = f"{origin}:{len(text.splitlines()) or 1}"
        message = message.replace("(at end of document)", "").rstrip() + " at end of file"
    else:
        location = origin
    return Problem(location, f"TOML syntax error: {message}")


def validation_problems(exc: ValidationError, locate: Locator, prefix: Loc) -> list[Problem]:
    """One located problem per error of the model's validation (under ``prefix``)."""
    problems = []
    errors = exc.errors(include_url=False)
    # A bad key of a keyed table (categories, severity_classes) is reported once, as
    # an unknown key; what its value should have been is beside the point.
    bad_keys = {(*prefix, *e["loc"][:-1]) for e in errors if e["loc"][-1:] == ("[key]",)}
    for error in errors:
        loc: Loc = (*prefix, *error["loc"])
        kind = error["type"]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            message = f"unknown key {loc[-1]!r}: {error['msg']}"
        elif loc in bad_keys or loc[:-1] in bad_keys:
            continue
        elif kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif kind == "missing":
            message = f"missing required key {loc[-1]!r}"
        else:
            message = error["msg"]
            value = error.get("input")
            if isinstance(value, str | int | float | bool):
                message += f" (got {value!r})"
        problems.append(Problem(locate(loc), message))
    return problems
