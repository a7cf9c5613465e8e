"""The guard: a record type belongs to a conduct domain, on a statute, and speaks of no
protected ground.

The first line is the catalogues of domains and statutes in code: a type that names
none, or one they do not hold, does not load. The second is the lexicon of protected
grounds, which refuses a type whose words speak of one whatever domain it claims. The
paraphrased record types of ``protected-grounds.txt``, written independently of the
guard, are each refused; the default rulebook passes.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credence.errors import RulebookInvalid
from credence.rulebook import store
from credence.rulebook.domains import DOMAINS, STATUTES
from credence.rulebook.loader import (
    check_text,
    content_hash,
    default_rulebook,
    default_text,
    load_text,
)
from credence.rulebook.redlines import PROTECTED_GROUNDS, prohibited_grounds

ORIGIN = "default.toml"
DEFAULT = default_text()


def toml_string(text: str) -> str:
    # A JSON string (escapes as TOML reads them, UTF-8 kept) is a TOML basic string.
    return json.dumps(text, ensure_ascii=False)


def record_type(code: str, name: str, description: str, **fields: str) -> str:
    """A ``[[record_types]]`` table that is valid apart from what the test gives it (a
    negative traffic-safety type of persons, by default)."""
    values = {
        "category": '"social"',
        "domain": '"traffic_safety"',
        "statute": '"road_traffic_safety_law"',
        "subject_kinds": '["person"]',
        "points": "-10",
        "half_life_days": "180",
        "retention_days": "365",
        "evidence": '"administrative_penalty"',
        "severity": '"general"',
        # The default edition is written in Chinese too: a type added to it needs its
        # Chinese texts (neutral words here; a test of the Chinese gives its own).
        "name_zh": '"测试记录类型"',
        "description_zh": '"用于测试的记录类型。"',
        **fields,
    }
    body = "".join(f"{k} = {v}\n" for k, v in values.items() if v)
    return (
        f"\n[[record_types]]\ncode = {toml_string(code)}\nname = {toml_string(name)}\n"
        f"description = {toml_string(description)}\n{body}"
    )


def messages(text: str) -> list[str]:
    return [p.message for p in check_text(text, ORIGIN)]


def about(code: str, ground: str) -> str:
    return f"record type {code!r} is about {ground}"


# --- the default rulebook ---------------------------------------------------------------


def test_every_default_record_type_has_a_domain_and_a_statute_it_allows() -> None:
    assert check_text(DEFAULT, ORIGIN) == []
    for rt in default_rulebook().record_types:
        assert rt.domain in DOMAINS, rt.code
        assert rt.statute in DOMAINS[rt.domain].statutes, rt.code
        for text in (rt.code, rt.name, rt.description):
            assert prohibited_grounds(text) == [], (rt.code, text)


# --- the first line: the catalogues -----------------------------------------------------


def test_an_unapproved_gathering_is_assembly_whatever_domain_it_claims() -> None:
    # The keyword guard let this type through: "gathering" was not one of its words.
    text = DEFAULT + record_type(
        "unapproved_gathering_penalty",
        "Penalty for an unapproved gathering",
        "A penalty for organising an unapproved gathering. Reported by the police with the "
        "penalty decision number.",
    )
    problems = check_text(text, ORIGIN)
    found = [p for p in problems if about("unapproved_gathering_penalty", "assembly") in p.message]
    assert found, problems
    assert all("Credence never scores it" in p.message for p in found)


def test_public_order_is_not_a_domain_and_its_statute_is_not_a_statute() -> None:
    # Neutral words the lexicon has nothing against: the catalogues refuse it.
    code = "administrative_detention_7"
    text = DEFAULT + record_type(
        code,
        "Administrative detention",
        "The public security bureau detained the subject under the administrative "
        "penalties law. Reported by the bureau with the decision number.",
        domain='"public_order"',
        statute='"public_security_administration_punishments_law"',
    )
    assert messages(text) == [
        f"record type {code!r} claims domain 'public_order', which is not a conduct domain "
        f"Credence weighs (domains: {', '.join(DOMAINS)})",
        f"record type {code!r} cites statute 'public_security_administration_punishments_law', "
        "which is not in the statute catalogue",
    ]


def test_a_type_without_a_domain_or_a_statute_is_refused_by_name() -> None:
    text = DEFAULT + record_type(
        "speeding_camera_ticket", "Speed camera ticket", "A speed camera caught the car.", domain=""
    )
    text += record_type(
        "red_light_ticket", "Red light ticket", "Ran a red light at a junction.", statute=""
    )
    with pytest.raises(RulebookInvalid) as caught:
        load_text(text, origin="draft.toml")
    details = caught.value.details
    assert isinstance(details, list)
    assert len(details) == 2
    header = text.count("\n", 0, text.index('code = "speeding_camera_ticket"'))
    n = len(default_rulebook().record_types)  # the two types come after the default's
    assert details[0].startswith(
        f"draft.toml:{header} record_types[{n}] (code=speeding_camera_ticket).domain: record "
        "type 'speeding_camera_ticket' names no conduct domain; every record type declares "
        "the domain it belongs to (domain = one of: debt_repayment, "
    )
    assert f"record_types[{n + 1}] (code=red_light_ticket).statute: record type " in details[1]
    assert details[1].endswith(
        "names no statute; every record type declares the statute that grounds it "
        "(domain 'traffic_safety' allows: road_traffic_safety_law)"
    )


def test_a_statute_must_be_one_its_domain_allows() -> None:
    text = DEFAULT + record_type(
        "parking_fine", "Parking fine", "Parked on a pavement.", statute='"tax_collection_law"'
    )
    assert messages(text) == [
        "record type 'parking_fine' cites statute 'tax_collection_law', which does not ground "
        "domain 'traffic_safety' (it allows: road_traffic_safety_law)"
    ]


def test_a_voluntary_act_only_ever_adds_points() -> None:
    text = DEFAULT + record_type(
        "volunteering_shortfall",
        "Too few volunteer hours",
        "Fewer volunteer hours than the district target. Reported by the volunteer federation.",
        domain='"voluntary_civic_acts"',
        statute='"volunteer_service_regulations"',
    )
    assert messages(text) == [
        "record type 'volunteering_shortfall' takes points away (-10) in domain "
        "'voluntary_civic_acts', which only ever adds points: not doing a voluntary act is "
        "never held against anyone"
    ]


def test_government_performance_is_the_conduct_of_public_bodies() -> None:
    text = DEFAULT + record_type(
        "paid_invoice_on_time",
        "Invoice paid on time",
        "A person paid a supplier's invoice on time.",
        domain='"government_performance"',
        statute='"sme_payment_regulations"',
        subject_kinds='["person", "government"]',
        points="2",
        evidence='"source_attestation"',
        severity='"minor"',
    )
    assert messages(text) == [
        "record type 'paid_invoice_on_time' applies to person, but domain "
        "'government_performance' covers the conduct of government subjects only"
    ]


#: Words of the subjects no statute in the catalogue may be on, in English and Chinese:
#: assembly and demonstration, association and social organisations, the press and
#: publishing, religious affairs, petitioning, the internet and its content, public order.
BARRED_SUBJECTS = re.compile(
    r"assembl|demonstrat|associat|social organi|press|publication|publishing|religio"
    r"|petition|letters and visits|internet|cyber|network|public order|public security"
    r"|集会|游行|示威|社会团体|社会组织|结社|新闻|出版|宗教|信访|互联网|网络|治安",
    re.IGNORECASE,
)


def test_no_statute_on_assembly_association_press_religion_petitioning_or_the_internet() -> None:
    for statute in STATUTES.values():
        for text in (statute.code, statute.title, statute.title_zh):
            assert not BARRED_SUBJECTS.search(text), (statute.code, text)
            assert prohibited_grounds(text) == [], (statute.code, text)
    for domain in DOMAINS.values():
        assert not re.search(r"public.order|security|stability", domain.code + domain.name)
        for text in (domain.code, domain.name, domain.description):
            assert prohibited_grounds(text) == [], (domain.code, text)
        assert domain.statutes
        assert set(domain.statutes) <= set(STATUTES)
    # Every statute grounds some domain, and every statute has both titles.
    assert {s for d in DOMAINS.values() for s in d.statutes} == set(STATUTES)
    assert all(s.title and s.title_zh for s in STATUTES.values())


def test_the_catalogues_cover_what_the_issue_names() -> None:
    for code in (
        "debt_repayment",
        "taxes_and_social_insurance",
        "contract_performance",
        "court_ordered_obligations",
        "fraud",
        "product_and_food_safety",
        "traffic_safety",
        "wages_and_labour",
        "environmental_obligations",
        "voluntary_civic_acts",
        "public_procurement",
        "government_performance",
    ):
        assert code in DOMAINS
    assert DOMAINS["voluntary_civic_acts"].positive_only


# --- editions published before domains were declared ------------------------------------

LEGACY = re.sub(r'^(domain|statute) = "[a-z_]+"\n', "", DEFAULT, flags=re.MULTILINE)


def test_a_published_edition_that_predates_domains_still_reads() -> None:
    assert "domain =" not in LEGACY
    problems = messages(LEGACY)
    assert len(problems) == 2 * len(default_rulebook().record_types)
    with pytest.raises(RulebookInvalid):
        load_text(LEGACY)  # a new book must declare them
    book = load_text(LEGACY, published=True)
    assert all(rt.domain is None and rt.statute is None for rt in book.record_types)
    # Read back as the store and an export read an edition.
    store.clear_cache()
    at = datetime(2020, 1, 1, tzinfo=UTC)
    edition = store.edition_of("2026.1", content_hash(LEGACY), at, LEGACY)
    assert edition.rulebook.record_types == book.record_types
    store.clear_cache()


def test_a_published_edition_declaring_some_domains_must_declare_them_all() -> None:
    text = LEGACY.replace(
        'category = "social"\n',
        'category = "social"\ndomain = "voluntary_civic_acts"\n'
        'statute = "volunteer_service_regulations"\n',
        1,
    )
    with pytest.raises(RulebookInvalid) as caught:
        load_text(text, published=True)
    assert any("names no conduct domain" in d for d in caught.value.details)


def test_a_published_edition_is_still_held_to_the_lexicon() -> None:
    text = LEGACY + record_type(
        "unapproved_gathering_penalty", "Gathering penalty", "Organised a gathering.", domain=""
    ).replace('statute = "road_traffic_safety_law"\n', "")
    with pytest.raises(RulebookInvalid) as caught:
        load_text(text, published=True)
    assert caught.value.details is not None
    assert len(caught.value.details) == 1
    assert about("unapproved_gathering_penalty", "assembly or association") in str(
        caught.value.details[0]
    )


# --- the second line: the lexicon --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ground"),
    [
        ("Organised an unauthorised rally", "assembly or association"),
        ("Took part in a sit-in", "assembly or association"),
        ("Spoke to foreign journalists", "the press"),
        ("Complained to the higher-level authorities", "petitioning"),
        ("Wrote comments about the government", "opinion or expression"),
        ("Shared a post online", "online speech"),
        ("Installed a VPN", "circumventing censorship"),
        ("ＶＰＮ", "circumventing censorship"),  # full-width letters
        ("Climbed over the wall to read blocked websites", "circumventing censorship"),
        ("Attended Friday prayers", "religion or belief"),
        ("Lives with a same-sex partner", "sexuality"),
        ("Unionised the workshop", "union membership"),
        ("Uyghur household", "ethnicity"),
        ("Was hospitalised for depression", "health"),
        ("在朋友圈发表不当言论", "opinion or expression"),
        ("接受 境外 媒体 采访", "the press"),
        ("组织群众聚集", "assembly or association"),
        ("多次到省里信访", "petitioning"),
        ("参加家庭教会礼拜", "religion or belief"),
        ("患有传染病", "health"),
        ("同性伴侣关系", "sexuality"),
        ("参与罢工", "union membership"),
        ("访问被屏蔽的网站", "circumventing censorship"),
        ("散布网络谣言", "online speech"),
        ("藏族居民", "ethnicity"),
    ],
)
def test_the_lexicon_reads_synonyms_inflections_and_chinese(text: str, ground: str) -> None:
    assert ground in PROTECTED_GROUNDS
    assert ground in [g for g, _ in prohibited_grounds(text)], prohibited_grounds(text)


@pytest.mark.parametrize(
    "text",
    [
        "Violated the Government Procurement Law",
        "违反政府采购法",  # 违反 + 政府: not "anti-government"
        "违反动物防疫法",  # 违反 + 动物: not "reactionary"
        "相同性质的违约",  # 相同 + 性质: not "same sex"
        "逾期未偿还贷款",
        "Occupational health and safety penalty",
        "Unpaid wages owed to migrant workers",
        "Judgment performed in full",
        "Tax returns filed on time",
        "The public body disclosed its budget and final accounts",
    ],
)
def test_ordinary_conduct_is_not_a_protected_ground(text: str) -> None:
    assert prohibited_grounds(text) == []


# --- the paraphrases written independently of the guard ----------------------------------

GROUNDS_FILE = "protected-grounds.txt"
ROOT = Path(__file__).resolve().parents[2]


def grounds_file() -> Path | None:
    """``protected-grounds.txt``: where ``CREDENCE_PROTECTED_GROUNDS`` points, else
    ``data/`` of the shared directory beside the repository, else the machine's."""
    named = os.environ.get("CREDENCE_PROTECTED_GROUNDS")
    if named:
        return Path(named)  # a variable pointing nowhere fails below; it is not skipped
    for candidate in (
        ROOT.parent / "shared" / "data" / GROUNDS_FILE,
        Path("/work/shared/data") / GROUNDS_FILE,
    ):
        if candidate.is_file():
            return candidate
    return None


def paraphrases() -> list[tuple[str, str]]:
    """The file's ``code | description`` lines (comments and blank lines skipped)."""
    path = grounds_file()
    if path is None:
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        code, sep, description = (part.strip() for part in line.partition("|"))
        if not (sep and code and description):
            raise ValueError(f"malformed line in {path}: {line!r}")
        out.append((code, description))
    return out


PARAPHRASES = paraphrases()

#: Domains a paraphrase may plausibly claim (any kind of subject, negative points
#: allowed), each with the first statute it allows; the paraphrases take them in turn.
CLAIMS = [
    (d.code, d.statutes[0])
    for d in DOMAINS.values()
    if not d.positive_only and d.subject_kinds is None
]


def test_the_paraphrase_list_is_there() -> None:
    path = grounds_file()
    if path is None:
        pytest.skip(
            f"{GROUNDS_FILE} was not found (set CREDENCE_PROTECTED_GROUNDS to its path): "
            "the paraphrases of protected grounds were not checked"
        )
    assert path.is_file(), f"CREDENCE_PROTECTED_GROUNDS names {path}, which is not a file"
    assert len(PARAPHRASES) >= 10


@pytest.mark.parametrize(
    ("index", "code", "description"),
    [(i, code, description) for i, (code, description) in enumerate(PARAPHRASES)],
    ids=[code for code, _ in PARAPHRASES],
)
def test_every_paraphrase_is_refused_whatever_domain_it_claims(
    index: int, code: str, description: str
) -> None:
    domain, statute = CLAIMS[index % len(CLAIMS)]
    text = DEFAULT + record_type(
        code,
        description,
        description,
        domain=toml_string(domain),
        statute=toml_string(statute),
    )
    with pytest.raises(RulebookInvalid) as caught:
        load_text(text, origin=ORIGIN)
    details = caught.value.details
    assert isinstance(details, list)
    assert details
    # Refused by the lexicon, and for nothing else: the type is valid in every other way.
    assert all(f"record type {code!r} is about " in d for d in details), details
