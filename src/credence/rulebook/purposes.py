"""The fixed catalogue of purposes a service may declare, and what each may read.

Purposes live in code, not in the rulebook, on purpose: a rulebook author cannot widen
what a purpose may read by editing a weight file. Changing this table is a code change,
reviewed and released like any other. It is published with every rulebook
(``GET /v1/rulebook``) so anyone can check the binding.

Each purpose keeps a service to the context its data came from (EU AI Act Art. 5(1)(c)):
travel restrictions follow only from judicial records, loan terms only from commercial
records.
"""

from __future__ import annotations

from dataclasses import dataclass

from credence.rulebook.model import Category


@dataclass(frozen=True)
class Purpose:
    code: str
    description: str
    categories: frozenset[Category]


PURPOSES: dict[str, Purpose] = {
    p.code: p
    for p in (
        Purpose(
            "judgment_enforcement",
            "Restricting high consumption by judgment defaulters until the judgment is "
            "performed (Supreme People's Court provisions, 2015).",
            frozenset({Category.JUDICIAL}),
        ),
        Purpose(
            "credit_underwriting",
            "Pricing and granting credit, leases and deposits from repayment behaviour.",
            frozenset({Category.COMMERCIAL}),
        ),
        Purpose(
            "public_procurement",
            "Eligibility to bid for public contracts: commercial honesty and performance of "
            "court judgments by the bidder.",
            frozenset({Category.COMMERCIAL, Category.JUDICIAL}),
        ),
        Purpose(
            "administrative_facilitation",
            "Fast-track administrative procedures for subjects that meet their obligations "
            "to the state (tax, filings, licences).",
            frozenset({Category.GOVERNMENT_AFFAIRS, Category.COMMERCIAL}),
        ),
        Purpose(
            "civic_recognition",
            "Community perks that recognise civic contribution (volunteering, blood "
            "donation, acts of bravery).",
            frozenset({Category.SOCIAL}),
        ),
        Purpose(
            "government_accountability",
            "Holding public bodies to their contracts, payments and court judgments.",
            frozenset({Category.GOVERNMENT_AFFAIRS, Category.JUDICIAL}),
        ),
    )
}
