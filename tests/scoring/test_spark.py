"""The Spark runner: the same kernel on PySpark, the same scores as the local engine.

Runs Spark in local mode (``local[2]``, 1 GiB, no UI). Skipped only where pyspark or a
Java runtime is missing.
"""

from __future__ import annotations

import math
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from credence.lab.population import generate
from credence.rulebook.loader import default_rulebook
from credence.scoring.columnar import SCORE_SCHEMA, read_scores, score_parquet

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime for Spark", allow_module_level=True)

from credence.scoring import counting
from credence.scoring.spark import score_parquet_spark
from tests.scoring.test_one_rule import NOW as ONE_RULE_NOW
from tests.scoring.test_one_rule import ignores_endings, write_population

pytestmark = [
    pytest.mark.slow,
    # pyspark warns about pandas >= 3 when it builds an Arrow UDF; the scorer uses none.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

BOOK = default_rulebook()
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    generate(
        out,
        subjects=1_500,
        records=30_000,
        seed=23,
        now=NOW,
        rulebook=BOOK,
        part_subjects=500,
        chunk_subjects=250,
    )
    return out


def test_spark_scores_equal_local_scores_for_every_subject(
    spark: Any, pop: Path, tmp_path: Path
) -> None:
    # One test, two instants: pytest-xdist would otherwise start a JVM per worker.
    for days_before in (0, 30):  # now, and before some receipts and endings
        _check_parity(spark, pop, tmp_path / str(days_before), NOW - timedelta(days=days_before))


def _check_parity(spark: Any, pop: Path, tmp_path: Path, at: datetime) -> None:
    local = score_parquet(pop, tmp_path / "local", at=at, rulebook=BOOK)
    remote = score_parquet_spark(pop, tmp_path / "spark", at=at, rulebook=BOOK, spark=spark)
    assert remote.subjects == local.subjects == 1_500
    assert remote.records == local.records == 30_000
    assert remote.counted == local.counted
    assert remote.tiers == local.tiers

    files = list((tmp_path / "spark" / "scores").glob("*.parquet"))
    assert files
    schema = pq.read_schema(files[0])
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in SCORE_SCHEMA]
    a = read_scores(tmp_path / "local").to_pylist()
    b = read_scores(tmp_path / "spark").to_pylist()
    assert len(a) == len(b) == 1_500
    for x, y in zip(a, b, strict=True):
        assert x["subject_id"] == y["subject_id"]
        assert x["tier"] == y["tier"]
        for key in ("total", *(f.name for f in SCORE_SCHEMA if f.type == "double")):
            assert math.isclose(x[key], y[key], rel_tol=1e-9, abs_tol=1e-9), (x, y, key)


def test_spark_follows_the_one_counting_rule(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel ships the counting rule it was built with to the executors: a stub
    rule in the driver (ignoring endings) changes Spark's scores as it changes the
    local scorer's."""
    pop = write_population(tmp_path / "pop")

    def totals(out: Path) -> list[float]:
        score_parquet_spark(pop, out, at=ONE_RULE_NOW, rulebook=BOOK, spark=spark)
        return [row["total"] for row in read_scores(out).to_pylist()]

    real = totals(tmp_path / "real")
    assert real[0] == BOOK.scale.base
    assert real[1] < BOOK.scale.base
    monkeypatch.setattr(counting, "counts", ignores_endings)
    assert totals(tmp_path / "stub") == [real[1], real[1]]
