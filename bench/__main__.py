"""``python -m bench`` (``make bench``): every benchmark, one after the other, with its
defaults; ``python -m bench online`` or ``python -m bench batch`` runs one. Each is also
a module of its own with its options: ``python -m bench.batch --help``,
``python -m bench.online --help``, ``python -m bench.ingest --help``,
``python -m bench.verify --help``. Results are
described in bench/README.md.

``python -m bench.ab --base REV`` (not run from here: it needs a revision) runs the online
benchmark against the working tree and ``REV`` in one run and compares them."""

from __future__ import annotations

import sys

from bench import batch, ingest, online, verify

BENCHMARKS = {
    "batch": batch.main,
    "online": online.main,
    "ingest": ingest.main,
    "verify": verify.main,
}


def main(argv: list[str] | None = None) -> None:
    names = (sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"=== bench.{name} ===", flush=True)
        BENCHMARKS[name]([])


if __name__ == "__main__":
    main()
