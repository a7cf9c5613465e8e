"""``credence --help`` stays quick: it imports no numpy, SQLAlchemy or pyarrow."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "sqlalchemy", "pyarrow")

#: Runs the console script's app with the given arguments in a fresh interpreter and
#: prints which of the heavy modules it imported.
PROBE = """
import sys
from credence.cli import app
try:
    app(sys.argv[1:], prog_name="credence")
except SystemExit:
    pass
print("loaded:", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["keys", "--help"],
        ["disputes", "list", "--help"],
        ["rulebook", "--help"],
        ["log", "verify", "--help"],
        ["score", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Usage" in done.stdout, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "loaded: ", done.stdout.splitlines()[-1]
