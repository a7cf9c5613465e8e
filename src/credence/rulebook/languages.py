"""The languages of an edition: English always, Simplified Chinese when declared.

An edition that lists ``zh-CN`` among its ``languages`` gives, beside every English text
a person reads, its Simplified Chinese: the title, the summary, each category's
description, how to dispute, each record type's and each service's name and
description, and each rule's reason and terms (the ``*_zh`` fields). A tier needs none: its
description is generated from its threshold and conditions in either language
(:func:`credence.rulebook.model.tier_text_zh`). An edition that does not declare
``zh-CN`` (every edition published before Chinese texts) may give none of them, so
that its readers are never shown a half-translated book; the portal then shows the
English with its language marked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from credence.rulebook.model import Language
from credence.rulebook.parts import Parts
from credence.rulebook.problems import Loc, Locator, Problem

__all__ = ["check_languages"]

_ZH = Language.ZH_CN.value


def _declared(data: Any) -> list[Any]:
    languages = data.get("languages") if isinstance(data, dict) else None
    return languages if isinstance(languages, list) else []


def _zh_fields(parts: Parts, data: Any) -> Iterator[tuple[Loc, str, str | None]]:
    """Every place that needs a Chinese text: its location, what it is, and the text."""
    yield ("title_zh",), "the title", data.get("title_zh")
    yield ("summary_zh",), "the summary", data.get("summary_zh") if data.get("summary") else "-"
    dispute = data.get("dispute")
    how_to = dispute.get("how_to_zh") if isinstance(dispute, dict) else None
    yield ("dispute", "how_to_zh"), "how to dispute", how_to
    zh_categories = data.get("categories_zh")
    zh_categories = zh_categories if isinstance(zh_categories, dict) else {}
    for category in parts.categories or {}:
        yield (
            ("categories_zh", category.value),
            f"category {category.value!r}",
            zh_categories.get(category.value),
        )
    for i, rt in parts.record_types:
        yield ("record_types", i, "name_zh"), f"record type {rt.code!r}", rt.name_zh
        yield ("record_types", i, "description_zh"), f"record type {rt.code!r}", rt.description_zh
    for i, s in parts.services:
        yield ("services", i, "name_zh"), f"service {s.code!r}", s.name_zh
        yield ("services", i, "description_zh"), f"service {s.code!r}", s.description_zh
        for r, rule in enumerate(s.rules):
            where = f"service {s.code!r} rule {r + 1}"
            yield ("services", i, "rules", r, "reason_zh"), where, rule.reason_zh
            if rule.terms:
                yield ("services", i, "rules", r, "terms_zh"), where, rule.terms_zh


def _given(data: Any, parts: Parts) -> Loc | None:
    """The first Chinese text an edition gives, if any."""
    for path, _, text in _zh_fields(parts, data):
        if isinstance(text, str) and text != "-":
            return path
    return None


def check_languages(parts: Parts, locate: Locator) -> Iterator[Problem]:
    """An edition declaring ``zh-CN`` gives every Chinese text; one that does not gives
    none; English is always declared."""
    data = locate.data
    declared = _declared(data)
    if declared and Language.EN.value not in declared:
        yield Problem(
            locate(("languages",)),
            "languages must include 'en': every edition is written in English",
        )
    if _ZH not in declared:
        given = _given(data, parts)
        if given is not None:
            yield Problem(
                locate(given),
                "the edition gives Chinese texts but does not declare them: add 'zh-CN' to "
                "languages (and give every Chinese text), or remove them",
            )
        return
    for path, what, text in _zh_fields(parts, data):
        if not (isinstance(text, str) and text.strip()):
            yield Problem(
                locate(path),
                f"the edition declares zh-CN but {what} has no Chinese text "
                f"({path[-1] if isinstance(path[-1], str) else 'name_zh'})",
            )
