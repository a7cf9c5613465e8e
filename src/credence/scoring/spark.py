"""The batch scorer on Apache Spark: the same numpy kernel, a nation's worth of records.

Spark reads the records Parquet (as :mod:`credence.lab.population` writes it, or any
export with the same columns) and hands each task's rows to Python as Arrow record
batches (``mapInArrow``). Each batch goes through the local runner's
:class:`~credence.scoring.columnar.Kernel`, so the record selection and the formula are
the very code the local engine and the online path run. The kernel yields per-subject
tallies (:func:`~credence.scoring.formula.tally`); tallies are additive, so Spark adds
them up per subject across batches and partitions (a group-by), every subject of
``subjects/`` is joined in (one with no record scores the base), and a second
``mapInArrow`` turns tallies into scores with
:func:`~credence.scoring.columnar.score_table` (the formula's ``finish``). Scores are
written as Parquet with :data:`~credence.scoring.columnar.SCORE_SCHEMA`.

Merges (an export's ``aliases``, :func:`~credence.scoring.layout.aliases_at`) are read
as of the instant scored: before the group-by, each partial tally of an alias in force
is relabelled with the subject it is read into (a broadcast join with the few aliases),
so that file's tally is that of both subjects' records; every alias then takes the
score of the file it is read into. Without aliases the plan is as it was.

Results equal the local engine's to float rounding (≤ 1e-9 relative): only the order
in which partial tallies of a subject are added differs.

Local mode (``local[2]``) serves tests and one machine; point ``master`` at a cluster
(or pass a ``SparkSession``) for a nation.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credence.clock import ensure_utc, from_micros, to_micros
from credence.rulebook.model import Rulebook
from credence.rulebook.store import Edition
from credence.scoring.columnar import (
    SUB_SCORE_COLUMNS,
    ColumnarSummary,
    Kernel,
    _types_of,
    arrow,
    as_numpy,
    discover,
    score_table,
    tier_counts,
)
from credence.scoring.layout import (
    RECORD_COLUMNS,
    RECORDS_DIR,
    SCORES_DIR,
    SUBJECTS_DIR,
    aliases_at,
    freezes_at,
)

#: Rows per Arrow batch Spark sends to the kernel: as large as the local runner's
#: batches, so per-batch overhead stays small.
ARROW_BATCH_RECORDS = 1 << 17

_SCORES_DDL = (
    "subject_id long, total double, "
    + ", ".join(f"{c} double" for c in SUB_SCORE_COLUMNS)
    + ", tier string"
)

_LOG_CONFIG = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _log_config() -> str:
    # Spark logs INFO and WARN lines at every start; batch jobs and tests want errors only.
    path = Path(tempfile.gettempdir()) / "credence-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG_CONFIG:
        path.write_text(_LOG_CONFIG)
    return str(path)


def spark_session(
    master: str = "local[2]",
    *,
    memory: str = "1g",
    shuffle_partitions: int = 4,
    app_name: str = "credence-batch",
) -> SparkSession:
    """A Spark session set up for the scorer: Python workers run this interpreter (so
    they import credence), no UI, errors-only logs, Arrow batches of
    :data:`ARROW_BATCH_RECORDS` rows."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    java_options = f"-Dlog4j.configurationFile=file:{_log_config()}"
    session = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", memory)
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", java_options)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_RECORDS))
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _partial_sums(kernel: Kernel, counted: Accumulator[int] | None = None) -> Any:
    """The ``mapInArrow`` function: records in, per-subject tallies out; adds
    the number of records that counted to ``counted``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            got = kernel.sums(batch, compact=True)
            if counted is not None:
                counted.add(got.counted)
            if got.sums.shape[0] == 0:
                continue
            yield pa.RecordBatch.from_arrays(
                [
                    arrow(got.subject_ids()),
                    *(arrow(got.sums[:, j]) for j in range(got.sums.shape[1])),
                ],
                names=["subject_id", *_tally_columns(got.sums.shape[1])],
            )

    return run


def _tally_columns(width: int) -> list[str]:
    """Names of the tally's columns in Spark's frames (``t0``, ``t1``, …)."""
    return [f"t{j}" for j in range(width)]


def _finish(rulebook: Rulebook) -> Any:
    """The ``mapInArrow`` function: per-subject tallies in, scores out."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            ids = as_numpy(batch.column(0)).astype(np.int64, copy=False)
            # Column by column, as the formula keeps a tally.
            sums = (
                np.stack([as_numpy(batch.column(j + 1)) for j in range(batch.num_columns - 1)])
                .astype(np.float64, copy=False)
                .T
            )
            yield from score_table(ids, sums, rulebook).to_batches()

    return run


def scores_frame(
    spark: SparkSession,
    input_dir: Path,
    *,
    at_us: int,
    rulebook: Rulebook | Edition,
    counted: Accumulator[int] | None = None,
) -> DataFrame:
    """The scores of every subject under ``input_dir`` as a Spark DataFrame
    (:data:`~credence.scoring.columnar.SCORE_SCHEMA` columns), not yet computed;
    ``counted`` (if given) collects how many records counted once it is."""
    book, types = _types_of(rulebook)
    # The sources in outage at the instant and their freeze, worked out on the driver
    # (a few rows) and shipped with the kernel.
    freezes = freezes_at(input_dir, from_micros(at_us), book)
    kernel = Kernel(types, at_us, freezes=freezes)
    records = spark.read.parquet(str(input_dir / RECORDS_DIR))
    wanted = (*RECORD_COLUMNS, *kernel.extra_columns)
    present = [c for c in wanted if c in records.columns]
    columns = _tally_columns(types.width)
    ddl = "subject_id long, " + ", ".join(f"{c} double" for c in columns)
    partial = records.select(*present).mapInArrow(_partial_sums(kernel, counted), ddl)
    subjects = spark.read.parquet(str(input_dir / SUBJECTS_DIR)).select("subject_id")
    aliases = aliases_at(input_dir, at_us)
    if aliases:
        # One file per merge: an alias's partial tallies count as the file's it is read
        # into (tallies add), and each alias is scored as that file.
        into = F.broadcast(
            spark.createDataFrame(list(aliases.items()), "subject_id long, into long")
        )
        partial = partial.join(into, "subject_id", "left").select(
            F.coalesce("into", "subject_id").alias("subject_id"), *columns
        )
        subjects = subjects.join(into, "subject_id", "left").select(
            "subject_id", F.coalesce("into", "subject_id").alias("file")
        )
    # Tallies are additive: a subject's partial tallies from every batch and partition
    # add up to the tally of all their records.
    summed = partial.groupBy("subject_id").agg(*(F.sum(c).alias(c) for c in columns))
    if aliases:
        summed = summed.withColumnRenamed("subject_id", "file")
        everyone = subjects.join(summed, "file", "left").select("subject_id", *columns)
    else:
        everyone = subjects.join(summed, "subject_id", "left")
    everyone = everyone.fillna(0.0, subset=columns)
    return everyone.mapInArrow(_finish(book), _SCORES_DDL)


def score_parquet_spark(
    input_dir: Path,
    out_dir: Path,
    *,
    at: datetime,
    rulebook: Rulebook | Edition,
    master: str = "local[2]",
    spark: SparkSession | None = None,
) -> ColumnarSummary:
    """Score every subject under ``input_dir`` as of ``at`` on Spark and write
    ``out_dir/scores/`` (Parquet, :data:`~credence.scoring.columnar.SCORE_SCHEMA`).

    Uses ``spark`` if given (and leaves it running), else starts a session on ``master``
    and stops it at the end.
    """
    started = time.perf_counter()
    at = ensure_utc(at)
    book, _ = _types_of(rulebook)
    parts = discover(input_dir)
    own = spark is None
    session = spark if spark is not None else spark_session(master)
    try:
        with warnings.catch_warnings():
            # pyspark warns about pandas >= 3 on every Arrow UDF; the scorer uses no pandas.
            warnings.filterwarnings("ignore", message=".*pandas.*", category=FutureWarning)
            counted = session.sparkContext.accumulator(0)
            frame = scores_frame(
                session, input_dir, at_us=to_micros(at), rulebook=rulebook, counted=counted
            )
            (
                frame.sortWithinPartitions("subject_id")
                .write.mode("overwrite")
                .parquet(str(out_dir / SCORES_DIR))
            )
    finally:
        if own:
            session.stop()
    tiers = pq.read_table(out_dir / SCORES_DIR, columns=["tier"]).column("tier")
    return ColumnarSummary(
        subjects=sum(p.subjects for p in parts),
        records=sum(p.record_count for p in parts),
        counted=int(counted.value),
        parts=len(parts),
        tiers=tier_counts(tiers, book),
        seconds=time.perf_counter() - started,
        as_of=at,
        rulebook_version=book.version,
        out_dir=out_dir,
        engine="spark",
        frozen=freezes_at(input_dir, at, book),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``spark-submit``: score a Parquet population on the cluster the
    session is submitted to (its master comes from spark-submit, not from here)."""
    import argparse

    from credence.clock import SystemClock
    from credence.scoring import layout

    parser = argparse.ArgumentParser(
        prog="credence.scoring.spark", description="Score a Parquet population on Spark."
    )
    parser.add_argument("--input", required=True, type=Path, help="population folder")
    parser.add_argument("--out", required=True, type=Path, help="where scores/ is written")
    parser.add_argument("--at", help="instant (ISO 8601); default: the population's own")
    parser.add_argument(
        "--rulebook",
        help="rulebook file or a version the input carries; default: the edition in force",
    )
    args = parser.parse_args(argv)
    if args.at:
        at = ensure_utc(datetime.fromisoformat(args.at))
    else:
        at = layout.instant_of(args.input) or SystemClock().now()
    applied = layout.applicable(args.input, at, args.rulebook)
    session = SparkSession.builder.appName("credence-batch").getOrCreate()
    try:
        summary = score_parquet_spark(
            args.input, args.out, at=at, rulebook=applied.rulebook, spark=session
        )
    finally:
        session.stop()
    path = layout.write_run(args.out, args.input, applied, summary.as_json())
    print(path.read_text(encoding="utf-8"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
