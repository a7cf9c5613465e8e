"""Whether a record counts at an instant, and how old it is then: one rule, applied by
every scoring engine (online, batch, columnar, Spark, and so every decision).

A record counts as of instant ``t`` if it was received at or before ``t`` and its effect
had not ended by ``t`` (a retraction, a dispute's outcome or lapse, an approved repair:
:mod:`credence.ledger.endings`). Its age at ``t`` is ``t`` minus when it occurred, in
days, except while the record's source is in outage: **outages are not behaviour**.

A source in outage at ``t`` since ``o`` (:func:`credence.ledger.freshness.outages`, as
of ``t``) freezes the age of all its records over ``[o, b]``, ``b = min(t, o + M)``
with ``M`` the edition's maximum freeze (``max_freeze_days``; an edition without one
never freezes): a record's age is ``(t - occurred) - max(0, b - max(occurred, o))``.
During the first ``M`` days of the outage a record that occurred before it is as old
as it was when the outage began; past them, it ages again (``M`` days younger than its
plain age). The age is never negative for a record that occurred by ``t``, and is the
plain age when the source is not in outage. :func:`freeze` gives the interval of a
source, :data:`frozen` the part of each record's age it takes away; both the decay and
the retention read the age that is left (:func:`age_days`, :func:`age_of`).

Whether a record still weighs anything at its age (its type's retention) is the
formula's part (:mod:`credence.scoring.formula`).

Every engine calls :data:`counts` and :data:`frozen` through this module at run time
(the Spark kernel takes them when built and ships them to its executors), so replacing
one of these attributes changes every engine at once;
``tests/scoring/test_one_rule.py`` does exactly that. The rule compares instants:
datetimes (one record: the online path) or integer microseconds since the epoch
(columns: the batch engines); a record whose effect has not ended has :data:`NEVER` /
:data:`NOT_ENDED`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from credence.clock import MICROS_PER_DAY

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The end instant of a record whose effect has not ended.
NOT_ENDED = int(np.iinfo(np.int64).max)
#: The same, as a datetime (the online path compares its records' instants as they are).
NEVER = datetime.max.replace(tzinfo=UTC)
#: A receipt instant before any other (for a column a reader knows needs no check).
RECEIVED_BEFORE_ALL = int(np.iinfo(np.int64).min)

#: The shape of the rule: ``counts(at, received, ended)``, on instants (datetimes, or
#: microseconds), one record's (a bool) or a column's (arrays: a mask).
Rule = Callable[[Any, Any, Any], Any]


def _counts(at: Any, received: Any, ended: Any) -> Any:
    """Received at or before ``at``, and not ended by it (element-wise on arrays)."""
    return (received <= at) & (ended > at)


#: The counting rule (see the module docstring): the one place it is written.
counts: Rule = _counts


def max_freeze_days(book: Any) -> int | None:
    """How many days at most a source's outage freezes its records' age under ``book``
    (a :class:`~credence.rulebook.model.Rulebook`); None: never (an edition published
    before outages were part of the rulebook)."""
    outages = getattr(book, "outages", None)
    return None if outages is None else int(outages.max_freeze_days)


def freeze(at_us: int, since_us: int | None, max_days: int | None) -> tuple[int, int]:
    """The freeze interval ``(o, b)`` of a source's records scored as of ``at_us``: the
    source in outage at ``at_us`` since ``since_us`` (None: not in outage), for at most
    ``max_days`` (None: an edition that never freezes). ``(at_us, at_us)`` when nothing
    is frozen: :data:`frozen` then takes nothing from any record received by then."""
    if since_us is None or max_days is None or since_us >= at_us:
        return at_us, at_us
    return since_us, min(at_us, since_us + max_days * MICROS_PER_DAY)


def _frozen(occurred_us: Any, start_us: Any, end_us: Any) -> Any:
    """Microseconds of each record's age the freeze ``[start_us, end_us]`` takes away:
    ``max(0, end - max(occurred, start))`` (element-wise on arrays; int64)."""
    return np.maximum(0, np.subtract(end_us, np.maximum(occurred_us, start_us)))


#: The shape of the freeze: ``frozen(occurred, start, end)`` on integer microseconds,
#: one record's or columns (numpy broadcasts a source's interval over its records).
Freeze = Callable[[Any, Any, Any], Any]

#: The freeze of outages (see the module docstring): the one place it is written.
frozen: Freeze = _frozen


def age_days(
    at_us: int, occurred_us: npt.NDArray[Any], frozen_us: npt.NDArray[Any] | None = None
) -> FloatArray:
    """Age of each record at ``at_us``, in days: ``(at_us - occurred_us - frozen_us) /
    MICROS_PER_DAY`` (``frozen_us``: what an outage's freeze takes away, :data:`frozen`;
    None: nothing).

    Exact to the last bit: micros below 2^53 convert to float64 exactly, the difference
    is an integer below 2^53 (exact too, in int64 or in float64), and the division is
    correctly rounded, so one record's age (:func:`age_of`) has the same bits. Computed
    in place in one array (the batch engines call it on millions).
    """
    if frozen_us is None:
        age = np.asarray(occurred_us).astype(np.float64)
        np.subtract(float(at_us), age, out=age)
    else:
        whole = np.subtract(at_us, np.asarray(occurred_us, dtype=np.int64))
        np.subtract(whole, frozen_us, out=whole)
        age = whole.astype(np.float64)
    np.divide(age, MICROS_PER_DAY, out=age)
    return age


def age_of(at_us: int, occurred_us: int, frozen_us: int = 0) -> float:
    """One record's :func:`age_days` (the same bits), for the online path's few records."""
    return (at_us - occurred_us - frozen_us) / MICROS_PER_DAY
