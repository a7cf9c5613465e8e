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
Instants are integer microseconds since the epoch; a record whose effect has not ended
has :data:`NOT_ENDED`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from credence.clock import MICROS_PER_DAY

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: The end instant of a record whose effect has not ended.
NOT_ENDED = int(np.iinfo(np.int64).max)
#: A receipt instant before any other (for a column a reader knows needs no check).
RECEIVED_BEFORE_ALL = int(np.iinfo(np.int64).min)

#: The shape of the rule: ``counts(at_us, received_us, ended_us)`` is a mask.
Rule = Callable[[int, IntArray, IntArray], BoolArray]


def _counts(at_us: int, received_us: IntArray, ended_us: IntArray) -> BoolArray:
    """Element-wise: received at or before ``at_us``, and not ended by it."""
    mask: BoolArray = np.less_equal(received_us, at_us)
    np.logical_and(mask, np.greater(ended_us, at_us), out=mask)
    return mask


#: The counting rule (see the module docstring): the one place it is written.
counts: Rule = _counts


def age_days(at_us: int, occurred_us: npt.NDArray[Any]) -> FloatArray:
    """Age of each record at ``at_us``, in days: ``(at_us - occurred_us) / MICROS_PER_DAY``.

    Exact to the last bit: micros below 2^53 convert to float64 exactly, their
    difference is an integer below 2^53 (exact too), and the division is correctly
    rounded. Computed in place in one array (the batch engines call it on millions).
    """
    age = np.asarray(occurred_us).astype(np.float64)
    np.subtract(float(at_us), age, out=age)
    np.divide(age, MICROS_PER_DAY, out=age)
    return age
