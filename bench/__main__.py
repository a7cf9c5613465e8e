"""``python -m bench`` (``make bench``): every benchmark, one after the other, with its
defaults; ``python -m bench online`` or ``python -m bench batch`` runs one, and options
after a single name go to it (``python -m bench export --subjects 10000 --records
200000``). Each is also a module of its own with its options: ``python -m bench.batch
--help``, ``python -m bench.online --help``, ``python -m bench.ingest --help``,
``python -m bench.verify --help``, ``python -m bench.export --help``. Results are
described in bench/README.md.

``python -m bench.ab --base REV`` (not run from here: it needs a revision) runs the online
benchmark against the working tree and ``REV`` in one run and compares them;
``python -m bench.import_ab --base REV`` does the same for ``credence import``."""

from __future__ import annotations

import sys

from bench import batch, export, ingest, online, verify

BENCHMARKS = {
    "batch": batch.main,
    "online": online.main,
    "ingest": ingest.main,
    "verify": verify.main,
    "export": export.main,
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    names, options = args[:first_option] or list(BENCHMARKS), args[first_option:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {list(BENCHMARKS)}")
    if options and len(names) != 1:
        raise SystemExit("options go to one benchmark: name it first (python -m bench NAME --…)")
    for name in names:
        print(f"=== bench.{name} ===", flush=True)
        BENCHMARKS[name](options)


if __name__ == "__main__":
    main()
