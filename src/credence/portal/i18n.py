"""The reader's language and everything formatted in it.

A page is in English or Simplified Chinese: chosen by ``?lang=`` (remembered in a
cookie), else by the cookie, else by ``Accept-Language``, else English. Interface
strings come from the Babel catalogues in ``locale/`` (``scripts/i18n.sh`` extracts,
updates and compiles them); dates, numbers and durations are formatted per locale by
Babel. Rulebook content (names, descriptions, reasons) is shown as published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"

#: The locales of the interface (Babel's spelling), the first the default.
LOCALES: tuple[str, ...] = ("en", "zh_CN")
DEFAULT = LOCALES[0]
#: Each locale's language tag (the ``lang`` attribute, ``?lang=``).
TAGS: dict[str, str] = {"en": "en", "zh_CN": "zh-CN"}
#: Each locale's name in its own language (the language switch).
NAMES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}

#: The cookie that remembers a reader's choice.
COOKIE = "lang"


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


def locale_of(tag: str | None) -> str | None:
    """The interface locale for a language tag (``zh-CN``, ``zh``, ``en-GB``...), or
    None if the interface does not speak it."""
    if not tag:
        return None
    primary, _, region = tag.strip().replace("_", "-").lower().partition("-")
    if primary == "en":
        return "en"
    # Simplified Chinese: zh, zh-CN, zh-SG, zh-Hans; not zh-TW / zh-HK / zh-Hant.
    if primary == "zh" and region.split("-")[0] not in {"tw", "hk", "mo", "hant"}:
        return "zh_CN"
    return None


def negotiate(accept_language: str | None) -> str | None:
    """The first locale of ``Accept-Language`` (by its q-values) the interface speaks."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate(accept_language.split(",")):
        tag, _, params = item.partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for minus_q, _, tag in sorted(ranked):
        locale = locale_of(tag)
        if locale is not None and minus_q < 0:
            return locale
    return None


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's locale: ``?lang=``, the cookie, ``Accept-Language``, English."""
    return locale_of(query) or locale_of(cookie) or negotiate(accept_language) or DEFAULT


@cache
def translations(locale: str) -> Translations:
    """The compiled catalogue of ``locale`` (a missing one is an error, not English)."""
    loaded = Translations.load(str(LOCALE_DIR), [locale], DOMAIN)
    if not isinstance(loaded, Translations):
        raise FileNotFoundError(f"no compiled catalogue for {locale} in {LOCALE_DIR}")
    return loaded


def date_time(value: datetime, locale: str) -> str:
    """An instant in UTC, in the locale's medium date and time format."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value, "medium", tzinfo=UTC, locale=locale) + " UTC"


def number(value: float, locale: str) -> str:
    """A number in the locale's digits and separators."""
    return format_decimal(value, locale=locale)


def signed(value: float, locale: str) -> str:
    """Points with their sign (+10, −120)."""
    return ("+" if value > 0 else "") + format_decimal(value, locale=locale)


def value(item: Any, locale: str) -> str:
    """A field of a rulebook as a diff shows it: numbers per locale, lists joined, an
    absent value as a dash."""
    if item is None:
        return "—"
    if isinstance(item, bool):
        return str(item).lower()
    if isinstance(item, int | float):
        return number(item, locale)
    if isinstance(item, list | tuple):
        return ", ".join(value(i, locale) for i in item)
    return str(item)
