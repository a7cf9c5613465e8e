"""Whether a record counts at an instant, and how old it is then: one rule, applied by
every scoring engine (online, batch, columnar, Spark, and so every decision).

A record counts as of instant ``t`` if it was received at or before ``t`` and its effect
had not ended by ``t`` (a retraction, a dispute's outcome or lapse, an approved repair:
:mod:`credence.ledger.endings`). Its age at ``t`` is ``t`` minus when it occurred, in
days. Whether it still weighs anything at that age (its type's retention) is the
formula's part (:mod:`credence.scoring.formula`).

Every engine calls :data:`counts` through this module at run time (the Spark kernel
takes it when built and ships it to its executors), so replacing this one attribute
changes every engine at once; ``tests/scoring/test_one_rule.py`` does exactly that.
The rule compares instants: datetimes (one record: the online path) or integer
microseconds since the epoch (columns: the batch engines); a record whose effect has not
ended has :data:`NEVER` / :data:`NOT_ENDED`.
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


def age_days(at_us: int, occurred_us: npt.NDArray[Any]) -> FloatArray:
    """Age of each record at ``at_us``, in days: ``(at_us - occurred_us) / MICROS_PER_DAY``.

    Exact to the last bit: micros below 2^53 convert to float64 exactly, their
    difference is an integer below 2^53 (exact too), and the division is correctly
    rounded, so one record's age (:func:`age_of`) has the same bits. Computed in place
    in one array (the batch engines call it on millions).
    """
    age = np.asarray(occurred_us).astype(np.float64)
    np.subtract(float(at_us), age, out=age)
    np.divide(age, MICROS_PER_DAY, out=age)
    return age


def age_of(at_us: int, occurred_us: int) -> float:
    """One record's :func:`age_days` (the same bits), for the online path's few records."""
    return (at_us - occurred_us) / MICROS_PER_DAY
