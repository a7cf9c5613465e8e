"""The ledger's endings interface: features above the ledger report how they end
records; a process that has not loaded them refuses to read endings at all, rather than
count a record a dispute deleted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from credence.ledger import endings

ALONE = """
from credence.ledger import endings
try:
    endings.ending_events()
except RuntimeError as refused:
    print("refused:", refused)
else:
    print("read endings without the disputes' sources")
"""


def test_without_the_features_that_end_records_no_ending_is_read() -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", ALONE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.startswith("refused: no ending source for ['dispute_deleted'")


def test_every_cause_has_its_source_once_disputes_are_loaded() -> None:
    import credence.disputes  # noqa: F401 - registers disputes' and repairs' endings

    covered = {cause for source in endings.sources() for cause in source.causes}
    assert covered == set(endings.CAUSE_ORDER)
    assert {s.name for s in endings.sources()} == {"retractions", "voids", "disputes", "repairs"}


def test_a_source_may_only_name_known_causes() -> None:
    stray = endings.EndingSource("stray", frozenset({"mood"}), lambda records: [])
    with pytest.raises(ValueError, match="unknown ending causes"):
        endings.provide(stray)
