"""The portal's message catalogues: every interface string in the code and templates has
a Chinese translation, and the compiled catalogues are those of the .po files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from credence.portal import i18n

ROOT = Path(__file__).resolve().parents[2]
PORTAL = ROOT / "src" / "credence" / "portal"


def _read(locale: str, suffix: str) -> Catalog:
    path = i18n.LOCALE_DIR / locale / "LC_MESSAGES" / f"messages.{suffix}"
    with path.open("rb") as f:
        return read_po(f, locale=locale) if suffix == "po" else read_mo(f)


def _extracted() -> set[str]:
    """The msgids of the code and templates, as scripts/i18n.sh extracts them (babel.cfg)."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {
        "templates/**.html": {
            "extensions": "jinja2.ext.i18n",
            "trim_blocks": "true",
            "lstrip_blocks": "true",
        }
    }
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    ids: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(PORTAL), method_map, options, keywords=keywords
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_the_extraction_config_is_the_tests() -> None:
    text = (ROOT / "babel.cfg").read_text()
    assert "[python: **.py]" in text
    assert "[jinja2: templates/**.html]" in text


def test_every_interface_message_has_a_chinese_translation() -> None:
    catalog = _read("zh_CN", "po")
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalog
        if m.id and not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    extracted = _extracted()
    assert len(extracted) > 50
    missing = sorted(extracted - translated)
    assert missing == [], f"no Chinese translation (run scripts/i18n.sh, translate): {missing}"


def test_the_english_catalogue_has_every_message() -> None:
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in _read("en", "po") if m.id}
    assert _extracted() <= ids


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_compiled_catalogue_matches_its_po(locale: str) -> None:
    po, mo = _read(locale, "po"), _read(locale, "mo")

    def key(text: str | Iterable[str] | None) -> object:
        return text if text is None or isinstance(text, str) else tuple(text)

    def pairs(catalog: Catalog) -> dict[object, object]:
        def translated(text: str | Iterable[str] | None) -> bool:
            return bool(text) if text is None or isinstance(text, str) else all(text)

        return {
            key(m.id): key(m.string)
            for m in catalog
            if m.id and not m.fuzzy and translated(m.string)
        }

    stale = f"{locale}: the .mo is stale: run scripts/i18n.sh compile"
    # Every translation of the .po is in the .mo, and the .mo holds no message the .po
    # lacks (it may hold a plural untranslated in English: the compiler fills it in).
    assert pairs(po).items() <= pairs(mo).items(), stale
    assert set(pairs(mo)) <= {key(m.id) for m in po if m.id}, stale
