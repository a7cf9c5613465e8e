"""Freshness: how long a new record takes to show in the decisions about its subject.

:func:`bench_freshness` submits a judgment default about a subject whose air travel is
allowed, then asks for the air-travel decision until it is denied; the lag, from the
submission and from its acknowledgement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bench.server import Server, request
from bench.store import Built


def bench_freshness(
    server: Server, built: Built, ids: Sequence[str], samples: int, run_tag: str
) -> dict[str, Any]:
    """Lag from submitting a judgment default to the first decision that reflects it."""
    port = server.port
    party, court = built.manifest["keys"]["party"], built.manifest["keys"]["court"]
    rng = np.random.default_rng(11)
    lags: list[float] = []
    after_ack: list[float] = []
    tries = 0
    while len(lags) < samples and tries < samples * 20:
        tries += 1
        subject = ids[int(rng.integers(len(ids)))]
        ask = {"service": "air_travel", "subject_id": subject}
        status, answer = request(port, "POST", "/v1/decisions", ask, party)
        if status != 200 or answer["outcome"] != "allow":
            continue  # already restricted: pick another subject
        record = {
            "source_ref": f"fresh-{run_tag}-{tries}",
            "subject_id": subject,
            "record_type": "judgment_default",
            "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "decision_ref": f"(2026)Lu10Zhi{run_tag}{tries}",
        }
        sent = time.perf_counter()
        status, answer = request(port, "POST", "/v1/records", {"records": [record]}, court)
        acked = time.perf_counter()
        if status != 200 or answer["created"] != 1:
            raise SystemExit(f"freshness: the record was not created ({status}): {answer}")
        deadline = acked + 10.0
        while True:
            status, answer = request(port, "POST", "/v1/decisions", ask, party)
            now = time.perf_counter()
            if status == 200 and answer["outcome"] == "deny":
                lags.append((now - sent) * 1000)
                after_ack.append((now - acked) * 1000)
                break
            if now > deadline:
                raise SystemExit("freshness: the record was not reflected within 10 s")
    return {
        "samples": len(lags),
        "median_ms": statistics.median(lags),
        "max_ms": max(lags),
        "median_after_ack_ms": statistics.median(after_ack),
    }
