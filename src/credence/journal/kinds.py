"""What a journal entry records: one :class:`EventKind` per kind of step in the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class EventKind(StrEnum):
    """The kind of a journal entry, stored as its value in ``journal.kind``.

    Every kind a feature appends is a member; :func:`credence.journal.append` refuses
    anything else. What each records is in :data:`DESCRIPTIONS`.
    """

    SOURCE_REGISTERED = "source_registered"
    SOURCE_CADENCE_DECLARED = "source_cadence_declared"
    SOURCE_SUSPENDED = "source_suspended"
    SOURCE_REINSTATED = "source_reinstated"
    SOURCE_ALERT_RAISED = "source_alert_raised"
    SOURCE_ALERT_ACKNOWLEDGED = "source_alert_acknowledged"
    SOURCE_ALERT_CLOSED = "source_alert_closed"
    SUBJECT_REGISTERED = "subject_registered"
    RECORD = "record"
    RECORD_REINSERTED = "record_reinserted"
    RETRACTION = "retraction"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_ANSWERED = "dispute_answered"
    RECORD_CORRECTED = "record_corrected"
    DISPUTE_LAPSED = "dispute_lapsed"
    STATEMENT_ADDED = "statement_added"
    REPAIR_APPLIED = "repair_applied"
    REPAIR_DECIDED = "repair_decided"
    KEY_ISSUED = "key_issued"
    KEY_REVOKED = "key_revoked"
    RULEBOOK_PUBLISHED = "rulebook_published"
    TIER_CHANGED = "tier_changed"
    WARNING_ISSUED = "warning_issued"
    WARNING_CLEARED = "warning_cleared"
    PARTY_REGISTERED = "party_registered"
    PRINCIPAL_CREATED = "principal_created"
    RECORD_ERASED = "record_erased"
    PENDING_CHANGE_REQUESTED = "pending_change_requested"
    PENDING_CHANGE_CONFIRMED = "pending_change_confirmed"
    PENDING_CHANGE_REFUSED = "pending_change_refused"
    PENDING_CHANGE_SUPERSEDED = "pending_change_superseded"
    RECORDS_HELD = "records_held"
    HOLD_RELEASED = "hold_released"
    HOLD_REJECTED = "hold_rejected"
    BACKFILL_APPROVED = "backfill_approved"
    BACKFILL_DELIVERED = "backfill_delivered"
    OUTAGE_CATCH_UP_OPENED = "outage_catch_up_opened"
    IDENTITY_FLAGGED = "identity_flagged"
    IDENTITY_CONFIRMED_DISTINCT = "identity_confirmed_distinct"
    SUBJECTS_MERGED = "subjects_merged"
    SUBJECTS_UNMERGED = "subjects_unmerged"
    IDENTITY_VOIDED = "identity_voided"
    LOG_CONTINUED = "log_continued"
    CARRIED_OVER = "carried_over"

    @property
    def description(self) -> str:
        """What an entry of this kind records (:data:`DESCRIPTIONS`)."""
        return DESCRIPTIONS[self]


DESCRIPTIONS: Mapping[EventKind, str] = MappingProxyType(
    {
        EventKind.SOURCE_REGISTERED: (
            "A source registered: its code, name, kind, record types, the cadence it "
            "declares for each type it reports regularly and the identity authority it "
            "holds, if any."
        ),
        EventKind.SOURCE_CADENCE_DECLARED: (
            "A source's cadence for record types declared anew: how often it reports "
            "each and the grace after it, in force from this instant (the rows it "
            "replaces stay, for status as of any earlier instant)."
        ),
        EventKind.SOURCE_SUSPENDED: (
            "A source suspended by an operator, with a reason from the catalogue (and the "
            "digest of a legal order's reference): its records received from now on are "
            "held for review."
        ),
        EventKind.SOURCE_REINSTATED: (
            "A source's suspension ended by an operator: its records received from now on "
            "count as usual; those held during the suspension stay held for a reviewer."
        ),
        EventKind.SOURCE_ALERT_RAISED: (
            "An alert about a source's day raised by the scan of sources: the detector "
            "that fired and the figures that fired it (no subject), open in the "
            "operators' queue."
        ),
        EventKind.SOURCE_ALERT_ACKNOWLEDGED: (
            "A source alert acknowledged by an operator, with a note (its digest)."
        ),
        EventKind.SOURCE_ALERT_CLOSED: (
            "A source alert closed by an operator, with a note (its digest)."
        ),
        EventKind.SUBJECT_REGISTERED: (
            "A subject registered by an identity authority: public id and kind (never "
            "the national identifier or the name)."
        ),
        EventKind.RECORD: (
            "A record a source submitted (through the API, an import or the lab): every "
            "field that defines it."
        ),
        EventKind.RECORD_REINSERTED: (
            "A record that repeats one deleted after a dispute, reinserted because its "
            "source certified it complete and accurate."
        ),
        EventKind.RETRACTION: "A source withdrew one of its records, with its reason.",
        EventKind.DISPUTE_OPENED: (
            "A subject disputed a record: the source that must answer, the deadline, and "
            "digests of the reason and of any new information."
        ),
        EventKind.DISPUTE_ANSWERED: (
            "A source or reviewer answered a dispute (verified, corrected or deleted), "
            "with a digest of the explanation."
        ),
        EventKind.RECORD_CORRECTED: (
            "A record replaced by the correction its source sent in answer to a dispute."
        ),
        EventKind.DISPUTE_LAPSED: (
            "A dispute left unanswered at its deadline: the record stopped counting then."
        ),
        EventKind.STATEMENT_ADDED: (
            "A subject attached a statement to a record on their file (its digest)."
        ),
        EventKind.REPAIR_APPLIED: (
            "A subject applied for early credit repair of a negative record, with the "
            "records that evidence the correction."
        ),
        EventKind.REPAIR_DECIDED: (
            "A reviewer approved or refused a repair application (approval ends the "
            "record's effect), with a digest of the reasons."
        ),
        EventKind.KEY_ISSUED: (
            "An API key issued to a principal: its prefix, role, expiry and the key a "
            "rotation replaces (never the key)."
        ),
        EventKind.KEY_REVOKED: "An API key revoked, and from when it is refused.",
        EventKind.RULEBOOK_PUBLISHED: (
            "A rulebook edition published: its version, SHA-256 and publication instant."
        ),
        EventKind.TIER_CHANGED: (
            "A subject's shown tier moved: from, to, the total behind it and the rulebook."
        ),
        EventKind.WARNING_ISSUED: (
            "A subject warned that a restriction will apply from a date (warn before punishing)."
        ),
        EventKind.WARNING_CLEARED: (
            "A restriction warning cleared: the subject is no longer caught by it."
        ),
        EventKind.PARTY_REGISTERED: (
            "A relying party registered, with the services it may ask decisions for."
        ),
        EventKind.PRINCIPAL_CREATED: (
            "A principal (who holds API keys) created: its role and what it acts for."
        ),
        EventKind.RECORD_ERASED: (
            "A record's content erased (retention ended, a dispute deleted it, or a "
            "repair): the row keeps its id, subject and place in the log; why and when "
            "are in the erasure row the entry lists."
        ),
        EventKind.PENDING_CHANGE_REQUESTED: (
            "A change that would lift a sanction (a retraction, or a dispute answered "
            "deleted or corrected, of a record that restricts someone) held for a second "
            "reviewer's confirmation: the record, the kind, who asked and a digest of the "
            "reason. The record keeps counting."
        ),
        EventKind.PENDING_CHANGE_CONFIRMED: (
            "A reviewer other than whoever asked confirmed a held change: its ending (the "
            "retraction, or the dispute's answer and any corrected record) was written "
            "by the entries just before, at this instant. A digest of the reasons."
        ),
        EventKind.PENDING_CHANGE_REFUSED: (
            "A reviewer refused a held change, with a digest of the reasons: the record "
            "keeps counting."
        ),
        EventKind.PENDING_CHANGE_SUPERSEDED: (
            "A held change closed unconfirmed because the record's effect ended first by "
            "another cause (a dispute's deadline passed: the lapse wins)."
        ),
        EventKind.RECORDS_HELD: (
            "Records stored but held at intake (a burst from one source, a new identity's "
            "positives beyond the rulebook's limit, a voided identity): the hold rows the "
            "entry lists, each with its record and cause. A held record counts in no "
            "engine until a reviewer releases it."
        ),
        EventKind.HOLD_RELEASED: (
            "A reviewer released a held record: it counts from this instant. A digest of "
            "the reasons."
        ),
        EventKind.HOLD_REJECTED: (
            "A reviewer rejected a held record: it never counts. A digest of the reasons."
        ),
        EventKind.BACKFILL_APPROVED: (
            "An operator approved a backfill run for a source: the period its records may "
            "have occurred in and the expected volume. Its records are exempt from the "
            "burst and new-identity limits, never from plausibility."
        ),
        EventKind.BACKFILL_DELIVERED: (
            "A batch delivered under a backfill run (approved, or an outage's catch-up): "
            "how many of its records the run's scope exempted."
        ),
        EventKind.OUTAGE_CATCH_UP_OPENED: (
            "A source in outage reported again, and intake opened its catch-up run: the "
            "record types in outage, since when, the period the missed records occurred "
            "in and the volume missed at the source's usual rate. Those records are "
            "exempt from the burst limit only (a batch's use is a backfill_delivered "
            "entry), never from the new-identity limit or plausibility."
        ),
        EventKind.IDENTITY_FLAGGED: (
            "A subject registered but flagged for the identity authority as a probable "
            "duplicate of another (same name, birth date and region, or an identifier "
            "one digit or one transposition away): the flag, the two public ids and the "
            "test that matched (never a name or an identifier)."
        ),
        EventKind.IDENTITY_CONFIRMED_DISTINCT: (
            "The identity authority confirmed a flagged subject and the other distinct "
            "persons or organisations: the flag, both public ids, the authority and a "
            "digest of its reasons. Nothing changes on either file."
        ),
        EventKind.SUBJECTS_MERGED: (
            "The identity authority found two subjects to be one: the alias and the file "
            "it is read into from this instant, and a digest of its reasons. Records stay "
            "as stored; every engine reads the alias."
        ),
        EventKind.SUBJECTS_UNMERGED: (
            "A merge undone by the identity authority: the alias is read as a file of its "
            "own again from this instant. A digest of the reasons."
        ),
        EventKind.IDENTITY_VOIDED: (
            "The identity authority voided a flagged subject as fictitious, for good: "
            "its records stop counting at this instant in every engine, records sent "
            "about it later are held, and it can obtain no decision; the real person (the "
            "flag's other subject) is told. A digest of the reasons."
        ),
        EventKind.LOG_CONTINUED: (
            "The first entry of a log that continues an earlier one: the earlier log's "
            "origin, its last signed checkpoint and the tree head of all its entries."
        ),
        EventKind.CARRIED_OVER: (
            "A row written before the log continued, carried over into the new log "
            "unchanged (its digest is the new log's commitment to it)."
        ),
    }
)
