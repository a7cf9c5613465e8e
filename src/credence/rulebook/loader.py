"""Loading and checking rulebook files.

A rulebook is TOML text. :func:`check_text` parses it, validates it against the typed
model (:mod:`credence.rulebook.model`) and then runs the checks that need the whole
book: the lines Credence does not cross (no record type or service about political
opinion, belief, ethnicity, health, sexuality, union membership or online speech),
due process for negative records, purpose binding, and internal consistency of tiers,
severity classes and services. It reports *every* problem, each located by file, line
and dotted path (``default.toml:142 record_types[3] (code=loan_default).evidence``), so
an author can fix a book in one pass. :func:`load_text` refuses a book with any problem.

The content hash (:func:`content_hash`) of the exact text is what every score names.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from credence.errors import RulebookInvalid
from credence.rulebook.model import (
    Category,
    Outcome,
    RecordType,
    Rulebook,
    Scale,
    Service,
    ServiceKind,
    Severity,
    SeverityClass,
    Tier,
)
from credence.rulebook.purposes import PURPOSES

__all__ = [
    "DEFAULT_PATH",
    "PROHIBITED_GROUNDS",
    "THIRD_PARTY_TERMS",
    "Change",
    "FieldChange",
    "Problem",
    "check_text",
    "content_hash",
    "default_rulebook",
    "default_text",
    "diff",
    "load_file",
    "load_text",
    "prohibited_grounds",
]

#: The rulebook shipped with Credence (each value's real-world anchor is in its comments).
DEFAULT_PATH: Path = Path(__file__).with_name("default.toml")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One reason a rulebook does not load, and where in the file it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def content_hash(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of a rulebook's text: the version's fingerprint."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------
# The lines Credence does not cross (README: "What Credence is not")
# --------------------------------------------------------------------------------------

#: Terms that mark a record type or service as being about a prohibited ground.
#:
#: Matching is on whole words of the code (split on ``_``), name and description,
#: case-insensitively, after punctuation is turned into spaces:
#:
#: * ``word`` matches the word itself and its plural (``word``, ``words``,
#:   ``wordes``), but not longer words: ``post`` matches "posts" but not "postal" or
#:   "posted"; ``race`` does not match "racing".
#: * ``stem*`` matches any word that starts with the stem: ``religio*`` matches
#:   "religion" and "religious".
#: * Several words form a phrase that must appear in that order: ``trade union*``.
#:
#: The list errs on the side of refusing. A legitimate record type that trips it (a
#: bankruptcy "petition") is renamed in neutral words ("insolvency filing"); the list
#: is not relaxed for it. Terms were chosen so that civic records which only sound
#: close pass: a blood donation is a civic act, not health data.
PROHIBITED_GROUNDS: dict[str, tuple[str, ...]] = {
    "political opinion or expression": (
        "politic*",
        "protest",
        "protested",
        "protesting",
        "protester",
        "protestor",
        "petition*",
        "dissent*",
        "dissident*",
        "demonstration",
        "demonstrator",
        "activis*",
        "opposition",
        "ideolog*",
        "vote",
        "voted",
        "voting",
        "voter",
        "election",
        "electoral",
        "democra*",
        "party member*",
        "communist*",
        "separatis*",
        "slogan*",
    ),
    "criticism of the government": (
        "criticis*",
        "criticiz*",
        "critic",
        "anti government",
        "antigovernment",
        "subversi*",
        "sedition",
        "seditious",
        "disloyal*",
        "unpatriotic",
        "whistleblow*",
    ),
    "association or assembly": (
        "association",
        "assembly",
        "assemblies",
        "rally",
        "rallies",
        "public gathering",
        "mass gathering",
        "illegal gathering",
    ),
    "religion or belief": (
        "religio*",
        "faith",
        "worship*",
        "church*",
        "mosque*",
        "temple",
        "pray*",
        "buddhis*",
        "christian*",
        "muslim*",
        "islam*",
        "catholic*",
        "protestant*",
        "taois*",
        "daois*",
        "falun*",
        "cult",
        "sect",
        "atheis*",
        "spiritual*",
        "clergy",
        "imam*",
        "priest*",
        "bible*",
        "quran*",
        "koran*",
        "ramadan",
        "halal",
        "belief",
        "believer",
        "pilgrim*",
        "missionar*",
    ),
    "ethnicity or race": (
        "ethnic*",
        "race",
        "racial*",
        "minority",
        "minorities",
        "uyghur*",
        "uighur*",
        "tibetan*",
        "indigenous",
        "ancestry",
        "skin colour",
        "skin color",
    ),
    "health or medical condition": (
        "health*",
        "medic*",
        "disease*",
        "illness*",
        "hiv",
        "diagnos*",
        "psychiatr*",
        "disabilit*",
        "disabled",
        "pregnan*",
        "genetic*",
        "covid*",
        "vaccin*",
        "infect*",
        "epidemic*",
        "pandemic*",
        "cancer*",
        "diabet*",
        "addict*",
        "hospital",
        "hospitalised",
        "hospitalized",
        "hospitalisation",
        "hospitalization",
        "patient",
        "clinic*",
        "therap*",
        "symptom*",
    ),
    "sexuality or sexual orientation": (
        "sexual*",
        "sex",
        "homosex*",
        "bisex*",
        "heterosex*",
        "lgbt*",
        "gay",
        "lesbian*",
        "transgender*",
        "queer*",
        "gender identity",
    ),
    "trade-union membership": (
        "union member*",
        "trade union*",
        "labour union*",
        "labor union*",
        "unionis*",
        "unioniz*",
        "collective bargaining",
        "strike",
        "striker",
        "walkout*",
        "industrial action",
    ),
    "online speech or social media": (
        "online speech",
        "online comment*",
        "online post*",
        "online activit*",
        "internet speech",
        "internet post*",
        "social media",
        "weibo*",
        "wechat*",
        "douyin*",
        "tiktok*",
        "twitter*",
        "tweet*",
        "retweet*",
        "repost*",
        "blog*",
        "vlog*",
        "post",
        "rumour*",
        "rumor*",
        "netizen*",
        "hashtag*",
        "browsing histor*",
        "search histor*",
        "vpn",
    ),
}

#: Terms that mark a restriction as reaching someone other than the subject: Credence
#: sanctions no third party (no restriction of children's schooling, for one). Checked
#: on restriction services only; a reward may well be a family discount.
THIRD_PARTY_TERMS: tuple[str, ...] = (
    "family",
    "families",
    "relative",
    "spouse",
    "child",
    "children",
    "school*",
    "kindergarten*",
    "university admission*",
)

#: Fixed phrases that contain a prohibited term but are not about the ground; they are
#: blanked out before matching. "Bad faith" litigation is a judicial matter, not belief;
#: a company's unpaid "medical insurance" contributions are not anyone's health data;
#: a "banking association" reporting a default is a source, not an assembly.
_BENIGN_PHRASES: tuple[str, ...] = (
    "good faith",
    "bad faith",
    "financial health",
    "medical insurance",
    "health insurance",
    "minority shareholder*",
    "minority stake*",
    "minority interest*",
    "industry association*",
    "banking association*",
    "trade association*",
    "assembly line*",
)


def _term_pattern(term: str) -> str:
    words = []
    for word in term.split():
        if word.endswith("*"):
            words.append(re.escape(word[:-1]) + r"[a-z0-9]*")
        else:
            words.append(re.escape(word))
    if not term.endswith("*"):
        words[-1] += "(?:e?s)?"  # plural of the last word
    return r"\b" + " ".join(words) + r"\b"


_GROUND_PATTERNS: dict[str, re.Pattern[str]] = {
    ground: re.compile("|".join(_term_pattern(t) for t in terms))
    for ground, terms in PROHIBITED_GROUNDS.items()
}
_THIRD_PARTY_PATTERN = re.compile("|".join(_term_pattern(t) for t in THIRD_PARTY_TERMS))
_BENIGN_PATTERN = re.compile("|".join(_term_pattern(p) for p in _BENIGN_PHRASES))


def _normalise(text: str) -> str:
    # Underscores split codes into words; every other non-alphanumeric is a space too,
    # so "anti-government" and "anti_government" both read "anti government".
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    return _BENIGN_PATTERN.sub(" ", " ".join(words))


def prohibited_grounds(text: str) -> list[tuple[str, str]]:
    """Every prohibited ground ``text`` is about, with the first word that showed it.

    ``text`` may be a code (``attended_protest``), a name or free text. Returns
    ``(ground, matched words)`` pairs in the order of :data:`PROHIBITED_GROUNDS`; an
    empty list means the text is clear. Shared with the ingestion path.
    """
    normal = _normalise(text)
    found = []
    for ground, pattern in _GROUND_PATTERNS.items():
        match = pattern.search(normal)
        if match:
            found.append((ground, match.group(0)))
    return found


# --------------------------------------------------------------------------------------
# Locating problems in the text
# --------------------------------------------------------------------------------------

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


class _Locator:
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


# --------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------

_SYNTAX_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str, origin: str) -> Problem:
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


def _validation_problems(exc: ValidationError, locate: _Locator, prefix: Loc) -> list[Problem]:
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


M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], value: Any) -> M | None:
    # Unknown keys are already reported; dropping them here lets the whole-book checks
    # still see the rest of the item (a misspelt key must not hide a missing reference).
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k in model.model_fields}
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


_CATEGORY_TABLE = TypeAdapter(dict[Category, str])
_SEVERITY_TABLE = TypeAdapter(dict[Severity, SeverityClass])


@dataclass
class _Parts:
    """The pieces of a book that validated on their own, with their indices.

    Whole-book checks run on these rather than on a :class:`Rulebook`, so that one
    malformed record type does not hide the other problems of the file.
    """

    scale: Scale | None
    tiers: list[tuple[int, Tier]]
    categories: dict[Category, str] | None
    severity_classes: dict[Severity, SeverityClass] | None
    record_types: list[tuple[int, RecordType]]
    services: list[tuple[int, Service]]
    #: Codes of every record type, service and tier table in the file, valid or not
    #: (by list key, in file order with their indices): duplicates are found among
    #: all of them, and a rule naming a malformed type is not also reported as naming
    #: an unknown one.
    codes: dict[str, list[tuple[int, str]]]

    @property
    def declared_types(self) -> frozenset[str]:
        return frozenset(code for _, code in self.codes["record_types"])

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> _Parts:
        def indexed(key: str, model: type[M]) -> list[tuple[int, M]]:
            items = data.get(key)
            if not isinstance(items, list):
                return []
            out = []
            for i, item in enumerate(items):
                valid = _valid(model, item)
                if valid is not None:
                    out.append((i, valid))
            return out

        def table(adapter: TypeAdapter[Any], key: str) -> Any:
            try:
                return adapter.validate_python(data.get(key))
            except ValidationError:
                return None

        def codes(key: str) -> list[tuple[int, str]]:
            items = data.get(key)
            if not isinstance(items, list):
                return []
            return [
                (i, item["code"])
                for i, item in enumerate(items)
                if isinstance(item, dict) and isinstance(item.get("code"), str)
            ]

        return cls(
            scale=_valid(Scale, data.get("scale")),
            tiers=indexed("tiers", Tier),
            categories=table(_CATEGORY_TABLE, "categories"),
            severity_classes=table(_SEVERITY_TABLE, "severity_classes"),
            record_types=indexed("record_types", RecordType),
            services=indexed("services", Service),
            codes={key: codes(key) for key in ("record_types", "services", "tiers")},
        )


def _show(number: float) -> str:
    return f"{number:g}"


def _check_prohibited(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    def fields(item: RecordType | Service) -> list[tuple[str, str]]:
        out = [("code", item.code), ("name", item.name), ("description", item.description)]
        if isinstance(item, RecordType) and item.quantity is not None:
            out.append(("quantity", item.quantity.unit))
        return out

    items: list[tuple[Loc, str, RecordType | Service]] = [
        *((("record_types", i), "record type", rt) for i, rt in parts.record_types),
        *((("services", i), "service", s) for i, s in parts.services),
    ]
    for path, noun, item in items:
        verb = "scores" if noun == "record type" else "decides on"
        reported: set[str] = set()
        for field, text in fields(item):
            for ground, matched in prohibited_grounds(text):
                if ground in reported:
                    continue
                reported.add(ground)
                yield Problem(
                    locate((*path, field)),
                    f"{noun} {item.code!r} is about {ground} (matched {matched!r}); "
                    f"Credence never {verb} it",
                )
        if isinstance(item, Service) and item.kind is ServiceKind.RESTRICTION:
            for field, text in fields(item):
                match = _THIRD_PARTY_PATTERN.search(_normalise(text))
                if match:
                    yield Problem(
                        locate((*path, field)),
                        f"service {item.code!r} reaches a third party (matched "
                        f"{match.group(0)!r}); Credence restricts only the subject itself",
                    )
                    break


def _check_duplicates(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    nouns = {"record_types": "record type", "services": "service", "tiers": "tier"}
    for key, noun in nouns.items():
        first: dict[str, int] = {}
        for i, code in parts.codes[key]:
            if code not in first:
                first[code] = i
                continue
            j = first[code]
            line = locate.line((key, j))
            at = f"{key}[{j}]" + (f", line {line}" if line is not None else "")
            yield Problem(
                locate((key, i, "code")),
                f"duplicate {noun} code {code!r} (first defined at {at})",
            )


def _check_due_process(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    for i, rt in parts.record_types:
        if rt.negative and not rt.evidence.requires_decision_reference:
            yield Problem(
                locate(("record_types", i, "evidence")),
                f"record type {rt.code!r} takes points away ({_show(rt.points)}) but its "
                f"evidence {rt.evidence.value!r} is not a final decision or a registered "
                "default; a negative record needs a court judgment, enforcement order, "
                "administrative penalty or default registration",
            )


def _check_references(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    for i, rt in parts.record_types:
        for code in rt.lifted_by:
            if code not in parts.declared_types:
                yield Problem(
                    locate(("record_types", i, "lifted_by")),
                    f"record type {rt.code!r} is lifted by {code!r}, which the rulebook "
                    "does not define",
                )


def _check_purpose_binding(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    types = {rt.code: rt for _, rt in parts.record_types}
    for i, service in parts.services:
        purpose = PURPOSES.get(service.purpose)
        if purpose is None:
            yield Problem(
                locate(("services", i, "purpose")),
                f"service {service.code!r} declares purpose {service.purpose!r}, which is "
                f"not in the purpose catalogue (known: {', '.join(sorted(PURPOSES))})",
            )
        else:
            allowed = ", ".join(sorted(purpose.categories))
            for category in service.categories:
                if category not in purpose.categories:
                    yield Problem(
                        locate(("services", i, "categories")),
                        f"service {service.code!r} reads category {category.value!r} outside "
                        f"its purpose {purpose.code!r} (allows: {allowed})",
                    )
        for r, rule in enumerate(service.rules):
            for field in ("active_records", "no_active_records"):
                for code in getattr(rule, field):
                    path: Loc = ("services", i, "rules", r, field)
                    if code not in parts.declared_types:
                        yield Problem(
                            locate(path),
                            f"service {service.code!r} rule {r + 1} names record type "
                            f"{code!r}, which the rulebook does not define",
                        )
                    elif code in types and types[code].category not in service.categories:
                        served = ", ".join(c.value for c in service.categories)
                        yield Problem(
                            locate(path),
                            f"service {service.code!r} rule {r + 1} reads record type "
                            f"{code!r} of category {types[code].category.value!r}, outside "
                            f"the service's categories ({served})",
                        )


def _check_scale_and_tiers(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    scale = parts.scale
    if scale is not None and not scale.min < scale.base < scale.max:
        yield Problem(
            locate(("scale",)),
            "the scale must have min < base < max (got min "
            f"{_show(scale.min)}, base {_show(scale.base)}, max {_show(scale.max)})",
        )
    previous: Tier | None = None
    for i, tier in parts.tiers:
        if previous is not None and tier.min_score >= previous.min_score:
            yield Problem(
                locate(("tiers", i, "min_score")),
                f"tier {tier.code!r} (min_score {_show(tier.min_score)}) is not below tier "
                f"{previous.code!r} (min_score {_show(previous.min_score)}); tiers are "
                "listed highest first with strictly descending min_score",
            )
        if scale is not None and not scale.min <= tier.min_score <= scale.max:
            yield Problem(
                locate(("tiers", i, "min_score")),
                f"tier {tier.code!r} (min_score {_show(tier.min_score)}) lies outside the "
                f"scale ({_show(scale.min)} to {_show(scale.max)})",
            )
        previous = tier


def _check_tables(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    if parts.categories is not None:
        missing = [c.value for c in Category if c not in parts.categories]
        if missing:
            yield Problem(
                locate(("categories",)),
                "the categories table must describe all four categories; missing: "
                + ", ".join(missing),
            )
    classes = parts.severity_classes
    if classes is None:
        return
    missing = [s.value for s in Severity if s not in classes]
    if missing:
        yield Problem(
            locate(("severity_classes",)),
            "severity_classes must define minor, general and serious; missing: "
            + ", ".join(missing),
        )
    for severity, cls in classes.items():
        if cls.repair_after_days > cls.max_days:
            yield Problem(
                locate(("severity_classes", severity.value, "repair_after_days")),
                f"severity class {severity.value!r} allows repair only after "
                f"{cls.repair_after_days} days, later than its max_days ({cls.max_days})",
            )
    for i, rt in parts.record_types:
        limit = classes.get(rt.severity)
        if rt.negative and limit is not None and rt.retention_days > limit.max_days:
            yield Problem(
                locate(("record_types", i, "retention_days")),
                f"record type {rt.code!r} is kept {_show(rt.retention_days)} days, longer "
                f"than its severity class {rt.severity.value!r} allows ({limit.max_days} "
                "days)",
            )


_SCORE_TOO_LOW = re.compile(r"\bscore\b.{0,20}\btoo low\b", re.IGNORECASE)


def _check_services(parts: _Parts, locate: _Locator) -> Iterator[Problem]:
    for i, service in parts.services:
        if service.default is Outcome.REWARD:
            yield Problem(
                locate(("services", i, "default")),
                f"service {service.code!r} cannot default to 'reward': a reward needs "
                "terms, which only a rule carries",
            )
        for r, rule in enumerate(service.rules):
            path: Loc = ("services", i, "rules", r)
            if rule.outcome is Outcome.REWARD:
                if service.kind is ServiceKind.RESTRICTION:
                    yield Problem(
                        locate((*path, "outcome")),
                        f"service {service.code!r} is a restriction; its rule {r + 1} "
                        "cannot grant a reward",
                    )
                elif not (rule.terms or "").strip():
                    yield Problem(
                        locate((*path, "terms")),
                        f"service {service.code!r} rule {r + 1} grants a reward without "
                        "terms; say what the subject gets",
                    )
            if rule.outcome is Outcome.DENY and _SCORE_TOO_LOW.search(rule.reason):
                yield Problem(
                    locate((*path, "reason")),
                    f"service {service.code!r} rule {r + 1} gives 'score too low' as a "
                    "reason; name the specific records or behaviour instead",
                )


_CHECKS = (
    _check_prohibited,
    _check_duplicates,
    _check_due_process,
    _check_references,
    _check_purpose_binding,
    _check_scale_and_tiers,
    _check_tables,
    _check_services,
)


def _check(text: str, origin: str) -> tuple[Rulebook | None, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [_syntax_problem(exc, text, origin)]
    locate = _Locator(text, origin, data)
    problems: list[Problem] = []
    book: Rulebook | None = None
    try:
        book = Rulebook.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, locate, ()))
    parts = _Parts.of(data)
    for check in _CHECKS:
        problems.extend(check(parts, locate))
    # File order (stable), as a compiler lists errors: fix from the top down.
    problems.sort(key=lambda p: locate.line_of.get(p.location, 0))
    return (book if not problems else None), problems


def check_text(text: str, origin: str = "<rulebook>") -> list[Problem]:
    """Every problem that stops ``text`` from loading as a rulebook (empty if none).

    ``origin`` names the file in each problem's location.
    """
    return _check(text, origin)[1]


def load_text(text: str, origin: str = "<rulebook>") -> Rulebook:
    """Parse and check a rulebook; raise :class:`RulebookInvalid` listing every problem."""
    book, problems = _check(text, origin)
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


# --------------------------------------------------------------------------------------
# Comparing editions
# --------------------------------------------------------------------------------------


class FieldChange(NamedTuple):
    """One field that differs between two editions (dotted path, old and new value)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """An item added, removed or changed between two editions of a rulebook."""

    kind: Literal["added", "removed", "changed"]
    what: str
    code: str
    fields: tuple[FieldChange, ...] = ()

    def __str__(self) -> str:
        head = f"{self.kind} {self.what} {self.code}"
        if not self.fields:
            return head
        return head + ": " + "; ".join(f"{f.field} {f.old!r} -> {f.new!r}" for f in self.fields)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    # Nested tables become dotted keys and lists of tables get indices, so a change
    # reads "rules[2].min_score 1030 -> 1040" rather than a whole rules list.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _field_changes(old: Any, new: Any) -> tuple[FieldChange, ...]:
    a, b = _flatten(old), _flatten(new)
    keys = list(a) + [k for k in b if k not in a]
    return tuple(FieldChange(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k))


def _diff_keyed(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = [Change("removed", what, code) for code in old if code not in new]
    for code, item in new.items():
        if code not in old:
            changes.append(Change("added", what, code))
        else:
            fields = _field_changes(old[code], item)
            if fields:
                changes.append(Change("changed", what, code, fields))
    return changes


def diff(old: Rulebook, new: Rulebook) -> list[Change]:
    """What changed from ``old`` to ``new``: metadata, scale, tiers, tables, record
    types and services, each item compared field by field."""
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    changes: list[Change] = []
    sections = ("version", "title", "region", "summary", "tier_hysteresis")
    fields = _field_changes({k: a[k] for k in sections}, {k: b[k] for k in sections})
    if fields:
        changes.append(Change("changed", "rulebook", "metadata", fields))
    for what in ("scale", "dispute"):
        fields = _field_changes(a[what], b[what])
        if fields:
            changes.append(Change("changed", what, what, fields))
    changes += _diff_keyed("category", a["categories"], b["categories"])
    changes += _diff_keyed("severity_class", a["severity_classes"], b["severity_classes"])
    for what, key in (("tier", "tiers"), ("record_type", "record_types"), ("service", "services")):
        changes += _diff_keyed(what, {i["code"]: i for i in a[key]}, {i["code"]: i for i in b[key]})
    return changes
