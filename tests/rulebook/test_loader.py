"""The rulebook loader: the default book loads, and every refusal rule refuses.

Bad books are made from the default text by small edits (replacing one value in one
record type's table, or appending a table), so each test shows exactly what is wrong
and can check that the problem is located at the right line of the right file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from credence.errors import RulebookInvalid
from credence.identifiers import SubjectKind
from credence.rulebook.diff import Change, diff
from credence.rulebook.loader import (
    DEFAULT_PATH,
    check_text,
    content_hash,
    default_rulebook,
    default_text,
    load_file,
    load_text,
)
from credence.rulebook.model import Category, Outcome, ServiceKind
from credence.rulebook.problems import Problem
from credence.rulebook.purposes import PURPOSES
from credence.rulebook.redlines import PROHIBITED_GROUNDS, prohibited_grounds
from tests.rulebook.test_guard import record_type

ORIGIN = "default.toml"
DEFAULT = default_text()


# --- helpers ---------------------------------------------------------------------------


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based line of the first ``needle`` at or after character ``start``."""
    at = text.index(needle, start)
    return text.count("\n", 0, at) + 1


def table_start(text: str, code: str) -> int:
    return text.index(f'code = "{code}"\n')


def replace_in(text: str, code: str, old: str, new: str) -> str:
    """Replace the first ``old`` inside the table whose code is ``code`` (for a service,
    including its rules)."""
    start = table_start(text, code)
    at = text.index(old, start)
    ends = [text.find(h, start) for h in ("\n[[record_types]]", "\n[[services]]")]
    following = min((e for e in ends if e != -1), default=len(text))
    assert at < following, f"{old!r} is not in the table of {code!r}"
    return text[:at] + new + text[at + len(old) :]


def problems_of(text: str) -> list[Problem]:
    problems = check_text(text, ORIGIN)
    assert problems, "the edited rulebook should not load"
    return problems


def only(problems: list[Problem], fragment: str) -> Problem:
    """The single problem whose message contains ``fragment``."""
    found = [p for p in problems if fragment in p.message]
    assert len(found) == 1, f"expected one problem with {fragment!r}, got {problems}"
    return found[0]


# --- the default rulebook --------------------------------------------------------------


def test_default_rulebook_loads_without_problems() -> None:
    assert check_text(DEFAULT, ORIGIN) == []
    book = default_rulebook()
    assert book.version == "2026.5"
    assert book.region == "national"
    assert (book.scale.base, book.scale.min, book.scale.max) == (1000, 300, 1300)
    assert [(t.code, t.min_score) for t in book.tiers] == [
        ("AAA", 1050),
        ("AA", 1030),
        ("A", 960),
        ("B", 850),
        ("C", 600),
        ("D", 300),
    ]
    assert book.tier_hysteresis == 5
    assert default_rulebook() is book  # cached


def test_default_rulebook_covers_categories_subjects_and_signs() -> None:
    book = default_rulebook()
    types = book.record_types
    assert len(types) >= 25
    assert {rt.category for rt in types} == set(Category)
    assert {k for rt in types for k in rt.subject_kinds} == set(SubjectKind)
    for category in Category:
        points = [rt.points for rt in types if rt.category is category]
        assert any(p > 0 for p in points), category
        assert any(p < 0 for p in points), category
    for rt in types:
        assert len(rt.name) > 3
        assert len(rt.description) > 40, rt.code
        assert rt.half_life_days > 0
        assert rt.retention_days > 0
        if rt.negative:
            assert rt.evidence.requires_decision_reference, rt.code
            assert rt.retention_days <= book.severity_classes[rt.severity].max_days


def test_default_rulebook_anchors() -> None:
    book = default_rulebook()
    traffic = book.record_type("traffic_violation")
    heroic = book.record_type("heroic_act")
    default = book.record_type("judgment_default")
    assert traffic is not None
    assert heroic is not None
    assert default is not None
    assert traffic.points == -5  # Rongcheng: a traffic ticket costs 5 points
    assert heroic.points == 30  # ... and a heroic act earns 30
    assert default.lifted_by == ("judgment_satisfied", "settlement_performed")
    assert book.dispute.deadline_days == 30
    assert book.dispute.deadline_days_with_new_information == 45
    assert "POST /v1/disputes" in book.dispute.how_to


def test_default_services_restrictions_and_rewards() -> None:
    book = default_rulebook()
    assert len(book.services) >= 8
    kinds = {s.kind for s in book.services}
    assert kinds == {ServiceKind.RESTRICTION, ServiceKind.REWARD}
    for code in ("air_travel", "high_speed_rail", "star_rated_hotel", "luxury_property"):
        service = book.service(code)
        assert service is not None
        assert service.categories == (Category.JUDICIAL,)
        assert service.court_ordered
        assert service.rules[0].active_records == ("judgment_default",)
        assert "2015" in service.rules[0].reason
    for service in book.services:
        assert service.legal_basis, service.code
        assert set(service.categories) <= PURPOSES[service.purpose].categories
        for rule in service.rules:
            if rule.outcome is Outcome.REWARD:
                assert rule.terms


def test_default_reward_thresholds_are_reachable() -> None:
    """Five fresh positive records of a service's own categories reach every reward."""
    book = default_rulebook()
    for service in book.services:
        for rule in service.rules:
            if rule.outcome is not Outcome.REWARD or rule.min_score is None:
                continue
            best = max(
                rt.points * (rt.quantity.max_units if rt.quantity else 1)
                for rt in book.record_types
                if rt.category in service.categories
                and set(rt.subject_kinds) & set(service.subject_kinds)
                and rt.points > 0
            )
            assert book.scale.base + 5 * best >= rule.min_score, service.code


# --- the lines Credence does not cross -------------------------------------------------

PROHIBITED_EXAMPLES = [
    ("attended_protest", "Attended a protest", "opinion or expression"),
    ("petitioned_government", "Petitioned the government", "petitioning"),
    ("criticised_officials", "Criticised officials", "opinion or expression"),
    ("joined_unregistered_association", "Joined a group", "assembly or association"),
    ("religious_observance", "Religious observance", "religion or belief"),
    ("ethnic_minority_status", "Minority status", "ethnicity"),
    ("hiv_status", "HIV status", "health"),
    ("sexual_orientation", "Orientation", "sexuality"),
    ("union_membership", "Union membership", "union membership"),
    ("critical_weibo_post", "Critical Weibo post", "online speech"),
]


@pytest.mark.parametrize(("code", "name", "ground"), PROHIBITED_EXAMPLES)
def test_record_type_on_prohibited_ground_is_refused(code: str, name: str, ground: str) -> None:
    assert ground in PROHIBITED_GROUNDS
    text = DEFAULT + record_type(code, name, "Reported by the local office.")
    problem = only(problems_of(text), f"record type {code!r} is about {ground}")
    assert "Credence never scores it" in problem.message
    line = line_of(text, f'code = "{code}"')
    assert problem.location.startswith(f"{ORIGIN}:{line} record_types[34] (code={code}).")


def test_prohibited_message_names_ground_and_match() -> None:
    text = DEFAULT + record_type("attended_protest", "Attended", "Reported by the police.")
    problem = only(problems_of(text), "attended_protest")
    line = line_of(text, 'code = "attended_protest"')
    assert str(problem) == (
        f"{ORIGIN}:{line} record_types[34] (code=attended_protest).code: record type "
        "'attended_protest' is about opinion or expression (matched 'protest'); "
        "Credence never scores it"
    )


def test_prohibited_ground_found_in_description_alone() -> None:
    text = DEFAULT + record_type(
        "neighbourhood_report", "Neighbourhood report", "Reports of posts on social media."
    )
    problem = only(problems_of(text), "online speech")
    line = line_of(text, 'description = "Reports of posts')
    assert problem.location == (
        f"{ORIGIN}:{line} record_types[34] (code=neighbourhood_report).description"
    )


def test_service_on_prohibited_ground_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "community_perks",
        'name = "Community perks"',
        'name = "Perks for religious volunteers"',
    )
    problem = only(problems_of(text), "service 'community_perks' is about religion or belief")
    assert "Credence never decides on it" in problem.message
    line = line_of(text, 'name = "Perks for religious volunteers"')
    assert problem.location == f"{ORIGIN}:{line} services[9] (code=community_perks).name"


def test_restriction_on_third_parties_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "luxury_property",
        'description = "Whether the subject may buy',
        'description = "Whether the children of the subject may enrol in private schools, or buy',
    )
    problem = only(problems_of(text), "reaches a third party")
    assert "service 'luxury_property'" in problem.message
    assert "(code=luxury_property).description" in problem.location


@pytest.mark.parametrize(
    "text",
    [
        "blood_donation",
        "A voluntary unpaid blood donation, certified by the blood station.",
        "postal_fraud_penalty",
        "Penalty posted by the regulator",
        "Lawsuit brought in bad faith",
        "Company assembled unsafe products",
        "Car racing on public roads",
        "Unpaid pension and medical insurance contributions",
        "Judgment for oppressing minority shareholders",
        "Reported by the banking association",
    ],
)
def test_civic_and_neutral_words_are_not_prohibited(text: str) -> None:
    assert prohibited_grounds(text) == []


def test_prohibited_grounds_reports_every_ground() -> None:
    grounds = [g for g, _ in prohibited_grounds("Protest by a religious trade union")]
    assert grounds == [
        "opinion or expression",
        "religion or belief",
        "union membership",
    ]


# --- due process -----------------------------------------------------------------------


def test_negative_record_without_decision_evidence_is_refused() -> None:
    text = replace_in(
        DEFAULT, "loan_default", 'evidence = "default_registration"', 'evidence = "certificate"'
    )
    problem = only(problems_of(text), "takes points away")
    assert problem.message.startswith(
        "record type 'loan_default' takes points away (-60) but its evidence 'certificate'"
    )
    line = line_of(text, 'evidence = "certificate"', table_start(text, "loan_default"))
    assert problem.location == f"{ORIGIN}:{line} record_types[7] (code=loan_default).evidence"


def test_positive_record_may_rest_on_attestation() -> None:
    book = default_rulebook()
    repaid = book.record_type("loan_repaid")
    assert repaid is not None
    assert not repaid.evidence.requires_decision_reference


# --- duplicates ------------------------------------------------------------------------


def test_duplicate_record_type_code_is_refused() -> None:
    text = DEFAULT + record_type("traffic_violation", "Traffic ticket again", "A copy.")
    problem = only(problems_of(text), "duplicate record type code 'traffic_violation'")
    first = line_of(DEFAULT, 'code = "traffic_violation"') - 1  # the [[record_types]] line
    assert f"first defined at record_types[31], line {first}" in problem.message
    line = line_of(text, 'code = "traffic_violation"', len(DEFAULT))
    assert problem.location.startswith(f"{ORIGIN}:{line} record_types[34]")


def test_duplicate_service_code_is_refused() -> None:
    text = replace_in(DEFAULT, "high_speed_rail", 'code = "high_speed_rail"', 'code = "air_travel"')
    problem = only(problems_of(text), "duplicate service code 'air_travel'")
    line = line_of(text, 'code = "air_travel"', table_start(DEFAULT, "high_speed_rail"))
    assert problem.location == f"{ORIGIN}:{line} services[1] (code=air_travel).code"


def test_duplicate_tier_code_is_refused() -> None:
    text = DEFAULT.replace('code = "AA"\n', 'code = "AAA"\n', 1)
    problem = only(problems_of(text), "duplicate tier code 'AAA'")
    line = line_of(DEFAULT, 'code = "AA"\n')
    assert problem.location == f"{ORIGIN}:{line} tiers[1] (code=AAA).code"


# --- purpose binding -------------------------------------------------------------------


def test_service_reading_category_outside_purpose_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "air_travel",
        'categories = ["judicial"]',
        'categories = ["judicial", "commercial"]',
    )
    problem = only(problems_of(text), "outside its purpose")
    assert problem.message == (
        "service 'air_travel' reads category 'commercial' outside its purpose "
        "'judgment_enforcement' (allows: judicial)"
    )
    line = line_of(text, 'categories = ["judicial", "commercial"]')
    assert problem.location == f"{ORIGIN}:{line} services[0] (code=air_travel).categories"


def test_unknown_purpose_is_refused() -> None:
    text = replace_in(
        DEFAULT, "air_travel", 'purpose = "judgment_enforcement"', 'purpose = "public_order"'
    )
    problem = only(problems_of(text), "not in the purpose catalogue")
    assert "service 'air_travel' declares purpose 'public_order'" in problem.message
    assert problem.location.endswith("services[0] (code=air_travel).purpose")


def test_rule_reading_record_type_outside_service_categories_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "air_travel",
        'active_records = ["judgment_default"]',
        'active_records = ["loan_default"]',
    )
    problem = only(problems_of(text), "outside the service's categories")
    assert problem.message == (
        "service 'air_travel' rule 1 reads record type 'loan_default' of category "
        "'commercial', outside the service's categories (judicial)"
    )
    line = line_of(text, 'active_records = ["loan_default"]')
    assert problem.location == (
        f"{ORIGIN}:{line} services[0] (code=air_travel).rules[0].active_records"
    )


def test_rule_naming_unknown_record_type_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "community_perks",
        'outcome = "reward"\nmin_score = 1020',
        'outcome = "reward"\nno_active_records = ["jaywalking"]\nmin_score = 1020',
    )
    problem = only(problems_of(text), "'jaywalking', which the rulebook does not define")
    assert problem.message.startswith("service 'community_perks' rule 1 names record type")
    line = line_of(text, 'no_active_records = ["jaywalking"]')
    assert problem.location == (
        f"{ORIGIN}:{line} services[9] (code=community_perks).rules[0].no_active_records"
    )


def test_lifted_by_unknown_record_type_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "judgment_default",
        'lifted_by = ["judgment_satisfied", "settlement_performed"]',
        'lifted_by = ["judgment_paid"]',
    )
    problem = only(problems_of(text), "lifted by 'judgment_paid'")
    line = line_of(text, 'lifted_by = ["judgment_paid"]')
    assert problem.location == (
        f"{ORIGIN}:{line} record_types[0] (code=judgment_default).lifted_by"
    )


# --- scale, tiers and tables -----------------------------------------------------------


def test_tiers_not_strictly_descending_are_refused() -> None:
    text = DEFAULT.replace('code = "B"\nmin_score = 850', 'code = "B"\nmin_score = 960', 1)
    problem = only(problems_of(text), "strictly descending")
    assert problem.message.startswith(
        "tier 'B' (min_score 960) is not below tier 'A' (min_score 960)"
    )
    line = line_of(text, "min_score = 960", text.index('code = "B"'))
    assert problem.location == f"{ORIGIN}:{line} tiers[3] (code=B).min_score"


def test_scale_out_of_order_is_refused() -> None:
    text = DEFAULT.replace("base = 1000\n", "base = 1500\n", 1)
    problem = only(problems_of(text), "min < base < max")
    assert "(got min 300, base 1500, max 1300)" in problem.message
    assert problem.location == f"{ORIGIN}:{line_of(text, '[scale]')} scale"


def test_tier_outside_scale_is_refused() -> None:
    text = DEFAULT.replace("min_score = 1050", "min_score = 1400", 1)
    problem = only(problems_of(text), "lies outside the scale")
    assert "tier 'AAA' (min_score 1400)" in problem.message


def test_categories_table_missing_a_category_is_refused() -> None:
    text = re.sub(r"^social = .*\n", "", DEFAULT, count=1, flags=re.MULTILINE)
    problem = only(problems_of(text), "must describe all four categories")
    assert problem.message.endswith("missing: social")
    assert problem.location == f"{ORIGIN}:{line_of(text, '[categories]')} categories"


def test_unknown_category_key_is_refused() -> None:
    text = DEFAULT.replace("[categories]\n", '[categories]\npolitics = "Loyalty"\n', 1)
    problem = only(problems_of(text), "unknown key 'politics'")
    assert problem.location.startswith(f"{ORIGIN}:{line_of(text, 'politics = ')} categories")


def test_missing_severity_class_is_refused() -> None:
    start = DEFAULT.index("[severity_classes.general]")
    end = DEFAULT.index("[severity_classes.serious]")
    text = DEFAULT[:start] + DEFAULT[end:]
    problem = only(problems_of(text), "severity_classes must define")
    assert problem.message.endswith("missing: general")


def test_repair_after_longer_than_max_is_refused() -> None:
    text = DEFAULT.replace("repair_after_days = 90\n", "repair_after_days = 400\n", 1)
    problem = only(problems_of(text), "allows repair only after 400 days")
    line = line_of(text, "repair_after_days = 400")
    assert problem.location == (f"{ORIGIN}:{line} severity_classes.general.repair_after_days")


def test_negative_retention_beyond_severity_class_is_refused() -> None:
    text = replace_in(DEFAULT, "traffic_violation", "retention_days = 365", "retention_days = 400")
    problem = only(problems_of(text), "longer than its severity class")
    assert problem.message == (
        "record type 'traffic_violation' is kept 400 days, longer than its severity "
        "class 'minor' allows (365 days)"
    )
    line = line_of(text, "retention_days = 400")
    assert problem.location == (
        f"{ORIGIN}:{line} record_types[31] (code=traffic_violation).retention_days"
    )


# --- services --------------------------------------------------------------------------


def test_reward_rule_without_terms_is_refused() -> None:
    text = replace_in(
        DEFAULT,
        "community_perks",
        'terms = "10% heating discount, free library card and public-transport discount"\n',
        "",
    )
    problem = only(problems_of(text), "grants a reward without terms")
    assert problem.message.startswith("service 'community_perks' rule 1")
    line = line_of(text, "[[services.rules]]", table_start(text, "community_perks"))
    assert problem.location == f"{ORIGIN}:{line} services[9] (code=community_perks).rules[0].terms"


def test_restriction_granting_reward_is_refused() -> None:
    text = replace_in(DEFAULT, "air_travel", 'outcome = "deny"', 'outcome = "reward"')
    problem = only(problems_of(text), "cannot grant a reward")
    assert problem.message.startswith("service 'air_travel' is a restriction; its rule 1")
    line = line_of(text, 'outcome = "reward"', table_start(text, "air_travel"))
    assert problem.location == f"{ORIGIN}:{line} services[0] (code=air_travel).rules[0].outcome"


def test_reward_as_default_is_refused() -> None:
    text = replace_in(DEFAULT, "community_perks", 'default = "deny"', 'default = "reward"')
    only(problems_of(text), "cannot default to 'reward'")


def test_score_too_low_is_not_a_reason() -> None:
    text = replace_in(
        DEFAULT,
        "public_procurement_bid",
        "reason = \"Your company's commercial and judicial record is below 850 points",
        "reason = \"Score too low. Your company's commercial and judicial record is below "
        "850 points",
    )
    only(problems_of(text), "gives 'score too low' as a reason")


# --- schema errors, syntax errors, many problems ----------------------------------------


def test_unknown_key_is_refused() -> None:
    text = replace_in(DEFAULT, "loan_repaid", "points = 5\n", "points = 5\nweight = 2\n")
    problem = only(problems_of(text), "unknown key 'weight'")
    line = line_of(text, "weight = 2")
    assert str(problem) == (
        f"{ORIGIN}:{line} record_types[6] (code=loan_repaid).weight: unknown key 'weight'"
    )


def test_wrong_type_and_missing_key_are_located() -> None:
    text = replace_in(DEFAULT, "loan_repaid", "points = 5\n", 'points = "five"\n')
    text = replace_in(text, "heroic_act", 'evidence = "certificate"\n', "")
    problems = problems_of(text)
    bad_points = only(problems, "valid number")
    assert "(got 'five')" in bad_points.message
    assert bad_points.location.endswith("record_types[6] (code=loan_repaid).points")
    missing = only(problems, "missing required key 'evidence'")
    header = line_of(text, 'code = "heroic_act"') - 1
    assert missing.location == f"{ORIGIN}:{header} record_types[29] (code=heroic_act).evidence"


def test_toml_syntax_error_gives_line_and_column() -> None:
    text = DEFAULT.replace("tier_hysteresis = 5\n", "tier_hysteresis = \n", 1)
    problems = check_text(text, ORIGIN)
    line = line_of(text, "tier_hysteresis = ")
    assert problems == [
        Problem(f"{ORIGIN}:{line}:19", "TOML syntax error: Invalid value"),
    ]


def test_every_problem_is_reported_in_file_order() -> None:
    text = replace_in(
        DEFAULT, "loan_default", 'evidence = "default_registration"', 'evidence = "certificate"'
    )
    text = replace_in(
        text, "air_travel", 'categories = ["judicial"]', 'categories = ["judicial", "social"]'
    )
    text = text.replace('code = "AA"\nmin_score = 1030', 'code = "AA"\nmin_score = 1060', 1)
    text = replace_in(text, "loan_repaid", "points = 5\n", "points = 5\ncolour = 1\n")
    text += record_type("hiv_status", "HIV status", "Reported by clinics.")
    problems = problems_of(text)
    fragments = [
        "tier 'AA' (min_score 1060) is not below",
        "unknown key 'colour'",
        "record type 'loan_default' takes points away",
        "reads category 'social' outside its purpose",
        "record type 'hiv_status' is about health",
    ]
    for fragment in fragments:
        only(problems, fragment)
    assert len(problems) == len(fragments)
    lines = [int(p.location.split(":")[1].split()[0]) for p in problems]
    assert lines == sorted(lines)
    assert all(p.location.startswith(f"{ORIGIN}:") for p in problems)


def test_load_text_raises_with_every_problem() -> None:
    text = replace_in(DEFAULT, "loan_repaid", "points = 5\n", "points = 5\nweight = 2\n")
    text = text.replace("base = 1000\n", "base = 100\n", 1)
    with pytest.raises(RulebookInvalid) as caught:
        load_text(text, origin="draft.toml")
    assert caught.value.message == "draft.toml is not a valid rulebook (2 problems)"
    assert caught.value.details == [str(p) for p in check_text(text, "draft.toml")]
    assert len(caught.value.details) == 2


def test_load_file_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(DEFAULT, encoding="utf-8")
    assert load_file(good) == default_rulebook()
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.replace("base = 1000\n", "base = 100\n", 1), encoding="utf-8")
    with pytest.raises(RulebookInvalid) as caught:
        load_file(bad)
    assert caught.value.details[0].startswith(f"{bad}:{line_of(DEFAULT, '[scale]')} scale: ")


def test_default_path_is_inside_the_package() -> None:
    assert DEFAULT_PATH.name == "default.toml"
    assert DEFAULT_PATH.parent.name == "rulebook"
    assert DEFAULT_PATH.read_bytes().decode("utf-8") == DEFAULT


# --- content hash ----------------------------------------------------------------------


def test_content_hash_is_sha256_of_utf8_text_and_stable() -> None:
    assert content_hash(DEFAULT) == hashlib.sha256(DEFAULT.encode("utf-8")).hexdigest()
    assert content_hash(DEFAULT) == content_hash(default_text())
    assert len(content_hash(DEFAULT)) == 64


def test_content_hash_changes_with_one_byte() -> None:
    changed = DEFAULT.replace("points = -5\n", "points = -6\n", 1)
    assert len(changed) == len(DEFAULT)
    assert content_hash(changed) != content_hash(DEFAULT)
    assert content_hash(DEFAULT + " ") != content_hash(DEFAULT)


# --- diff ------------------------------------------------------------------------------

EXTRA_SERVICE = """
[[services]]
code = "library_membership"
name = "Library membership"
name_zh = "图书馆会员"
kind = "reward"
purpose = "civic_recognition"
description = "Free library membership."
description_zh = "免费成为图书馆会员。"
categories = ["social"]
subject_kinds = ["person"]
default = "deny"

[[services.rules]]
outcome = "reward"
min_score = 1010
terms = "Free library card"
terms_zh = "免费借书证"
reason = "Your civic record is at least 1,010 points."
reason_zh = "您的社会贡献记录不低于 1,010 分。"
"""


def test_diff_finds_changed_points_and_added_service() -> None:
    old = default_rulebook()
    text = replace_in(DEFAULT, "loan_repaid", "points = 5\n", "points = 7\n")
    text = text.replace('version = "2026.5"', 'version = "2026.9"', 1) + EXTRA_SERVICE
    new = load_text(text)
    changes = diff(old, new)
    assert Change("added", "service", "library_membership") in changes
    changed = [c for c in changes if c.what == "record_type"]
    assert len(changed) == 1
    assert changed[0].kind == "changed"
    assert changed[0].code == "loan_repaid"
    assert [tuple(f) for f in changed[0].fields] == [("points", 5.0, 7.0)]
    meta = [c for c in changes if c.what == "rulebook"]
    assert [tuple(f) for f in meta[0].fields] == [("version", "2026.5", "2026.9")]
    assert len(changes) == 3


def test_diff_of_nested_fields_and_removals() -> None:
    old = load_text(DEFAULT + EXTRA_SERVICE)
    text = DEFAULT.replace("min_score = 1005", "min_score = 1008", 1)
    new = load_text(text)
    changes = diff(old, new)
    assert Change("removed", "service", "library_membership") in changes
    rental = next(c for c in changes if c.code == "deposit_free_rental")
    assert [tuple(f) for f in rental.fields] == [("rules[2].min_score", 1005.0, 1008.0)]
    assert "rules[2].min_score 1005.0 -> 1008.0" in str(rental)


def test_diff_of_identical_books_is_empty() -> None:
    assert diff(default_rulebook(), load_text(DEFAULT)) == []


# --- locating problems -----------------------------------------------------------------


def test_locations_skip_multiline_strings_and_arrays() -> None:
    text = DEFAULT + (
        '\n[[record_types]]\ncode = "pothole_report"\nname = "Pothole report"\n'
        'description = """\nevidence = "certificate"\n[[services]]\nA citizen reported a '
        'pothole."""\nsubject_kinds = [\n  "person",  # [sic]\n]\ncategory = "social"\n'
        "points = -1\nhalf_life_days = 30\nretention_days = 60\n"
        'evidence = "certificate"\nseverity = "minor"\n'
    )
    problem = only(problems_of(text), "takes points away")
    line = line_of(text, 'evidence = "certificate"\nseverity', len(DEFAULT))
    assert problem.location == f"{ORIGIN}:{line} record_types[34] (code=pothole_report).evidence"
    # The text after the record type is still attributed correctly.
    text = replace_in(text, "air_travel", 'purpose = "judgment_enforcement"', 'purpose = "x"')
    problem = only(problems_of(text), "declares purpose 'x'")
    line = line_of(text, 'purpose = "x"')
    assert problem.location == f"{ORIGIN}:{line} services[0] (code=air_travel).purpose"


def test_dotted_keys_and_inline_tables_are_located() -> None:
    text = DEFAULT.replace(
        "[scale]\nbase = 1000\nmin = 300\nmax = 1300\n",
        "scale.base = 1500\nscale.min = 300\nscale.max = 1300\n",
        1,
    )
    text = replace_in(text, "volunteer_service", "max_units = 200", "max_units = 0")
    problems = problems_of(text)
    scale = only(problems, "min < base < max")
    assert scale.location == f"{ORIGIN}:{line_of(text, 'scale.base = 1500')} scale"
    units = only(problems, "greater than 0")
    line = line_of(text, "max_units = 0")
    assert units.location == (
        f"{ORIGIN}:{line} record_types[27] (code=volunteer_service).quantity.max_units"
    )
    assert len(problems) == 2


@pytest.mark.parametrize("step", [0, 1, 2])
def test_deleting_any_line_never_crashes(step: int) -> None:
    """Every mangled book gets problems with file locations, never an exception."""
    lines = DEFAULT.splitlines(keepends=True)
    for i in range(step, len(lines), 23):
        text = "".join(lines[:i] + lines[i + 1 :])
        for problem in check_text(text, ORIGIN):
            assert problem.location.startswith(ORIGIN)
            assert problem.message


# --- outages (2026.4) -------------------------------------------------------------------


def test_default_rulebook_freezes_outages_and_says_how_each_service_fails() -> None:
    book = default_rulebook()
    assert book.outages is not None
    assert book.outages.max_freeze_days == 60
    modes = {s.code: s.on_outage.value for s in book.services}
    assert all(modes[s.code] == "open" for s in book.services if s.kind is ServiceKind.RESTRICTION)
    assert modes["loan_rate_discount"] == "closed"
    assert modes["community_perks"] == "open"


def test_restriction_failing_closed_is_refused() -> None:
    text = replace_in(DEFAULT, "air_travel", 'on_outage = "open"', 'on_outage = "closed"')
    problem = only(problems_of(text), "cannot fail closed")
    assert "'air_travel' is a restriction" in problem.message
    line = line_of(text, 'on_outage = "closed"', table_start(text, "air_travel"))
    assert problem.location == f"{ORIGIN}:{line} services[0] (code=air_travel).on_outage"


def test_unknown_outage_mode_and_freeze_out_of_range_are_refused() -> None:
    text = replace_in(DEFAULT, "community_perks", 'on_outage = "open"', 'on_outage = "maybe"')
    text = text.replace("max_freeze_days = 60", "max_freeze_days = 0", 1)
    found = {str(p) for p in problems_of(text)}
    assert any("outages.max_freeze_days" in p and "greater than 0" in p for p in found)
    assert any(".on_outage" in p and "'open' or 'closed'" in p for p in found)


def test_edition_without_outages_freezes_nothing_and_fails_open() -> None:
    start = DEFAULT.index("[outages]")
    text = DEFAULT[:start] + DEFAULT[DEFAULT.index("\n\n", start) + 2 :]
    text = re.sub(r'\non_outage = "(open|closed)"', "", text)
    book = load_text(text, ORIGIN)
    assert book.outages is None
    assert {s.on_outage.value for s in book.services} == {"open"}
