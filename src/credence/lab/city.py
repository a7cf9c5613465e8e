"""A synthetic city: subjects and years of records, built through the real ledger path.

:func:`plan_city` draws a city from a seed with numpy and touches no database: the same
arguments always give the same subjects and records (public ids aside, which are random
by design). :func:`build_city` publishes the rulebook, registers the demo sources
(:mod:`credence.lab.sources`) and the subjects, and hands the records to
:func:`credence.ledger.service.submit_records` delivery by delivery, exactly as the
sources would, so every synthetic record passes the same checks as a real one.

How records are drawn, so that the city looks like a city:

* each subject has a latent *reliability* (standard normal) that raises its rate of
  negative records when low and, more gently, its rate of positive ones when high, so
  behaviour is correlated within a subject and most people have few negative records;
* each subject has an *activity* (log-normal) that scales all its rates: some people
  borrow and pay taxes more than others, some companies are much larger;
* persons, companies and government bodies have their own record streams and rates
  (per subject-year, :data:`STREAMS`); persons only from their 18th birthday;
* a judgment default is later satisfied (same court, same decision reference) with a
  probability that grows with reliability;
* a source reports a record 0-20 days after it happened, in its weekly delivery;
* each source declares, for each type it reports, the cadence its volume makes honest
  (:func:`honest_cadences`): long enough that its own history is never silent that long,
  except by a chance of :data:`OUTAGE_ODDS` per type; a type too rare for any cadence
  within the city's history is declared none (not watched).

The total is exactly ``records``: counts are one multinomial draw over (subject, stream)
cells weighted by rate, activity, reliability and exposure; each satisfied judgment
replaces one drawn record of another type. Records of a type that reports a period (a
year of on-time payments, of taxes paid) are spaced at least that period apart per
subject and source, as intake checks.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from credence.clock import EPOCH, ensure_utc
from credence.errors import InvalidIdentifier
from credence.identifiers import (
    SubjectKind,
    make_credit_code,
    make_resident_id,
    validate_resident_id,
)
from credence.lab.sources import DEMO_SOURCES, register_demo_sources
from credence.ledger import backfill, freshness
from credence.ledger.freshness import Cadence
from credence.ledger.registry import register_subject
from credence.ledger.schemas import RecordIn, SubjectIn
from credence.ledger.service import submit_records
from credence.ledger.tables import Source, Subject
from credence.rulebook import store
from credence.rulebook.loader import default_text
from credence.rulebook.model import Rulebook

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: ``progress(stage, done, total)``: called as each stage of a build advances.
Progress = Callable[[str, int, int], None]

DAY = 86_400  # seconds
YEAR_DAYS = 365.25

#: Share of organisations that are government bodies (the rest are companies).
GOVERNMENT_SHARE = 0.06
#: Records submitted between two commits (one transaction per chunk).
COMMIT_EVERY = 5_000
#: Most records in one ``submit_records`` call (a larger delivery is split).
MAX_BATCH = 2_000
#: How strongly reliability tilts negative and positive rates (log-scale slopes).
NEGATIVE_TILT = 0.9
POSITIVE_TILT = 0.35


@dataclass(frozen=True)
class Stream:
    """Records of one type from one source, at a base rate per subject-year by kind."""

    record_type: str
    source: str
    person: float = 0.0
    company: float = 0.0
    government: float = 0.0

    def rate(self, kind: SubjectKind) -> float:
        return {
            SubjectKind.PERSON: self.person,
            SubjectKind.COMPANY: self.company,
            SubjectKind.GOVERNMENT: self.government,
        }[kind]


#: Base rates (records per subject-year for a subject of average activity and
#: reliability). Positive records dominate; a person sees roughly one negative record
#: in five years, mostly traffic tickets.
STREAMS: tuple[Stream, ...] = (
    # commercial
    Stream("loan_repaid", "city_bank", person=0.35, company=1.5),
    Stream("loan_repaid", "consumer_credit", person=0.30),
    Stream("on_time_payment_streak", "city_bank", person=0.8, company=1.6),
    Stream("loan_default", "city_bank", person=0.012, company=0.08),
    Stream("loan_default", "consumer_credit", person=0.015),
    Stream("credit_card_default", "city_bank", person=0.015),
    Stream("credit_card_default", "consumer_credit", person=0.012),
    Stream("rental_completed", "consumer_credit", person=0.15),
    Stream("contract_breach_judgment", "intermediate_court", company=0.1),
    Stream("product_quality_penalty", "market_regulator", company=0.08),
    Stream("procurement_bid_rigging_penalty", "market_regulator", company=0.01),
    Stream("wage_arrears", "labour_inspectorate", company=0.05),
    Stream("supplier_contract_fulfilled", "finance_bureau", company=1.2),
    # government affairs
    Stream("tax_paid_on_time", "tax_office", person=0.9, company=4.0),
    Stream("tax_arrears", "tax_office", person=0.008, company=0.12),
    Stream("tax_evasion_penalty", "tax_office", person=0.001, company=0.01),
    Stream("social_insurance_arrears", "tax_office", company=0.1),
    Stream("annual_report_filed", "business_registry", company=0.95),
    Stream("licence_violation_penalty", "market_regulator", company=0.08),
    Stream("public_contract_breach", "intermediate_court", government=0.06),
    Stream("late_payment_to_suppliers", "finance_bureau", government=0.25),
    Stream("public_contract_fulfilled", "finance_bureau", government=1.5),
    Stream("public_judgment_complied", "intermediate_court", government=0.2),
    Stream("disclosure_obligations_met", "open_government_office", government=0.9),
    # judicial (judgment_satisfied only follows a judgment_default: see FOLLOW_UP)
    Stream("judgment_default", "intermediate_court", person=0.012, company=0.08, government=0.06),
    Stream("judgment_satisfied", "intermediate_court"),
    Stream("fraud_judgment", "intermediate_court", person=0.001, company=0.005),
    Stream("false_litigation_penalty", "intermediate_court", person=0.0005, company=0.004),
    Stream("obstruction_of_enforcement", "intermediate_court", person=0.001, company=0.01),
    Stream("settlement_performed", "intermediate_court", person=0.01, company=0.06),
    # social
    Stream("traffic_violation", "traffic_police", person=0.12),
    Stream("drunk_driving_penalty", "traffic_police", person=0.004),
    Stream("fare_evasion_penalty", "railway_operator", person=0.015),
    Stream("volunteer_service", "volunteer_federation", person=0.3),
    Stream("charitable_donation", "volunteer_federation", person=0.12, company=0.3),
    Stream("heroic_act", "volunteer_federation", person=0.002),
    Stream("blood_donation", "blood_centre", person=0.08),
)

#: A record of the first type may be followed by one of the second, with the same
#: decision reference (a judgment default lifted by full performance).
FOLLOW_UP = ("judgment_default", "judgment_satisfied")

#: Mean reporting delay in days by source (courts and regulators register decisions
#: later than banks report repayments); capped at 20 days.
DELAY_MEAN_DAYS: dict[str, float] = {
    "city_bank": 1.0,
    "consumer_credit": 1.0,
    "tax_office": 4.0,
    "intermediate_court": 8.0,
    "market_regulator": 6.0,
    "labour_inspectorate": 6.0,
    "business_registry": 2.0,
    "finance_bureau": 5.0,
    "open_government_office": 7.0,
}
DEFAULT_DELAY_MEAN_DAYS = 3.0
MAX_DELAY_DAYS = 20
#: Days between two deliveries of a source (each source on its own weekday): one
#: ``submit_records`` call per source and delivery day, as a weekly batch file would be.
DELIVERY_EVERY_DAYS = 7
#: Sources that name subjects by national identifier, as taken from case files; the
#: others use the opaque subject id, which the ledger resolves without re-validating an
#: identifier (python-stdnum's check of a resident number's region code costs ~0.2 ms).
BY_IDENTIFIER = frozenset(
    {"intermediate_court", "traffic_police", "railway_operator", "market_regulator"}
)
#: The chance, per source and record type, that an honest source's history holds a
#: silence longer than the cadence and grace it declares (:func:`honest_cadences`).
OUTAGE_ODDS = 1e-4

#: Case words of court references ("(2024)Lu10Zhi123": enforcement case of court Lu10).
COURT_CASE_WORDS: dict[str, str] = {
    "judgment_default": "Zhi",
    "obstruction_of_enforcement": "Zhi",
    "fraud_judgment": "Xing",
}
COURT_PREFIX = "Lu10"
#: Prefixes of administrative penalty and default registration references by source.
DECISION_PREFIXES: dict[str, str] = {
    "city_bank": "HCB-DEF",
    "consumer_credit": "SCF-DEF",
    "tax_office": "TAX-PEN",
    "traffic_police": "TRF-PEN",
    "railway_operator": "RLY-PEN",
    "market_regulator": "MKT-PEN",
    "labour_inspectorate": "LAB-PEN",
    "finance_bureau": "FIN-REG",
}


@dataclass(frozen=True)
class Place:
    """Where residents come from: the region code (GB/T 2260) of today, and the codes an
    identity number may carry, newest first. Codes change as boundaries are redrawn and
    a number keeps the code in force when it was assigned, so a person born in Rongcheng
    in 1960 carries 372133, not 371082 (python-stdnum checks this against the birth year).
    """

    region: str
    weight: float
    id_codes: tuple[str, ...]


#: Residents: mostly the Weihai / Rongcheng area, some incomers; weights sum to 1.
PERSON_PLACES: tuple[Place, ...] = (
    Place("371082", 0.40, ("371082", "371023", "370633", "372133")),  # Rongcheng
    Place("371002", 0.18, ("371002", "370620", "372102")),  # Huancui, Weihai
    Place("371003", 0.08, ("371003", "371081", "371022", "370632", "372132")),  # Wendeng
    Place("371083", 0.06, ("371083", "371021", "370630", "372130")),  # Rushan
    Place("370211", 0.08, ("370211", "370220")),  # Huangdao, Qingdao
    Place("370202", 0.05, ("370202", "370220")),  # Shinan, Qingdao
    Place("370102", 0.05, ("370102", "370120")),  # Lixia, Jinan
    Place("110105", 0.04, ("110105",)),  # Chaoyang, Beijing
    Place("110108", 0.03, ("110108",)),  # Haidian, Beijing
    Place("310115", 0.03, ("310115", "310225", "310204")),  # Pudong, Shanghai
)
ORGANISATION_REGIONS: tuple[tuple[str, float], ...] = (
    ("371082", 0.55),
    ("371002", 0.30),
    ("371003", 0.10),
    ("371083", 0.05),
)
PLACES = ("Rongcheng", "Weihai", "Shidao", "Huancui", "Wendeng", "Rushan", "Chengshan")
TRADES = (
    "Harbour Logistics",
    "Seafood Processing",
    "Marine Engineering",
    "Textile",
    "Construction",
    "Software",
    "Fisheries",
    "Tyre Manufacturing",
    "Retail",
    "Catering",
    "Electronics",
    "Tourism",
    "Kelp Farming",
    "Shipbuilding",
    "Trading",
)
OFFICES = (
    "Transport Bureau",
    "Housing Bureau",
    "Water Authority",
    "Education Bureau",
    "Parks Department",
    "Port Administration",
    "Sanitation Office",
    "Health Commission",
)
BIRTH_FIRST = date(1950, 1, 1)
BIRTH_LAST = date(2006, 12, 31)
ADULT_YEARS = 18


@dataclass(frozen=True)
class CityPlan:
    """A city drawn from a seed: subjects in registration order, records by serial.

    Record ``i`` is about ``subjects[subject[i]]``, of type ``type_codes[type_idx[i]]``,
    from source ``source_codes[source_idx[i]]``. Instants are UTC seconds since the
    epoch; ``quantity`` is NaN where the type has none. Serials follow occurrence.
    """

    start: datetime
    now: datetime
    subjects: tuple[SubjectIn, ...]
    type_codes: tuple[str, ...]
    source_codes: tuple[str, ...]
    subject: IntArray
    type_idx: IntArray
    source_idx: IntArray
    occurred: IntArray
    received: IntArray
    quantity: FloatArray
    source_refs: tuple[str, ...]
    decision_refs: tuple[str | None, ...]

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    def record(self, i: int, subject_ids: list[str] | None = None) -> RecordIn:
        """Record ``i`` as its source submits it: naming the subject by opaque id
        (``subject_ids``, by subject index) if given, else by national identifier."""
        q = float(self.quantity[i])
        s = int(self.subject[i])
        return RecordIn(
            source_ref=self.source_refs[i],
            subject_id=None if subject_ids is None else subject_ids[s],
            identifier=self.subjects[s].identifier if subject_ids is None else None,
            record_type=self.type_codes[int(self.type_idx[i])],
            occurred_at=_instant(int(self.occurred[i])),
            quantity=None if np.isnan(q) else q,
            decision_ref=self.decision_refs[i],
        )


@dataclass(frozen=True)
class CityStats:
    """What :func:`build_city` built, and how long it took."""

    rulebook_version: str
    #: The window of the city's history: rulebook, sources and subjects date from start.
    start: datetime
    now: datetime
    subjects_by_kind: dict[str, int]
    records_by_type: dict[str, int]
    records_by_source: dict[str, int]
    records: int
    seconds: float

    @property
    def subjects(self) -> int:
        return sum(self.subjects_by_kind.values())


def _instant(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _seconds(at: datetime) -> int:
    return int((ensure_utc(at) - EPOCH).total_seconds())


def _window(now: datetime, years: int) -> tuple[datetime, datetime]:
    """The city's history: ``years`` ending at ``now`` (whole seconds, UTC)."""
    end = ensure_utc(now).replace(microsecond=0)
    return end - timedelta(days=round(YEAR_DAYS * years)), end


# --- subjects ----------------------------------------------------------------------------


def _id_code(place: Place, year: int) -> str:
    """The first of the place's codes in force in ``year`` (by python-stdnum's table)."""
    for code in place.id_codes:
        try:
            validate_resident_id(make_resident_id(code, date(year, 7, 1), 0))
        except InvalidIdentifier:
            continue
        return code
    raise ValueError(f"no region code of {place.region} was in force in {year}")


def _persons(rng: np.random.Generator, n: int) -> tuple[list[SubjectIn], IntArray]:
    """``n`` persons with unique, valid resident identity numbers, and their birth
    instants (UTC seconds) so that their records start at 18."""
    weights = np.array([p.weight for p in PERSON_PLACES])
    places = rng.choice(len(PERSON_PLACES), size=n, p=weights / weights.sum())
    births = rng.integers(0, (BIRTH_LAST - BIRTH_FIRST).days + 1, size=n)
    sequences = rng.integers(0, 1000, size=n)
    width = max(5, len(str(n)))
    codes: dict[tuple[int, int], str] = {}
    taken: set[tuple[str, int, int]] = set()
    people: list[SubjectIn] = []
    for i in range(n):
        place = PERSON_PLACES[int(places[i])]
        born = BIRTH_FIRST + timedelta(days=int(births[i]))
        code = codes.get((int(places[i]), born.year))
        if code is None:
            code = codes[int(places[i]), born.year] = _id_code(place, born.year)
        key = (code, int(births[i]), int(sequences[i]))
        while key in taken:  # same code, birthday and sequence: take the next sequence
            key = (code, key[1], (key[2] + 1) % 1000)
        taken.add(key)
        people.append(
            SubjectIn(
                kind=SubjectKind.PERSON,
                identifier=make_resident_id(code, born, key[2]),
                name=f"Person {i + 1:0{width}d}",
                region=place.region,
            )
        )
    born_at = (births + (BIRTH_FIRST - EPOCH.date()).days) * DAY
    return people, born_at.astype(np.int64)


def _organisations(rng: np.random.Generator, n: int) -> list[SubjectIn]:
    """``n`` organisations: companies (USCC "91…") and ~6% government bodies ("11…")."""
    companies = n - round(n * GOVERNMENT_SHARE)
    weights = np.array([w for _, w in ORGANISATION_REGIONS])
    regions = rng.choice(len(ORGANISATION_REGIONS), size=n, p=weights / weights.sum())
    # The serial part (organisation code) only has to be unique and use the alphabet:
    # python-stdnum checks the final check character, not the organisation code's own.
    serials = rng.choice(100_000_000, size=n, replace=False)
    tails = rng.integers(0, 10, size=n)
    places = rng.integers(0, len(PLACES), size=n)
    trades = rng.integers(0, len(TRADES), size=n)
    offices = rng.integers(0, len(OFFICES), size=n)
    orgs: list[SubjectIn] = []
    for i in range(n):
        region = ORGANISATION_REGIONS[int(regions[i])][0]
        serial = f"{int(serials[i]):08d}{int(tails[i])}"
        place = PLACES[int(places[i])]
        if i < companies:
            kind, authority = SubjectKind.COMPANY, "9"  # industry and commerce
            name = f"{place} {TRADES[int(trades[i])]} Co. {i + 1:04d}"
        else:
            kind, authority = SubjectKind.GOVERNMENT, "1"  # organ establishment
            name = f"{place} {OFFICES[int(offices[i])]} {i + 1:04d}"
        orgs.append(
            SubjectIn(
                kind=kind,
                identifier=make_credit_code(authority, "1", region, serial),
                name=name,
                region=region,
            )
        )
    return orgs


# --- records -----------------------------------------------------------------------------

_KINDS = (SubjectKind.PERSON, SubjectKind.COMPANY, SubjectKind.GOVERNMENT)


def _streams(rulebook: Rulebook, registered: dict[str, set[str]]) -> list[Stream]:
    """The streams this city can have: the type exists and its source is registered."""
    return [
        s
        for s in STREAMS
        if rulebook.record_type(s.record_type) is not None
        and s.record_type in registered.get(s.source, set())
    ]


def _rates(rulebook: Rulebook, streams: list[Stream]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Base rates by (kind, stream) and which streams are negative."""
    rates = np.zeros((len(_KINDS), len(streams)))
    negative = np.zeros(len(streams), dtype=bool)
    for j, s in enumerate(streams):
        rt = rulebook.record_type(s.record_type)
        assert rt is not None
        negative[j] = rt.negative
        for k, kind in enumerate(_KINDS):
            # A type applies only to the kinds the rulebook names; a follow-up is never
            # drawn on its own.
            if kind in rt.subject_kinds and s.record_type != FOLLOW_UP[1]:
                rates[k, j] = s.rate(kind)
    return rates, negative


def _draw(
    rng: np.random.Generator, weights: FloatArray, records: int, first: IntArray, now_s: int
) -> tuple[IntArray, IntArray, IntArray]:
    """``records`` records over the (subject, stream) cells of ``weights``:
    (subject, stream, occurred), each occurring between the subject's first instant
    and now."""
    total = float(weights.sum())
    if records == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    if total <= 0:
        raise ValueError("no record stream applies to any subject of this city")
    counts = rng.multinomial(records, weights.ravel() / total)
    cells = np.repeat(np.arange(weights.size, dtype=np.int64), counts)
    subject, stream = np.divmod(cells, weights.shape[1])
    lo = first[subject]
    occurred = lo + (rng.random(records) * (now_s - lo)).astype(np.int64)
    return subject, stream, occurred


def _space_periods(
    rulebook: Rulebook,
    streams: list[Stream],
    rates: FloatArray,
    kind_idx: IntArray,
    subject: IntArray,
    stream: IntArray,
    occurred: IntArray,
    now_s: int,
) -> None:
    """Keep records of a type that reports a period (``min_spacing_days``) that far apart
    per subject and stream, as the intake's spacing check demands (in place): a record
    drawn too close to the previous one moves to one period after it; one that would then
    fall after now becomes a record of another positive stream of its source's kind
    that the subject can have (the total stays exactly as drawn)."""
    for j, s in enumerate(streams):
        rt = rulebook.record_type(s.record_type)
        if rt is None or not rt.min_spacing_days:
            continue
        gap = int(rt.min_spacing_days * DAY)
        rows = np.flatnonzero(stream == j)
        rows = rows[np.lexsort((occurred[rows], subject[rows]))]
        last_subject, last = -1, 0
        for i in rows.tolist():
            if subject[i] != last_subject:
                last_subject, last = int(subject[i]), int(occurred[i])
                continue
            if occurred[i] - last >= gap:
                last = int(occurred[i])
            elif last + gap <= now_s:
                occurred[i] = last = last + gap
            else:
                stream[i] = _unspaced_stream(rulebook, streams, rates, int(kind_idx[subject[i]]), j)


def _unspaced_stream(
    rulebook: Rulebook, streams: list[Stream], rates: FloatArray, kind: int, instead: int
) -> int:
    """A positive stream without a period that subjects of ``kind`` have, preferably of
    the same source as stream ``instead``."""

    def fits(k: int) -> bool:
        rt = rulebook.record_type(streams[k].record_type)
        return rt is not None and rt.points > 0 and not rt.min_spacing_days and rates[kind, k] > 0

    same = [k for k in range(len(streams)) if streams[k].source == streams[instead].source]
    found = [k for k in same if fits(k)] or [k for k in range(len(streams)) if fits(k)]
    return found[0] if found else instead


def _follow_ups(
    rng: np.random.Generator,
    streams: list[Stream],
    drawn: tuple[IntArray, IntArray, IntArray],
    reliability: FloatArray,
    now_s: int,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Add the satisfied judgments that follow judgment defaults; give back as many
    other records. Returns (subject, stream, occurred, parent): ``parent`` is the row of
    the record a follow-up follows, -1 for the others."""
    subject, stream, occurred = drawn
    parent = np.full(len(subject), -1, dtype=np.int64)
    lead = next((j for j, s in enumerate(streams) if s.record_type == FOLLOW_UP[0]), None)
    follow = next(
        (
            j
            for j, s in enumerate(streams)
            if lead is not None
            and s.record_type == FOLLOW_UP[1]
            and s.source == streams[lead].source  # the court that ordered it
        ),
        None,
    )
    if lead is None or follow is None:
        return subject, stream, occurred, parent
    defaults = np.flatnonzero(stream == lead)
    # Reliable defaulters pay up more often; enforcement takes weeks to months.
    p_satisfied = 1.0 / (1.0 + np.exp(-(1.0 + reliability[subject[defaults]])))
    gap = ((21.0 + rng.exponential(120.0, size=len(defaults))) * DAY).astype(np.int64)
    when = occurred[defaults] + gap
    satisfied = (rng.random(len(defaults)) < p_satisfied) & (when <= now_s)
    others = np.flatnonzero(stream != lead)
    k = min(int(satisfied.sum()), len(others))
    chosen, when = defaults[satisfied][:k], when[satisfied][:k]
    keep = np.ones(len(subject), dtype=bool)
    keep[rng.choice(others, size=k, replace=False)] = False
    row = np.cumsum(keep) - 1  # the new row of each kept record (defaults are all kept)
    return (
        np.concatenate([subject[keep], subject[chosen]]),
        np.concatenate([stream[keep], np.full(k, follow, dtype=np.int64)]),
        np.concatenate([occurred[keep], when]),
        np.concatenate([parent[keep], row[chosen]]),
    )


def _received(
    rng: np.random.Generator,
    streams: list[Stream],
    source_codes: tuple[str, ...],
    stream: IntArray,
    occurred: IntArray,
    now_s: int,
) -> IntArray:
    """When each record reaches Credence: ready after a processing delay, it goes out
    with its source's next delivery, at the end of a delivery day and never after now.
    Processing is capped so the whole delay stays within ``MAX_DELAY_DAYS``."""
    cadence = DELIVERY_EVERY_DAYS
    weekday = np.array([source_codes.index(s.source) for s in streams]) % cadence
    mean = np.array([DELAY_MEAN_DAYS.get(s.source, DEFAULT_DELAY_MEAN_DAYS) for s in streams])
    processing = np.minimum(
        rng.geometric(1.0 / (1.0 + mean[stream])) - 1, MAX_DELAY_DAYS - (cadence - 1)
    )
    ready = occurred // DAY + processing
    delivery = ready + (weekday[stream] - ready) % cadence
    received: IntArray = np.minimum((delivery + 1) * DAY - 1, now_s)
    return received


def _quantities(
    rng: np.random.Generator, code: str, is_org: npt.NDArray[np.bool_], max_units: float
) -> FloatArray:
    """Plausible quantities for records of type ``code`` (one per entry of ``is_org``),
    within the type's cap."""
    n = len(is_org)
    if code == "volunteer_service":  # hours per reported stint
        values = 1.0 + rng.poisson(3.0, size=n)
    elif code == "tax_arrears":  # units of 10,000 CNY
        values = np.round(rng.lognormal(np.where(is_org, 1.2, -0.3), 1.0), 2)
    elif code == "charitable_donation":  # units of 1,000 CNY
        values = np.round(rng.lognormal(np.where(is_org, 2.3, -0.7), 1.0), 2)
    else:  # a type of another rulebook: spread over the lower part of its cap
        values = np.round(rng.uniform(0.01, 0.25, size=n) * max_units, 2)
    quantities: FloatArray = np.clip(values, 0.01, max_units).astype(np.float64)
    return quantities


def _decision_refs(
    rulebook: Rulebook,
    type_codes: tuple[str, ...],
    source_codes: tuple[str, ...],
    type_idx: IntArray,
    source_idx: IntArray,
    occurred: IntArray,
    parent: IntArray,
) -> list[str | None]:
    """A decision reference for every negative record (court case numbers, penalty and
    default registration numbers); a follow-up carries its parent's. ASCII only."""
    negative = [t is not None and t.negative for t in map(rulebook.record_type, type_codes)]
    refs: list[str | None] = []
    for i, (t, s, at, p) in enumerate(
        zip(type_idx.tolist(), source_idx.tolist(), occurred.tolist(), parent.tolist(), strict=True)
    ):
        if p >= 0:
            refs.append(refs[p])  # parents occurred earlier, so they come first
        elif not negative[t]:
            refs.append(None)
        elif source_codes[s] == "intermediate_court":
            word = COURT_CASE_WORDS.get(type_codes[t], "Min")  # civil unless listed
            refs.append(f"({_instant(at).year}){COURT_PREFIX}{word}{i + 1}")
        else:
            prefix = DECISION_PREFIXES.get(source_codes[s], source_codes[s].upper()[:8])
            refs.append(f"{prefix}-{_instant(at).year}-{i + 1:07d}")
    return refs


def plan_city(
    rulebook: Rulebook,
    *,
    persons: int = 10_000,
    organisations: int = 500,
    records: int = 200_000,
    years: int = 5,
    seed: int = 7,
    now: datetime,
    registered: dict[str, set[str]] | None = None,
) -> CityPlan:
    """Draw a city from ``seed``, without a database: ``persons`` persons,
    ``organisations`` organisations and exactly ``records`` records over the ``years``
    before ``now``.

    ``registered`` maps source codes to the record types each may submit (default: the
    demo sources' types that ``rulebook`` defines); only those streams are drawn. The
    same arguments give the same plan, on any machine with the same numpy.
    """
    if min(persons, organisations, records) < 0 or years < 1:
        raise ValueError("persons, organisations and records must be >= 0, years >= 1")
    start, now = _window(now, years)
    if registered is None:
        registered = {
            s.code: {t for t in s.record_types if rulebook.record_type(t) is not None}
            for s in DEMO_SOURCES
        }
    rng = np.random.default_rng(seed)
    people, born_at = _persons(rng, persons)
    subjects = (*people, *_organisations(rng, organisations))
    n = len(subjects)
    now_s = _seconds(now)

    # A subject's records start at the window's start, or at a person's 18th birthday.
    first = np.full(n, _seconds(start), dtype=np.int64)
    first[:persons] = np.maximum(first[:persons], born_at + round(ADULT_YEARS * YEAR_DAYS) * DAY)
    exposure = np.maximum(now_s - first, 0) / (YEAR_DAYS * DAY)
    # Clipped so that no synthetic subject is an absurd outlier.
    reliability = np.clip(rng.standard_normal(n), -3.0, 3.0)
    is_org = np.arange(n) >= persons
    activity = np.clip(rng.lognormal(0.0, np.where(is_org, 0.8, 0.4)), 0.1, 8.0)
    # Mean-one tilts: low reliability multiplies negative rates (strongly), high
    # reliability positive ones (gently).
    neg_tilt = np.exp(-NEGATIVE_TILT * reliability - NEGATIVE_TILT**2 / 2)
    pos_tilt = np.exp(POSITIVE_TILT * reliability - POSITIVE_TILT**2 / 2)

    streams = _streams(rulebook, registered)
    rates, negative = _rates(rulebook, streams)
    kind_idx = np.array([_KINDS.index(s.kind) for s in subjects], dtype=np.int64)
    tilt = np.where(negative[None, :], neg_tilt[:, None], pos_tilt[:, None])
    weights = rates[kind_idx] * tilt * (activity * exposure)[:, None]

    drawn = _draw(rng, weights, records, first, now_s)
    subject, stream, occurred, parent = _follow_ups(rng, streams, drawn, reliability, now_s)
    _space_periods(rulebook, streams, rates, kind_idx, subject, stream, occurred, now_s)
    # Serials follow occurrence (ties by subject, then stream), so references read in
    # time order and a follow-up's parent always comes before it.
    order = np.lexsort((stream, subject, occurred))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    subject, stream, occurred, parent = (
        subject[order],
        stream[order],
        occurred[order],
        parent[order],
    )
    parent = np.where(parent >= 0, rank[np.maximum(parent, 0)], -1)

    source_codes = tuple(sorted({s.source for s in streams}))
    type_codes = tuple(sorted({s.record_type for s in streams}))
    source_of = np.array([source_codes.index(s.source) for s in streams], dtype=np.int64)
    type_of = np.array([type_codes.index(s.record_type) for s in streams], dtype=np.int64)
    source_idx, type_idx = source_of[stream], type_of[stream]
    received = _received(rng, streams, source_codes, stream, occurred, now_s)

    quantity = np.full(len(subject), np.nan)
    for t, code in enumerate(type_codes):
        rt = rulebook.record_type(code)
        if rt is not None and rt.quantity is not None:
            rows = np.flatnonzero(type_idx == t)
            quantity[rows] = _quantities(rng, code, is_org[subject[rows]], rt.quantity.max_units)

    return CityPlan(
        start=start,
        now=now,
        subjects=subjects,
        type_codes=type_codes,
        source_codes=source_codes,
        subject=subject,
        type_idx=type_idx,
        source_idx=source_idx,
        occurred=occurred,
        received=received,
        quantity=quantity,
        source_refs=tuple(
            f"{source_codes[s]}-{i + 1:08d}" for i, s in enumerate(source_idx.tolist())
        ),
        decision_refs=tuple(
            _decision_refs(
                rulebook, type_codes, source_codes, type_idx, source_idx, occurred, parent
            )
        ),
    )


@dataclass(frozen=True)
class Declaration:
    """A cadence a source of the city declares, and when: at its registration (the
    city's start), or, for a type that only follows others (:data:`FOLLOW_UP`), with
    its first delivery of one."""

    at: datetime
    source: str
    cadence: Cadence


def honest_cadences(plan: CityPlan) -> list[Declaration]:
    """The cadence each source of ``plan`` declares for each type it reports, from its
    volume: what an honest source would promise.

    A source delivers every :data:`DELIVERY_EVERY_DAYS` days; with ``m`` records of a
    type per delivery on average, a delivery carries none of them with probability
    about ``exp(-m)``, and a run of ``k`` such deliveries happens somewhere in ``W``
    deliveries with probability about ``W exp(-k m)``. The source declares a cadence of
    ``k`` deliveries, the fewest (at least one) that make that :data:`OUTAGE_ODDS`, and
    a grace of one delivery; a type whose cadence would be longer than the time it
    reports over gets none (too rare to promise any). A follow-up type (a judgment
    satisfied) has nothing to follow at the start: its source declares it with its first
    delivery of one, from its volume from then on."""
    first: dict[tuple[int, int], int] = {}
    counts: Counter[tuple[int, int]] = Counter()
    for s, t, received in zip(
        plan.source_idx.tolist(), plan.type_idx.tolist(), plan.received.tolist(), strict=True
    ):
        counts[s, t] += 1
        first[s, t] = min(first.get((s, t), received), received)
    declared = []
    for (s, t), n in sorted(counts.items()):
        code = plan.type_codes[t]
        at = _instant(first[s, t]) if code == FOLLOW_UP[1] else plan.start
        days = (plan.now - at) / timedelta(days=1)
        deliveries = days / DELIVERY_EVERY_DAYS
        if deliveries < 1:
            continue
        runs = math.ceil(math.log(deliveries / OUTAGE_ODDS) * deliveries / n)
        cadence = DELIVERY_EVERY_DAYS * max(1, runs)
        if cadence <= days:
            declared.append(
                Declaration(at, plan.source_codes[s], Cadence(code, cadence, DELIVERY_EVERY_DAYS))
            )
    return declared


# --- building ----------------------------------------------------------------------------


def build_city(
    sessions: sessionmaker[Session],
    *,
    rulebook_edition_text: str | None = None,
    persons: int = 10_000,
    organisations: int = 500,
    records: int = 200_000,
    years: int = 5,
    seed: int = 7,
    now: datetime,
    progress: Progress | None = None,
) -> CityStats:
    """Build a synthetic city into an empty, migrated store; return what was built.

    Publishes ``rulebook_edition_text`` (default: the default rulebook) ``years`` before
    ``now``, registers the demo sources with the cadences their volumes make honest
    (:func:`honest_cadences`), registers the persons and organisations of
    :func:`plan_city` through the two identity registries, then submits its records
    through :func:`credence.ledger.service.submit_records`, one call per source and
    delivery day (at most ``MAX_BATCH`` records), in the order they were received.
    Records of courts, police, railway and regulators name their subject by national
    identifier, the others by opaque subject id, so both ways are exercised.

    A record the ledger does not create is a bug in the generator: it raises
    :class:`RuntimeError` with the ledger's error. Works in one session and commits
    every ``COMMIT_EVERY`` subjects or records, so a failed build leaves what was
    committed; build into a fresh store (or ``credence.migrate.reset`` first).
    ``progress(stage, done, total)`` is called with the stages ``"registering
    subjects"`` and ``"ingesting records"``.
    """
    began = time.perf_counter()
    tick: Progress = progress or (lambda stage, done, total: None)
    start, now = _window(now, years)
    text = default_text() if rulebook_edition_text is None else rulebook_edition_text

    with sessions() as session:
        book = store.publish(session, text=text, at=start).rulebook
        plan = plan_city(
            book,
            persons=persons,
            organisations=organisations,
            records=records,
            years=years,
            seed=seed,
            now=now,
        )
        declarations = honest_cadences(plan)
        at_start: dict[str, list[Cadence]] = {}
        for d in declarations:
            if d.at == plan.start:
                at_start.setdefault(d.source, []).append(d.cadence)
        sources = register_demo_sources(session, book, start, cadences=at_start)
        session.commit()
        subjects = _register_subjects(session, plan, sources, tick)
        runs = _approve_backfill(session, plan, sources)
        later = sorted((d for d in declarations if d.at != plan.start), key=lambda d: d.at)
        _ingest(session, plan, sources, runs, [s.public_id for s in subjects], book, tick, later)

    kinds = Counter(s.kind.value for s in plan.subjects)
    by_type = Counter(plan.type_codes[i] for i in plan.type_idx.tolist())
    by_source = Counter(plan.source_codes[i] for i in plan.source_idx.tolist())
    return CityStats(
        rulebook_version=book.version,
        start=plan.start,
        now=plan.now,
        subjects_by_kind=dict(sorted(kinds.items())),
        records_by_type=dict(sorted(by_type.items())),
        records_by_source=dict(sorted(by_source.items())),
        records=len(plan),
        seconds=time.perf_counter() - began,
    )


def _register_subjects(
    session: Session, plan: CityPlan, sources: dict[str, Source], tick: Progress
) -> list[Subject]:
    """Register every subject through its identity registry, at the window's start.

    Returns the subjects by index. Holding them keeps them in the session's (weak)
    identity map, so the ledger's subject look-ups during ingestion find them there
    instead of building each object again (about a quarter of the ingestion time).
    """
    civil, business = sources["civil_registry"], sources["business_registry"]
    stage, total = "registering subjects", len(plan.subjects)
    tick(stage, 0, total)
    subjects: list[Subject] = []
    for i, data in enumerate(plan.subjects, start=1):
        registry = civil if data.kind is SubjectKind.PERSON else business
        subject, created = register_subject(session, source=registry, data=data, at=plan.start)
        if not created:
            raise RuntimeError(f"synthetic subject {i} ({data.name}) was already registered")
        subjects.append(subject)
        if i % COMMIT_EVERY == 0 or i == total:
            session.commit()
            tick(stage, i, total)
    return subjects


def _approve_backfill(
    session: Session, plan: CityPlan, sources: dict[str, Source]
) -> dict[str, str]:
    """One approved backfill run per source for its whole history, its volume exactly
    the plan's records of that source (as an operator approves a source's load): the
    city's years arrive in weeks, and through a run the volume limits do not apply; the
    plausibility checks do. The run ids, by source code."""
    volume = Counter(plan.source_codes[i] for i in plan.source_idx.tolist())
    runs = {
        code: backfill.approve(
            session,
            source=sources[code],
            occurred_from=plan.start,
            occurred_until=plan.now + timedelta(microseconds=1),
            expected_records=volume[code],
            principal_id=None,
            at=plan.start,
        ).public_id
        for code in sorted(volume)
    }
    session.commit()
    return runs


def _ingest(
    session: Session,
    plan: CityPlan,
    sources: dict[str, Source],
    runs: dict[str, str],
    public_ids: list[str],
    rulebook: Rulebook,
    tick: Progress,
    later: list[Declaration],
) -> None:
    """Submit the records in the order they were received, one call per delivery; each
    of the ``later`` declarations (in order) just before the first delivery at or after
    its instant."""
    stage, total = "ingesting records", len(plan)
    tick(stage, 0, total)
    order = np.lexsort((np.arange(total), plan.source_idx, plan.received))
    received, source_idx = plan.received[order], plan.source_idx[order]
    # A delivery is a run of equal (received, source); long ones are split.
    starts = np.flatnonzero((np.diff(received) != 0) | (np.diff(source_idx) != 0)) + 1
    edges = sorted({*range(0, total, MAX_BATCH), *starts.tolist(), total})
    done = since_commit = 0
    for a, b in itertools.pairwise(edges):
        code = plan.source_codes[int(source_idx[a])]
        at = _instant(int(received[a]))
        while later and later[0].at <= at:
            declared = later.pop(0)
            freshness.declare(
                session, source=sources[declared.source], cadences=[declared.cadence], at=at
            )
        ids = None if code in BY_IDENTIFIER else public_ids
        results = submit_records(
            session,
            source=sources[code],
            records=[plan.record(int(i), ids) for i in order[a:b]],
            rulebook=rulebook,
            at=at,
            backfill=backfill.scope(session, runs[code], sources[code].id),
        )
        for result in results:
            if result.status != "created":
                raise RuntimeError(
                    f"synthetic record {result.source_ref} was {result.status}: {result.error}"
                )
        done += b - a
        since_commit += b - a
        if since_commit >= COMMIT_EVERY or done == total:
            session.commit()
            since_commit = 0
            tick(stage, done, total)
