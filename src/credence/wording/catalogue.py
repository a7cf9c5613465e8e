"""The catalogue of coded messages: every reason a decision gives and every notification
a subject receives, as a code with typed parameters and an English template.

What is stored (an inquiry's ``reason_codes``, a notification's ``code`` and
``params``) is the code and its parameters, never only the words: the words are
rendered from the template in the reader's language (:func:`credence.wording.render`).
Templates use ``{name}`` fields; each field is one parameter of the message, formatted
by its :class:`Kind`. The English template is also the message's ``msgid`` in the
translation catalogue (``locale/zh_CN/LC_MESSAGES/wording.po``, with the code as
``msgctxt``).

A parameter that names something of the rulebook (a service, a record type, a rule's
reason, the dispute procedure) is stored with its code and its English words, so a
message renders in English from what is stored alone, and in another language from the
edition's own translation when the renderer is given one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["CATALOGUE", "FACTORS", "FRAGMENTS", "NOTICES", "REASONS", "WARNINGS", "Kind", "Message"]


class Kind(StrEnum):
    """How a parameter is stored (JSON) and shown."""

    #: Words stored as given (a source's name, a reviewer's reasons): never translated.
    TEXT = "text"
    #: A public id (``rec_…``, ``dec_…``) or a code shown as it is.
    ID = "id"
    #: A day, stored as ``YYYY-MM-DD``.
    DATE = "date"
    #: An instant to the minute, stored as ``YYYY-MM-DD HH:MM`` (UTC).
    INSTANT = "instant"
    #: A whole number.
    INT = "int"
    #: A score, shown without decimals.
    SCORE = "score"
    #: Points, signed, one decimal (``+5.0``).
    POINTS = "points"
    #: Points, one decimal (``12.5``).
    DECIMAL = "decimal"
    #: ``{"code", "name"}`` of a service: the name in the reader's language.
    SERVICE = "service"
    #: ``{"code", "name"}`` of a record type.
    RECORD_TYPE = "record_type"
    #: ``{"service", "index", "text"}``: the reason a service's rule gives.
    RULE = "rule"
    #: ``{"text"}``: the rulebook's words on how to dispute.
    HOW_TO = "how_to"
    #: A list of category codes ("judicial and commercial").
    CATEGORIES = "categories"
    #: A list of coded reasons (``{"code", "params"}``), joined by spaces.
    REASONS = "reasons"
    #: The incomplete categories of a decision: ``[{"category", "text", "sources":
    #: [{"name", "types", "since"}]}]``.
    MISSING = "missing"
    #: A yes/no that adds a fragment (``Message.fragment``) when true.
    FLAG = "flag"
    #: A value that adds a fragment around it when present (None: nothing).
    OPTIONAL = "optional"
    #: Words stored as given, or (None) the fragment in their place.
    TEXT_OR = "text_or"
    #: A code shown by its fragment: ``<Param.fragment>.<code>`` (the code if none).
    FRAGMENT = "fragment"
    #: A list of the causes of held records (``burst``, ``spacing``, …), each shown by
    #: its fragment ``hold_cause.<cause>``; joined by "; ".
    HOLD_CAUSES = "hold_causes"


@dataclass(frozen=True)
class Param:
    kind: Kind
    #: For FLAG and OPTIONAL: the fragment (a code of :data:`FRAGMENTS`) shown.
    fragment: str | None = None


@dataclass(frozen=True)
class Message:
    """One coded message: its English template and its parameters."""

    code: str
    template: str
    params: Mapping[str, Param] = field(default_factory=dict)
    #: What the message is: a decision's reason, a warning, a notification, a score's
    #: factor, a fragment.
    family: str = "reason"


def _p(kind: Kind, fragment: str | None = None) -> Param:
    return Param(kind, fragment)


_RECORD = {
    "record_type": _p(Kind.RECORD_TYPE),
    "source": _p(Kind.TEXT),
    "date": _p(Kind.DATE),
    "decision_ref": _p(Kind.OPTIONAL, "decision_ref"),
    "record": _p(Kind.ID),
    "points": _p(Kind.POINTS),
    "disputed": _p(Kind.FLAG, "disputed"),
}
_CITED = (
    "{record_type} reported by {source} on {date}{decision_ref} "
    "(record {record}; {points} points now{disputed})"
)
_FROZEN = {"freeze_days": _p(Kind.OPTIONAL, "frozen")}
#: Who found what about an identity, when and why (notices of identity resolutions).
_IDENTITY = {"authority": _p(Kind.TEXT), "at": _p(Kind.INSTANT), "reason": _p(Kind.TEXT)}
_WHAT = _p(Kind.FRAGMENT, "subject_kind")
_A_WHAT = _p(Kind.FRAGMENT, "a_subject_kind")
_WHATS = _p(Kind.FRAGMENT, "subject_kinds")
_TEST = _p(Kind.FRAGMENT, "identity_test")
#: Who answered a dispute (the source's name; None: a reviewer), and what.
_ANSWER = {
    "who": _p(Kind.TEXT_OR, "reviewer"),
    "record": _p(Kind.ID),
    "record_type": _p(Kind.RECORD_TYPE),
    "dispute": _p(Kind.ID),
    "explanation": _p(Kind.TEXT),
}

#: Pieces of other messages: shown only inside them.
FRAGMENTS: tuple[Message, ...] = (
    Message("decision_ref", ", decision {value}", {"value": _p(Kind.TEXT)}, "fragment"),
    Message("disputed", "; disputed by the subject, awaiting the answer", {}, "fragment"),
    Message(
        "frozen",
        " Their records stop decaying while they are silent (for at most {value} days).",
        {"value": _p(Kind.INT)},
        "fragment",
    ),
    Message("missing_category", "The {category} records are incomplete: {sources}", {}, "fragment"),
    Message(
        "missing_source",
        "{source} has reported no {types} records as expected (in outage since {since})",
        {},
        "fragment",
    ),
    Message("reviewer", "A Credence reviewer", {}, "fragment"),
    Message("subject_kind.person", "person", {}, "fragment"),
    Message("subject_kind.organisation", "organisation", {}, "fragment"),
    Message("a_subject_kind.person", "A person", {}, "fragment"),
    Message("a_subject_kind.organisation", "An organisation", {}, "fragment"),
    Message("subject_kinds.person", "persons", {}, "fragment"),
    Message("subject_kinds.organisation", "organisations", {}, "fragment"),
    Message(
        "identity_test.same_name_birth_region",
        "the same name, birth or founding date and region",
        {},
        "fragment",
    ),
    Message(
        "identity_test.near_identifier",
        "the same name and an identifier one character or one swap away",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.burst",
        "more positive records from one source about one subject in the rulebook's "
        "window than it allows",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.new_identity",
        "more positive records than the rulebook allows for an identity registered so recently",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.spacing",
        "closer to another record of its type from the same source than its period",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.before_birth",
        "dated before the subject was born or founded",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.identity_voided",
        "about an identity the identity authority voided as fictitious",
        {},
        "fragment",
    ),
    Message(
        "hold_cause.source_suspended",
        "from a source Credence has suspended: its records count only once a reviewer "
        "releases them",
        {},
        "fragment",
    ),
    Message("and", " and ", {}, "fragment"),
    Message("list_sep", ", ", {}, "fragment"),
    Message("clause_sep", "; ", {}, "fragment"),
    Message("sentence_sep", ". ", {}, "fragment"),
    Message("category.government_affairs", "government affairs", {}, "fragment"),
    Message("category.commercial", "commercial", {}, "fragment"),
    Message("category.social", "social", {}, "fragment"),
    Message("category.judicial", "judicial", {}, "fragment"),
)

#: The reasons a decision gives (``Decision.reason_codes``).
REASONS: tuple[Message, ...] = (
    Message("rule_restriction", "{rule}", {"rule": _p(Kind.RULE)}),
    Message("rule_record", "{rule} — " + _CITED, {"rule": _p(Kind.RULE), **_RECORD}),
    Message("record_cited", _CITED, _RECORD),
    Message(
        "score_below_threshold",
        "{rule} Your {categories} score is {score}; this service requires at least {required}.",
        {
            "rule": _p(Kind.RULE),
            "categories": _p(Kind.CATEGORIES),
            "score": _p(Kind.SCORE),
            "required": _p(Kind.SCORE),
        },
    ),
    Message(
        "reward_threshold",
        "Your {categories} score is {score}; {service} starts at {threshold}.",
        {
            "categories": _p(Kind.CATEGORIES),
            "score": _p(Kind.SCORE),
            "service": _p(Kind.SERVICE),
            "threshold": _p(Kind.SCORE),
        },
    ),
    Message(
        "no_negative_records",
        "No negative {categories} records count against you; positive records add "
        "{positive} points so far.",
        {"categories": _p(Kind.CATEGORIES), "positive": _p(Kind.DECIMAL)},
    ),
    Message(
        "outage_incomplete_closed_changed",
        "{missing}. {service} fails closed: it grants no reward while a category it reads "
        "is incomplete, and can answer again once the source reports.",
        {"missing": _p(Kind.MISSING), "service": _p(Kind.SERVICE)},
    ),
    Message(
        "outage_incomplete_closed",
        "{missing}. {service} fails closed: it grants no reward while a category it reads "
        "is incomplete; on the records held it grants none either.{freeze_days}",
        {"missing": _p(Kind.MISSING), "service": _p(Kind.SERVICE), **_FROZEN},
    ),
    Message(
        "outage_incomplete_open",
        "{missing}. {service} fails open: decided on the records held.{freeze_days}",
        {"missing": _p(Kind.MISSING), "service": _p(Kind.SERVICE), **_FROZEN},
    ),
)

#: What a decision warns of (``Decision.warning_codes``), beside the reasons it repeats.
WARNINGS: tuple[Message, ...] = (
    Message(
        "restriction_pending",
        "The subject has been warned: {service} will be restricted from {date} unless this "
        "changes.",
        {"service": _p(Kind.SERVICE), "date": _p(Kind.DATE)},
        "warning",
    ),
)

#: The notifications a subject receives (their ``code``: the notification's kind, or a
#: variant of it).
NOTICES: tuple[Message, ...] = (
    Message(
        "adverse_decision",
        "{service}: denied on {date} (decision {decision}). {reasons} {how_to}",
        {
            "service": _p(Kind.SERVICE),
            "date": _p(Kind.DATE),
            "decision": _p(Kind.ID),
            "reasons": _p(Kind.REASONS),
            "how_to": _p(Kind.HOW_TO),
        },
        "notice",
    ),
    Message(
        "restriction_warning",
        "Warning: from {date}, {service} will be restricted for you. {because} You can "
        "correct this, or dispute a record, before then.",
        {"date": _p(Kind.DATE), "service": _p(Kind.SERVICE), "because": _p(Kind.REASONS)},
        "notice",
    ),
    Message(
        "tier_changed_up",
        "Your tier moved up from {previous} to {tier} (score {score}, rulebook {version}). "
        "Your file lists every record behind it.",
        {
            "previous": _p(Kind.ID),
            "tier": _p(Kind.ID),
            "score": _p(Kind.SCORE),
            "version": _p(Kind.ID),
        },
        "notice",
    ),
    Message(
        "tier_changed_down",
        "Your tier moved down from {previous} to {tier} (score {score}, rulebook {version}). "
        "Your file lists every record behind it.",
        {
            "previous": _p(Kind.ID),
            "tier": _p(Kind.ID),
            "score": _p(Kind.SCORE),
            "version": _p(Kind.ID),
        },
        "notice",
    ),
    Message(
        "repair_applied",
        "Your application {repair} to repair record {record} ({record_type}) was received "
        "and awaits a reviewer's decision.",
        {"repair": _p(Kind.ID), "record": _p(Kind.ID), "record_type": _p(Kind.RECORD_TYPE)},
        "notice",
    ),
    Message(
        "repair_approved",
        "Your application {repair} was approved: record {record} stopped counting on "
        "{date}. Reasons: {reasons}",
        {
            "repair": _p(Kind.ID),
            "record": _p(Kind.ID),
            "date": _p(Kind.DATE),
            "reasons": _p(Kind.TEXT),
        },
        "notice",
    ),
    Message(
        "repair_refused",
        "Your application {repair} to repair record {record} was refused. Reasons: "
        "{reasons} You may apply again.",
        {"repair": _p(Kind.ID), "record": _p(Kind.ID), "reasons": _p(Kind.TEXT)},
        "notice",
    ),
    Message(
        "dispute_opened",
        "Your dispute {dispute} of record {record} ({record_type}, reported by {source}) is "
        "open. {source} must answer by {deadline}; without an answer by then the record "
        "stops counting at that moment. Until the answer the record is marked as disputed "
        "on your file.",
        {
            "dispute": _p(Kind.ID),
            "record": _p(Kind.ID),
            "record_type": _p(Kind.RECORD_TYPE),
            "source": _p(Kind.TEXT),
            "deadline": _p(Kind.INSTANT),
        },
        "notice",
    ),
    Message(
        "dispute_verified",
        "{who} verified record {record} ({record_type}) after your dispute {dispute}: "
        "{explanation} The record stands. You may add a statement to it; a new dispute of "
        "it needs new information.",
        _ANSWER,
        "notice",
    ),
    Message(
        "dispute_corrected",
        "{who} corrected record {record} ({record_type}) after your dispute {dispute}: "
        "{explanation} It stopped counting on {date}; record {corrected} replaces it.",
        {**_ANSWER, "date": _p(Kind.INSTANT), "corrected": _p(Kind.ID)},
        "notice",
    ),
    Message(
        "dispute_deleted",
        "{who} deleted record {record} ({record_type}) after your dispute {dispute}: "
        "{explanation} It stopped counting on {date}.",
        {**_ANSWER, "date": _p(Kind.INSTANT)},
        "notice",
    ),
    Message(
        "records_held_one",
        "{count} record about you received on {date} is held for review ({causes}). A held "
        "record is on your file but counts for nothing until a Credence reviewer releases "
        "it; you will be told of the decision.",
        {"count": _p(Kind.INT), "date": _p(Kind.DATE), "causes": _p(Kind.HOLD_CAUSES)},
        "notice",
    ),
    Message(
        "records_held_many",
        "{count} records about you received on {date} are held for review ({causes}). A "
        "held record is on your file but counts for nothing until a Credence reviewer "
        "releases it; you will be told of the decision.",
        {"count": _p(Kind.INT), "date": _p(Kind.DATE), "causes": _p(Kind.HOLD_CAUSES)},
        "notice",
    ),
    Message(
        "hold_released",
        "A Credence reviewer released record {record}, held since {held_since} ({cause}): "
        "{reason} So it counts from {at}.",
        {
            "record": _p(Kind.ID),
            "held_since": _p(Kind.DATE),
            "cause": _p(Kind.HOLD_CAUSES),
            "reason": _p(Kind.TEXT),
            "at": _p(Kind.INSTANT),
        },
        "notice",
    ),
    Message(
        "hold_rejected",
        "A Credence reviewer rejected record {record}, held since {held_since} ({cause}): "
        "{reason} So it will never count.",
        {
            "record": _p(Kind.ID),
            "held_since": _p(Kind.DATE),
            "cause": _p(Kind.HOLD_CAUSES),
            "reason": _p(Kind.TEXT),
        },
        "notice",
    ),
    Message(
        "identity_distinct",
        "{authority}, your identity authority, checked your registration against file "
        "{other}, which it resembled ({test}), and confirmed on {at} that they are two "
        "different {whats}. Nothing changes on your file. Its reasons: {reason}",
        {**_IDENTITY, "other": _p(Kind.ID), "test": _TEST, "whats": _WHATS},
        "notice",
    ),
    Message(
        "identity_distinct_other",
        "{a_what} registered as file {subject} resembled you ({test}). {authority}, the "
        "identity authority, confirmed on {at} that you are two different {whats}. Nothing "
        "changes on your file. Its reasons: {reason}",
        {**_IDENTITY, "subject": _p(Kind.ID), "a_what": _A_WHAT, "test": _TEST, "whats": _WHATS},
        "notice",
    ),
    Message(
        "identity_merged",
        "{authority}, your identity authority, found on {at} that file {subject} and file "
        "{other} are one {what}, registered twice. From now on file {subject} is read into "
        "file {other} (alias {alias}): its records stay as they were sent and count there. "
        "Its reasons: {reason}",
        {
            **_IDENTITY,
            "subject": _p(Kind.ID),
            "other": _p(Kind.ID),
            "what": _WHAT,
            "alias": _p(Kind.ID),
        },
        "notice",
    ),
    Message(
        "identity_merged_other",
        "{authority}, the identity authority, found on {at} that file {subject}, registered "
        "later, is you, registered twice. From now on it is read into your file (alias "
        "{alias}): its records count on your file. Its reasons: {reason}",
        {**_IDENTITY, "subject": _p(Kind.ID), "alias": _p(Kind.ID)},
        "notice",
    ),
    Message(
        "identity_voided",
        "{authority}, the identity authority, found on {at} that file {subject} is not a "
        "real {what} and voided it as fictitious: records sent about it are held and it can "
        "obtain no decision. If this is wrong, contact {authority}. Its reasons: {reason}",
        {**_IDENTITY, "subject": _p(Kind.ID), "what": _WHAT},
        "notice",
    ),
    Message(
        "identity_voided_other",
        "{a_what} registered as file {subject} resembled you ({test}). {authority}, the "
        "identity authority, found on {at} that it is a fictitious identity and voided it: "
        "records sent about it are held and it can obtain no decision. Its reasons: {reason}",
        {**_IDENTITY, "subject": _p(Kind.ID), "a_what": _A_WHAT, "test": _TEST},
        "notice",
    ),
    Message(
        "subjects_unmerged",
        "{authority}, the identity authority, undid on {at} the merge of file {subject} into "
        "file {into} (alias {alias}): they are two {whats} again, each with its own records. "
        "Its reasons: {reason}",
        {
            **_IDENTITY,
            "subject": _p(Kind.ID),
            "into": _p(Kind.ID),
            "alias": _p(Kind.ID),
            "whats": _WHATS,
        },
        "notice",
    ),
    Message(
        "subjects_unmerged_other",
        "{authority}, the identity authority, undid on {at} the merge of file {subject} into "
        "your file (alias {alias}): its records no longer count on your file. Its reasons: "
        "{reason}",
        {**_IDENTITY, "subject": _p(Kind.ID), "alias": _p(Kind.ID)},
        "notice",
    ),
    Message(
        "dispute_lapsed",
        "{source} did not answer your dispute {dispute} by {deadline}. Record {record} "
        "stopped counting at that moment, as unverifiable. It can come back only if the "
        "source certifies that it is accurate, and you would be told.",
        {
            "source": _p(Kind.TEXT),
            "dispute": _p(Kind.ID),
            "deadline": _p(Kind.INSTANT),
            "record": _p(Kind.ID),
        },
        "notice",
    ),
    Message(
        "record_reinserted",
        "{record_type} (record {reinstates}), removed after your dispute, is back on your "
        "file as record {record} since {date}: {source} certified that it is complete and "
        "accurate. You may dispute it again with new information, and add a statement to it.",
        {
            "record_type": _p(Kind.RECORD_TYPE),
            "reinstates": _p(Kind.ID),
            "record": _p(Kind.ID),
            "date": _p(Kind.DATE),
            "source": _p(Kind.TEXT),
        },
        "notice",
    ),
)

_FACTOR = {"record_type": _p(Kind.RECORD_TYPE), "points": _p(Kind.DECIMAL)}
_FACTORS = {**_FACTOR, "count": _p(Kind.INT)}

#: What moves a score most: a score's reasons (``credence.scoring.online.reasons_for``),
#: one per record type, by the size of its records' effect today.
FACTORS: tuple[Message, ...] = (
    Message(
        "factor_raises",
        "{record_type}: 1 record raises the score by {points} points now",
        _FACTOR,
        "factor",
    ),
    Message(
        "factor_raise",
        "{record_type}: {count} records raise the score by {points} points now",
        _FACTORS,
        "factor",
    ),
    Message(
        "factor_lowers",
        "{record_type}: 1 record lowers the score by {points} points now",
        _FACTOR,
        "factor",
    ),
    Message(
        "factor_lower",
        "{record_type}: {count} records lower the score by {points} points now",
        _FACTORS,
        "factor",
    ),
    Message(
        "factor_bounded",
        "{record_type}: {within} of {count} records count, moving the score by {points} "
        "points now (the type's bound); the rest add nothing",
        {**_FACTORS, "within": _p(Kind.INT)},
        "factor",
    ),
)

#: Every message by its code.
CATALOGUE: dict[str, Message] = {
    m.code: m for m in (*FRAGMENTS, *REASONS, *WARNINGS, *NOTICES, *FACTORS)
}
