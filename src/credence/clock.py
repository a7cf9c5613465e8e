"""The one clock the whole system reads, and the range of instants Credence takes.

Every "now" in Credence (received_at of a record, the instant a score is computed,
dispute deadlines) comes from a :class:`Clock`, so tests can freeze and move time.

Every instant Credence is given (a record's ``occurred_at``, a score's ``as_of``, a
key's ``expires_at``, a date on the command line) lies in
[:data:`EARLIEST`, :data:`LATEST`) in UTC: :func:`ensure_utc` refuses any other with
:class:`~credence.errors.InvalidInput` (an instant near the ends of what ``datetime``
can hold would overflow on the way to UTC, or in the arithmetic done with it later), and
:data:`Instant` is the type of every date-time a request carries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from credence.errors import InvalidInput


class Clock(Protocol):
    """Something that tells the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved; for tests and reproducible runs."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = ensure_utc(at)

    def advance(self, delta: timedelta) -> None:
        self._at = self._at + delta


#: The first instant Credence takes (UTC).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
#: The first instant past those Credence takes (UTC): centuries from any real date, and
#: a millennium from the end of what ``datetime`` holds, so arithmetic never overflows.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

OUT_OF_RANGE = "must lie between 1900-01-01T00:00Z and 9000-01-01T00:00Z (in UTC)"


def out_of_range(what: str = "a date and time") -> InvalidInput:
    """The refusal of an instant outside [EARLIEST, LATEST) (it never quotes the value)."""
    return InvalidInput(f"{what} {OUT_OF_RANGE}", code="instant_out_of_range")


def ensure_utc(at: datetime, what: str = "a date and time") -> datetime:
    """Return ``at`` as an aware UTC datetime; naive values are taken to be UTC.

    An instant outside [:data:`EARLIEST`, :data:`LATEST`) in UTC, however it is written
    (year 1 at +14:00 has no UTC form at all), is refused with
    :class:`~credence.errors.InvalidInput` naming ``what``."""
    if at.tzinfo is None:
        utc = at.replace(tzinfo=UTC)
    else:
        try:
            utc = at.astimezone(UTC)
        except OverflowError:
            raise out_of_range(what) from None
    if not EARLIEST <= utc < LATEST:
        raise out_of_range(what)
    return utc


def _instant(at: datetime) -> datetime:
    try:
        return ensure_utc(at)
    except InvalidInput:
        # A validation error of the field (the API names the field, in a 422).
        raise PydanticCustomError("instant_out_of_range", OUT_OF_RANGE) from None


Instant = Annotated[datetime, AfterValidator(_instant)]
"""A date-time a request carries: ISO 8601, with an offset or, without one, in UTC;
converted to UTC; refused (a validation error of its field) outside [EARLIEST, LATEST)."""


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY = 86_400_000_000


_MICROSECOND = timedelta(microseconds=1)
#: What :func:`from_micros` can turn back into a datetime: years 1 to 9999 in UTC.
_MIN_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // _MICROSECOND
_MAX_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // _MICROSECOND


def to_micros(at: datetime) -> int:
    """Microseconds since the Unix epoch, exact (naive values are UTC). An instant with
    no UTC form (year 1 at +14:00) is refused with :class:`~credence.errors.InvalidInput`:
    it could be stored, but not read back."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    us = (at - EPOCH) // _MICROSECOND
    if not _MIN_US <= us <= _MAX_US:
        raise InvalidInput(
            "a date and time lies outside the years 1 to 9999 in UTC", code="instant_out_of_range"
        )
    return us


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
