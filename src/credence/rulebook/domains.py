"""The fixed catalogues of what a record type may be about: conduct domains and statutes.

Every record type names the conduct *domain* it belongs to and the *statute* that
grounds it (``domain = "traffic_safety"``, ``statute = "road_traffic_safety_law"``), and
the loader refuses a type that names none, an unknown one, or a statute its domain does
not list (:mod:`credence.rulebook.checks`). This is an allowlist: a rulebook can weigh
only conduct that falls in one of the domains below, on one of the statutes below.

Like the purposes (:mod:`credence.rulebook.purposes`), both catalogues live in code, not
in the rulebook: a rulebook author cannot add a domain or a statute by editing a weight
file. Changing them is a code change, reviewed and released like any other.

What is left out is left out on purpose, and is the point of the catalogues:

* public-order offences are not a domain: disturbing public order, gathering crowds,
  "picking quarrels", spreading rumours and the like are what a scoring system is
  turned against speech and assembly with, so no record type can be filed under them;
* no statute on assembly and demonstration, association and social organisations, the
  press and publishing, religious affairs, petitioning (letters and visits), or the
  content of the internet is in the statute catalogue, so no record type can rest on
  one. Where a statute in the catalogue is broad (the Criminal Law), the entry names the
  provisions that may be cited, not the whole statute.

The wording check of :mod:`credence.rulebook.redlines` is a second line behind these
catalogues: it refuses a type whose words are about a protected ground whatever domain
it claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from credence.identifiers import SubjectKind

__all__ = ["DOMAINS", "STATUTES", "Domain", "Statute"]


@dataclass(frozen=True)
class Statute:
    """A statute (or the named provisions of one) that may ground a record type."""

    code: str
    #: The title in English, with the provisions that may be cited where that matters.
    title: str
    #: The title in Chinese, as promulgated.
    title_zh: str


@dataclass(frozen=True)
class Domain:
    """An area of conduct a record type may belong to, and the statutes that ground it."""

    code: str
    name: str
    description: str
    #: Codes of the statutes (:data:`STATUTES`) a record type of this domain may cite.
    statutes: tuple[str, ...]
    #: Conduct that may only add points: not doing something voluntary is never held
    #: against anyone.
    positive_only: bool = False
    #: The kinds of subject whose conduct the domain covers (None: every kind).
    subject_kinds: frozenset[SubjectKind] | None = None


STATUTES: dict[str, Statute] = {
    s.code: s
    for s in (
        # -- contracts, debts and fraud
        Statute(
            "civil_code_contracts",
            "Civil Code of the People's Republic of China, Book Three: Contracts",
            "《中华人民共和国民法典》第三编 合同",
        ),
        Statute(
            "civil_code_fraud",
            "Civil Code of the People's Republic of China, Arts. 148-149: civil juristic "
            "acts performed under fraud",
            "《中华人民共和国民法典》第一百四十八条至第一百四十九条（欺诈）",
        ),
        Statute(
            "criminal_law_fraud",
            "Criminal Law of the People's Republic of China, the provisions on fraud only: "
            "financial fraud (Arts. 192-200), contract fraud (Art. 224) and fraud (Art. 266)",
            "《中华人民共和国刑法》诈骗犯罪条款（第一百九十二条至第二百条、第二百二十四条、"
            "第二百六十六条）",
        ),
        Statute(
            "commercial_banking_law",
            "Commercial Banking Law of the People's Republic of China",
            "《中华人民共和国商业银行法》",
        ),
        Statute(
            "credit_reporting_regulation",
            "Regulation on the Administration of the Credit Reporting Industry (State "
            "Council, 2013)",
            "《征信业管理条例》",
        ),
        # -- taxes and social insurance
        Statute(
            "tax_collection_law",
            "Law of the People's Republic of China on the Administration of Tax Collection",
            "《中华人民共和国税收征收管理法》",
        ),
        Statute(
            "social_insurance_law",
            "Social Insurance Law of the People's Republic of China",
            "《中华人民共和国社会保险法》",
        ),
        # -- courts
        Statute(
            "civil_procedure_enforcement",
            "Civil Procedure Law of the People's Republic of China, Part Three: Procedure "
            "of Enforcement",
            "《中华人民共和国民事诉讼法》第三编 执行程序",
        ),
        Statute(
            "civil_procedure_obstruction",
            "Civil Procedure Law of the People's Republic of China, Chapter Ten: Compulsory "
            "Measures against Obstruction of Civil Proceedings",
            "《中华人民共和国民事诉讼法》第十章 对妨害民事诉讼的强制措施",
        ),
        Statute(
            "spc_defaulter_list",
            "Supreme People's Court, Provisions on Announcing the List of Dishonest "
            "Judgment Debtors (2013, amended 2017)",
            "《最高人民法院关于公布失信被执行人名单信息的若干规定》",
        ),
        Statute(
            "spc_high_consumption",
            "Supreme People's Court, Provisions on Restricting High Consumption and "
            "Related Consumption by Judgment Debtors (2010, amended 2015)",
            "《最高人民法院关于限制被执行人高消费及有关消费的若干规定》",
        ),
        Statute(
            "administrative_litigation_law",
            "Administrative Litigation Law of the People's Republic of China, Arts. 94-96: "
            "performance of judgments, including by administrative organs",
            "《中华人民共和国行政诉讼法》第九十四条至第九十六条",
        ),
        # -- businesses: filings, licences, products, workers, environment
        Statute(
            "enterprise_information_disclosure",
            "Interim Regulations on Enterprise Information Disclosure (State Council, 2014)",
            "《企业信息公示暂行条例》",
        ),
        Statute(
            "market_entity_registration",
            "Regulations on the Administration of the Registration of Market Entities "
            "(State Council, 2021)",
            "《中华人民共和国市场主体登记管理条例》",
        ),
        Statute(
            "administrative_licensing_law",
            "Administrative Licensing Law of the People's Republic of China",
            "《中华人民共和国行政许可法》",
        ),
        Statute(
            "product_quality_law",
            "Product Quality Law of the People's Republic of China",
            "《中华人民共和国产品质量法》",
        ),
        Statute(
            "food_safety_law",
            "Food Safety Law of the People's Republic of China",
            "《中华人民共和国食品安全法》",
        ),
        Statute(
            "labour_contract_law",
            "Labour Contract Law of the People's Republic of China",
            "《中华人民共和国劳动合同法》",
        ),
        Statute(
            "migrant_worker_wages_regulations",
            "Regulations on Guaranteeing the Payment of Wages to Migrant Workers (State "
            "Council, 2019)",
            "《保障农民工工资支付条例》",
        ),
        Statute(
            "environmental_protection_law",
            "Environmental Protection Law of the People's Republic of China",
            "《中华人民共和国环境保护法》",
        ),
        Statute(
            "environmental_impact_assessment_law",
            "Environmental Impact Assessment Law of the People's Republic of China",
            "《中华人民共和国环境影响评价法》",
        ),
        # -- roads and public transport
        Statute(
            "road_traffic_safety_law",
            "Road Traffic Safety Law of the People's Republic of China",
            "《中华人民共和国道路交通安全法》",
        ),
        Statute(
            "railway_law",
            "Railway Law of the People's Republic of China",
            "《中华人民共和国铁路法》",
        ),
        # -- public contracts and public bodies
        Statute(
            "government_procurement_law",
            "Government Procurement Law of the People's Republic of China",
            "《中华人民共和国政府采购法》",
        ),
        Statute(
            "tendering_and_bidding_law",
            "Tendering and Bidding Law of the People's Republic of China",
            "《中华人民共和国招标投标法》",
        ),
        Statute(
            "sme_payment_regulations",
            "Regulations on Ensuring Payments to Small and Medium-sized Enterprises (State "
            "Council, 2020)",
            "《保障中小企业款项支付条例》",
        ),
        Statute(
            "open_government_information_regulations",
            "Regulations of the People's Republic of China on Open Government Information "
            "(State Council, 2007, revised 2019)",
            "《中华人民共和国政府信息公开条例》",
        ),
        Statute(
            "budget_law",
            "Budget Law of the People's Republic of China",
            "《中华人民共和国预算法》",
        ),
        # -- voluntary civic acts
        Statute(
            "blood_donation_law",
            "Blood Donation Law of the People's Republic of China",
            "《中华人民共和国献血法》",
        ),
        Statute(
            "volunteer_service_regulations",
            "Regulations on Volunteer Service (State Council, 2017)",
            "《志愿服务条例》",
        ),
        Statute(
            "charity_law",
            "Charity Law of the People's Republic of China",
            "《中华人民共和国慈善法》",
        ),
        Statute(
            "brave_acts_guidance",
            "Guidance on Strengthening the Protection of the Rights and Interests of "
            "Persons Who Act Bravely for a Just Cause (issued through the General Office "
            "of the State Council, 2012)",
            "《关于加强见义勇为人员权益保护的意见》",
        ),
        Statute(
            "civil_code_rescue",
            "Civil Code of the People's Republic of China, Arts. 183-184: protecting "
            "others and giving emergency aid",
            "《中华人民共和国民法典》第一百八十三条至第一百八十四条",
        ),
    )
}


_DOMAINS: tuple[Domain, ...] = (
    Domain(
        "debt_repayment",
        "Repayment of debts",
        "Repaying loans, credit cards and instalments as agreed.",
        ("civil_code_contracts", "commercial_banking_law", "credit_reporting_regulation"),
    ),
    Domain(
        "contract_performance",
        "Contract performance",
        "Performing commercial contracts: delivering what was sold, paying what is owed, "
        "returning what was rented.",
        ("civil_code_contracts",),
    ),
    Domain(
        "taxes_and_social_insurance",
        "Taxes and social insurance",
        "Filing returns and paying tax and social insurance contributions when due.",
        ("tax_collection_law", "social_insurance_law"),
    ),
    Domain(
        "court_ordered_obligations",
        "Court-ordered obligations",
        "Performing judgments, rulings and settlements confirmed by a court, and not "
        "evading their enforcement.",
        (
            "civil_procedure_enforcement",
            "civil_procedure_obstruction",
            "spc_defaulter_list",
            "spc_high_consumption",
            "administrative_litigation_law",
        ),
    ),
    Domain(
        "honesty_in_court",
        "Honesty in court proceedings",
        "Not bringing sham lawsuits, fabricating evidence or otherwise abusing the courts.",
        ("civil_procedure_obstruction",),
    ),
    Domain(
        "fraud",
        "Fraud",
        "Deceiving others to obtain money, property, credit or a contract, as a court found.",
        ("civil_code_fraud", "criminal_law_fraud"),
    ),
    Domain(
        "business_filings_and_licences",
        "Business filings and licences",
        "Keeping a business's registration, annual reports and licences in order.",
        (
            "enterprise_information_disclosure",
            "market_entity_registration",
            "administrative_licensing_law",
        ),
    ),
    Domain(
        "product_and_food_safety",
        "Product and food safety",
        "Selling products and food that are safe and as described.",
        ("product_quality_law", "food_safety_law"),
    ),
    Domain(
        "traffic_safety",
        "Traffic safety",
        "Driving and using the roads safely.",
        ("road_traffic_safety_law",),
    ),
    Domain(
        "transport_fares",
        "Transport fares",
        "Paying the fare for public passenger transport.",
        ("railway_law", "civil_code_contracts"),
    ),
    Domain(
        "wages_and_labour",
        "Wages and labour obligations",
        "An employer paying wages in full and on time and keeping its labour contracts.",
        ("labour_contract_law", "migrant_worker_wages_regulations"),
    ),
    Domain(
        "environmental_obligations",
        "Environmental obligations",
        "Keeping to emission limits, permits and environmental impact assessments.",
        ("environmental_protection_law", "environmental_impact_assessment_law"),
    ),
    Domain(
        "public_procurement",
        "Public procurement",
        "Bidding honestly for public contracts.",
        ("government_procurement_law", "tendering_and_bidding_law"),
    ),
    Domain(
        "government_performance",
        "Government performance",
        "A public body keeping its own contracts, paying its suppliers on time, complying "
        "with court judgments against it and disclosing the information the law requires "
        "it to disclose.",
        (
            "civil_code_contracts",
            "government_procurement_law",
            "sme_payment_regulations",
            "administrative_litigation_law",
            "civil_procedure_enforcement",
            "open_government_information_regulations",
            "budget_law",
        ),
        subject_kinds=frozenset({SubjectKind.GOVERNMENT}),
    ),
    Domain(
        "voluntary_civic_acts",
        "Voluntary civic acts",
        "Giving blood, volunteering, donating to charity and acts of bravery: acts nobody "
        "owes, which only ever add points.",
        (
            "blood_donation_law",
            "volunteer_service_regulations",
            "charity_law",
            "brave_acts_guidance",
            "civil_code_rescue",
        ),
        positive_only=True,
    ),
)


def _catalogue(domains: tuple[Domain, ...]) -> dict[str, Domain]:
    for domain in domains:
        unknown = [s for s in domain.statutes if s not in STATUTES]
        if unknown:  # a mistake in this file, caught on import
            raise ValueError(f"domain {domain.code!r} lists unknown statutes {unknown}")
    return {d.code: d for d in domains}


#: The conduct domains, by code, in the order they are listed.
DOMAINS: dict[str, Domain] = _catalogue(_DOMAINS)
