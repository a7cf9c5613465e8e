"""The demo city's sources, as data.

Every organisation that reports to the synthetic city's Credence is listed here with
the record types it is registered for. The lists follow who would really hold each
fact: a court hands down judgments, a tax office knows arrears, a bank knows defaults.
Two registries are identity authorities: only they can bring subjects into existence.
The names are made up (no real bank or court is said to have reported anything).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from credence.ledger.freshness import Cadence
from credence.ledger.registry import ORGANISATION_AUTHORITY, PERSON_AUTHORITY, register_source
from credence.ledger.tables import Source
from credence.rulebook.model import Rulebook


@dataclass(frozen=True)
class SourceSpec:
    """A source as the demo city registers it."""

    code: str
    name: str
    kind: str
    record_types: tuple[str, ...] = ()
    #: ``"person"`` (civil registry), ``"organisation"`` (business registry) or None.
    identity_authority_for: str | None = None


_JUDICIAL = (
    "judgment_default",
    "judgment_satisfied",
    "fraud_judgment",
    "false_litigation_penalty",
    "obstruction_of_enforcement",
    "settlement_performed",
)

DEMO_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        code="civil_registry",
        name="Municipal Civil Registry",
        kind="identity_authority",
        identity_authority_for=PERSON_AUTHORITY,
    ),
    SourceSpec(
        code="business_registry",
        name="Municipal Business Registration Office",
        kind="identity_authority",
        record_types=("annual_report_filed",),
        identity_authority_for=ORGANISATION_AUTHORITY,
    ),
    SourceSpec(
        code="city_bank",
        name="Harbour City Commercial Bank",
        kind="bank",
        record_types=(
            "loan_repaid",
            "loan_default",
            "credit_card_default",
            "on_time_payment_streak",
        ),
    ),
    SourceSpec(
        code="consumer_credit",
        name="Seaside Consumer Finance Co.",
        kind="credit_company",
        record_types=("loan_repaid", "loan_default", "credit_card_default", "rental_completed"),
    ),
    SourceSpec(
        code="tax_office",
        name="Municipal Tax Office",
        kind="tax_authority",
        record_types=(
            "tax_paid_on_time",
            "tax_arrears",
            "tax_evasion_penalty",
            "social_insurance_arrears",
        ),
    ),
    SourceSpec(
        code="intermediate_court",
        name="Intermediate People's Court",
        kind="court",
        record_types=(
            *_JUDICIAL,
            "contract_breach_judgment",
            "public_contract_breach",
            "public_judgment_complied",
        ),
    ),
    SourceSpec(
        code="traffic_police",
        name="Municipal Traffic Police Brigade",
        kind="traffic_police",
        record_types=("traffic_violation", "drunk_driving_penalty"),
    ),
    SourceSpec(
        code="railway_operator",
        name="Coastal Railway Operator",
        kind="transport_operator",
        record_types=("fare_evasion_penalty",),
    ),
    SourceSpec(
        code="market_regulator",
        name="Municipal Market Supervision Bureau",
        kind="regulator",
        record_types=(
            "product_quality_penalty",
            "licence_violation_penalty",
            "procurement_bid_rigging_penalty",
        ),
    ),
    SourceSpec(
        code="labour_inspectorate",
        name="Municipal Labour Inspectorate",
        kind="regulator",
        record_types=("wage_arrears",),
    ),
    SourceSpec(
        code="volunteer_federation",
        name="City Volunteer Federation",
        kind="volunteer_organisation",
        record_types=("volunteer_service", "charitable_donation", "heroic_act"),
    ),
    SourceSpec(
        code="blood_centre",
        name="Central Blood Station",
        kind="health_service",
        record_types=("blood_donation",),
    ),
    SourceSpec(
        code="finance_bureau",
        name="Municipal Finance Bureau",
        kind="public_finance",
        record_types=(
            "late_payment_to_suppliers",
            "supplier_contract_fulfilled",
            "public_contract_fulfilled",
        ),
    ),
    SourceSpec(
        code="open_government_office",
        name="Municipal Open Government Information Office",
        kind="oversight_authority",
        record_types=("disclosure_obligations_met",),
    ),
)


def register_demo_sources(
    session: Session,
    rulebook: Rulebook,
    at: datetime,
    *,
    cadences: Mapping[str, Sequence[Cadence]] | None = None,
) -> dict[str, Source]:
    """Register every demo source through the ledger, each with the cadences
    ``cadences`` names for it (by source code; none by default); return them by code.

    A source is registered only for the types ``rulebook`` defines, so the city can also
    be built under a pilot rulebook that leaves some types out. The caller commits.
    """
    sources: dict[str, Source] = {}
    for spec in DEMO_SOURCES:
        sources[spec.code] = register_source(
            session,
            code=spec.code,
            name=spec.name,
            kind=spec.kind,
            record_types=[t for t in spec.record_types if rulebook.record_type(t) is not None],
            rulebook=rulebook,
            at=at,
            identity_authority_for=spec.identity_authority_for,
            cadences=(cadences or {}).get(spec.code, ()),
        )
    return sources
