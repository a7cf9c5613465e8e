"""Coded messages in words: :func:`coded` builds what is stored, :func:`render` shows it.

The English words come from the catalogue's templates (:mod:`credence.wording.catalogue`);
the Simplified Chinese ones from the translation catalogue
``locale/zh_CN/LC_MESSAGES/wording.po`` (Babel's PO format: ``msgctxt`` is the code,
``msgid`` the English template). A message with no Chinese translation renders in
English (the tests refuse such a catalogue). Names that belong to a rulebook edition
(services, record types, rules' reasons, how to dispute, categories' descriptions) come
from ``names``, a look-up the caller builds from the edition (see
:func:`credence.rulebook.model.Rulebook.names`); without it, or where the edition has
no word for one, the English words stored with the parameter are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from credence.wording.catalogue import CATALOGUE, Kind, Message

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

#: The languages messages render in (Babel's spelling).
LOCALES: tuple[str, ...] = ("en", "zh_CN")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "wording"

#: A look-up of a rulebook's word in the reader's language: ``(kind, key)`` with kind
#: ``service``, ``record_type``, ``rule`` (key ``service:index``), ``how_to`` (key ``""``)
#: or ``category`` (key the category's code); None when it has none.
Names = Callable[[str, str], str | None]


class Coded(TypedDict):
    """A stored message: its code and its parameters (JSON values)."""

    code: str
    params: dict[str, Any]


class UnknownCode(ValueError):
    """A code the catalogue does not have, or parameters that do not fit it."""


def language(locale: str | None) -> str:
    """The locale messages render in for a tag (``zh-CN``, ``zh_CN``, ``zh``: Chinese;
    anything else: English)."""
    tag = (locale or "").replace("-", "_").lower()
    return "zh_CN" if tag in {"zh", "zh_cn", "zh_hans", "zh_sg"} else "en"


@cache
def _catalog(locale: str) -> Catalog | None:
    path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return None
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def translation(code: str, locale: str) -> str | None:
    """The template of ``code`` in ``locale`` (None: no translation, or a fuzzy one)."""
    message = CATALOGUE[code]
    if language(locale) == "en":
        return message.template
    catalog = _catalog(language(locale))
    if catalog is None:
        return None
    found = catalog.get(message.template, context=code)
    if found is None or found.fuzzy or not isinstance(found.string, str) or not found.string:
        return None
    return found.string


def _template(message: Message, locale: str) -> str:
    return translation(message.code, locale) or message.template


def _fragment(code: str, locale: str, **values: str) -> str:
    return _template(CATALOGUE[code], locale).format(**values)


def coded(code: str, **params: Any) -> Coded:
    """The stored form of message ``code`` with ``params`` (dates as ``YYYY-MM-DD``,
    instants as ``YYYY-MM-DD HH:MM``); :class:`UnknownCode` for an unknown code or
    parameters other than the message's."""
    message = CATALOGUE.get(code)
    if message is None or message.family == "fragment":
        raise UnknownCode(f"no message {code!r} in the catalogue")
    if set(params) != set(message.params):
        raise UnknownCode(f"message {code!r} takes {sorted(message.params)}, not {sorted(params)}")
    stored: dict[str, Any] = {}
    for name, value in params.items():
        kind = message.params[name].kind
        if kind is Kind.DATE and isinstance(value, date | datetime):
            value = f"{value:%Y-%m-%d}"
        elif kind is Kind.INSTANT and isinstance(value, datetime):
            value = f"{value:%Y-%m-%d %H:%M}"
        stored[name] = value
    return {"code": code, "params": stored}


def _named(names: Names | None, kind: str, key: str, fallback: str) -> str:
    if names is None:
        return fallback
    return names(kind, key) or fallback


def _day(value: str, locale: str) -> str:
    if locale == "en":
        return value
    return format_date(date.fromisoformat(value), "long", locale=locale)


def _value(kind: Kind, value: Any, locale: str, names: Names | None, fragment: str | None) -> str:
    english = locale == "en"
    look = None if english else names
    match kind:
        case Kind.TEXT | Kind.ID:
            return str(value)
        case Kind.DATE:
            return _day(str(value), locale)
        case Kind.INSTANT:
            day, _, minute = str(value).partition(" ")
            return f"{_day(day, locale)} {minute} UTC"
        case Kind.INT:
            return str(int(value))
        case Kind.SCORE:
            return f"{float(value):.0f}"
        case Kind.POINTS:
            return f"{float(value):+.1f}"
        case Kind.DECIMAL:
            return f"{float(value):.1f}"
        case Kind.SERVICE | Kind.RECORD_TYPE:
            return _named(look, kind.value, str(value["code"]), str(value["name"]))
        case Kind.RULE:
            key = f"{value['service']}:{value['index']}"
            return _named(look, "rule", key, str(value["text"]))
        case Kind.HOW_TO:
            return _named(look, "how_to", "", str(value["text"]))
        case Kind.CATEGORIES:
            words = [_fragment(f"category.{c}", locale) for c in value]
            return _fragment("and", locale).join(words)
        case Kind.REASONS:
            return " ".join(render(r["code"], r["params"], locale, names) for r in value)
        case Kind.MISSING:
            return _missing(value, locale, look)
        case Kind.FLAG:
            return _fragment(str(fragment), locale) if value else ""
        case Kind.HOLD_CAUSES:
            return _fragment("clause_sep", locale).join(
                _fragment(f"hold_cause.{c}", locale) if f"hold_cause.{c}" in CATALOGUE else str(c)
                for c in value
            )
        case Kind.FRAGMENT:
            key = f"{fragment}.{value}"
            return _fragment(key, locale) if key in CATALOGUE else str(value)
        case Kind.TEXT_OR:
            return _fragment(str(fragment), locale) if value is None else str(value)
        case Kind.OPTIONAL:
            if value is None:
                return ""
            inner = str(int(value)) if isinstance(value, int) else str(value)
            return _fragment(str(fragment), locale, value=inner)
    raise UnknownCode(f"no kind {kind!r}")  # pragma: no cover - the match is exhaustive


def _missing(categories: list[dict[str, Any]], locale: str, names: Names | None) -> str:
    list_sep = _fragment("list_sep", locale)
    parts = []
    for c in categories:
        sources = _fragment("clause_sep", locale).join(
            _fragment(
                "missing_source",
                locale,
                source=str(s["name"]),
                types=list_sep.join(_named(names, "record_type", t, t) for t in s["types"]),
                since=_day(str(s["since"]), locale),
            )
            for s in c["sources"]
        )
        category = _named(names, "category", str(c["category"]), str(c["text"]))
        parts.append(_fragment("missing_category", locale, category=category, sources=sources))
    return _fragment("sentence_sep", locale).join(parts)


def render(
    code: str, params: Mapping[str, Any], locale: str = "en", names: Names | None = None
) -> str:
    """Message ``code`` with ``params`` in ``locale`` (``en``, ``zh-CN``/``zh_CN``).

    :class:`UnknownCode` for a code the catalogue does not have or a parameter missing."""
    message = CATALOGUE.get(code)
    if message is None:
        raise UnknownCode(f"no message {code!r} in the catalogue")
    lang = language(locale)
    try:
        values = {
            name: _value(p.kind, params[name], lang, names, p.fragment)
            for name, p in message.params.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownCode(f"message {code!r}: parameters do not fit ({exc})") from exc
    return _template(message, lang).format(**values)


def render_all(messages: list[Coded], locale: str = "en", names: Names | None = None) -> list[str]:
    """Each of ``messages`` rendered (see :func:`render`)."""
    return [render(m["code"], m["params"], locale, names) for m in messages]
