"""The rulebook in Simplified Chinese: an edition declaring zh-CN gives every Chinese
text, the red lines read the Chinese too, and an older English-only edition still loads.
"""

from __future__ import annotations

import re

import pytest

from credence.rulebook.loader import check_text, default_rulebook, default_text, load_text
from credence.rulebook.model import Category, Language

DEFAULT = default_text()
ORIGIN = "default.toml"


def _without_zh(text: str) -> str:
    """The default edition as it was before Chinese texts: no ``*_zh`` key, no
    ``[categories_zh]`` table, no ``languages``."""
    text = re.sub(r"^\w+_zh = .*\n", "", text, flags=re.MULTILINE)
    text = re.sub(r"\[categories_zh\]\n(?:\w+ = .*\n)+", "", text)
    return re.sub(r"^languages = .*\n", "", text, flags=re.MULTILINE)


def test_default_edition_is_written_in_chinese_too() -> None:
    book = default_rulebook()
    assert book.version == "2026.5"
    assert book.languages == (Language.EN, Language.ZH_CN)
    assert book.title_zh
    assert book.summary_zh
    assert book.dispute.how_to_zh
    assert set(book.categories_zh) == set(Category)
    for rt in book.record_types:
        assert rt.name_zh, rt.code
        assert rt.description_zh, rt.code
    for service in book.services:
        assert service.name_zh, service.code
        assert service.description_zh, service.code
        for rule in service.rules:
            assert rule.reason_zh, service.code
            assert bool(rule.terms) == bool(rule.terms_zh), service.code
    # Every Chinese text is Chinese: no English sentence left in one.
    texts: list[str | None] = [book.title_zh, book.summary_zh, *book.categories_zh.values()]
    texts += [t for rt in book.record_types for t in (rt.name_zh, rt.description_zh)]
    for s in book.services:
        texts += [s.name_zh, s.description_zh]
        texts += [t for r in s.rules for t in (r.reason_zh, r.terms_zh) if t]
    for text in texts:
        assert text is not None
        assert re.search(r"[\u4e00-\u9fff]", text), text
        assert not re.search(r"\b(?!Credence\b)[A-Za-z]{4,}\b", text), text


def test_zh_lookup_and_generated_tier_descriptions() -> None:
    book = default_rulebook()
    assert book.zh("service", "air_travel") == "乘坐飞机"
    assert book.zh("record_type", "judgment_default") == "失信被执行人名单"
    assert book.zh("rule", "air_travel:0") == book.services[0].rules[0].reason_zh
    assert book.zh("rule", "air_travel:9") is None
    assert book.zh("category", "judicial") == book.categories_zh[Category.JUDICIAL]
    assert book.zh("how_to", "") == book.dispute.how_to_zh
    assert book.zh("service", "nope") is None
    assert book.tier_description_zh("AAA") == "总分不低于 1,050 分；没有任何仍在计分的失信记录。"
    assert book.tier_description_zh("AA") == "总分不低于 1,030 分；没有仍在计分的严重失信记录。"
    assert book.tier_description_zh("D") == "未列入更高等级的所有主体。"


def test_an_edition_without_chinese_still_loads() -> None:
    old = load_text(_without_zh(DEFAULT), ORIGIN, published=True)
    assert old.languages == (Language.EN,)
    assert old.zh("service", "air_travel") is None
    assert check_text(_without_zh(DEFAULT), ORIGIN) == []


def test_a_missing_chinese_text_is_refused_where_the_edition_declares_chinese() -> None:
    text = DEFAULT.replace('name_zh = "乘坐飞机"\n', "", 1)
    problems = check_text(text, ORIGIN)
    assert len(problems) == 1
    assert "service 'air_travel' has no Chinese text (name_zh)" in problems[0].message
    assert "services[" in problems[0].location
    assert "name_zh" in problems[0].location
    no_reason = re.sub(r'^reason_zh = ".*"\n', "", DEFAULT, count=1, flags=re.MULTILINE)
    assert any("rule 1 has no Chinese text (reason_zh)" in p.message for p in check_text(no_reason))
    no_category = DEFAULT.replace('\nsocial = "社会诚信', '\nxsocial = "社会诚信', 1)
    assert check_text(no_category)  # an unknown key, and the category without its text


def test_chinese_texts_without_the_declaration_are_refused() -> None:
    text = DEFAULT.replace('languages = ["en", "zh-CN"]\n', "", 1)
    problems = check_text(text, ORIGIN)
    assert len(problems) == 1
    assert "does not declare them" in problems[0].message


def test_english_is_always_declared() -> None:
    text = DEFAULT.replace('languages = ["en", "zh-CN"]', 'languages = ["zh-CN"]', 1)
    assert any("must include 'en'" in p.message for p in check_text(text, ORIGIN))


@pytest.mark.parametrize(
    ("field", "words", "ground"),
    [
        ("description_zh", "根据当事人参加宗教活动的情况记录。", "religion or belief"),
        ("description_zh", "记录当事人在网上发表的政治言论。", "opinion or expression"),
        ("name_zh", "工会会员", "union membership"),
        ("description_zh", "记录当事人的健康状况。", "health"),
        ("description_zh", "按当事人的民族记录。", "ethnicity"),
    ],
)
def test_the_red_lines_read_the_chinese_texts(field: str, words: str, ground: str) -> None:
    """A record type whose English is harmless but whose Chinese speaks of a protected
    ground is refused, like one whose English does."""
    start = DEFAULT.index('code = "volunteer_service"')
    at = DEFAULT.index(f"{field} = ", start)
    end = DEFAULT.index("\n", at)
    text = DEFAULT[:at] + f'{field} = "{words}"' + DEFAULT[end:]
    problems = check_text(text, ORIGIN)
    found = [p for p in problems if ground in p.message]
    assert found, problems
    assert found[0].location.endswith(field) or field in found[0].location
