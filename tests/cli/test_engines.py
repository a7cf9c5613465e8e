"""A scoring engine that is not installed is refused with the command that installs it.

The Spark engine is the ``spark`` extra (``pip install 'credence[spark]'``); ``make
install`` (the runtime) leaves it out. ``credence score --engine spark`` there must say
so, not end in a ``ModuleNotFoundError`` traceback. The CLI runs in a fresh interpreter
in which ``import pyspark`` fails as it does where pyspark was never installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs the console script's app with the given arguments in a fresh interpreter; with
#: ``hide`` set, the named modules cannot be imported (``None`` in ``sys.modules`` is
#: how Python marks a module as not importable: ``import`` raises
#: ``ModuleNotFoundError`` and ``importlib.util.find_spec`` returns ``None``).
RUN = """
import sys
for name in {hide!r}:
    sys.modules[name] = None
from credence.cli import app
app(sys.argv[1:], prog_name="credence")
"""

INSTALL_SPARK = "pip install 'credence[spark]'"


def credence(*args: str, hide: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", RUN.format(hide=hide), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    made = credence("lab", "generate", "--out", str(out), "--subjects", "20", "--records", "200")
    assert made.returncode == 0, made.stdout + made.stderr
    assert any((out / "records").glob("*.parquet"))
    return out


def test_missing_spark_engine_is_refused_with_its_install_command(
    population: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = credence(
        "score",
        "--input",
        str(population),
        "--out",
        str(out),
        "--engine",
        "spark",
        hide=("pyspark",),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert INSTALL_SPARK in output, output
    assert "spark engine is not installed" in output, output
    assert "Traceback" not in output, output
    assert "ModuleNotFoundError" not in output, output
    assert not (out / "scores").exists() or not any((out / "scores").iterdir())


def test_local_engine_needs_no_extra(population: Path, tmp_path: Path) -> None:
    # The same interpreter without pyspark still scores with the local engine.
    out = tmp_path / "out"
    done = credence(
        "score", "--input", str(population), "--out", str(out), hide=("pyspark", "pandas")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scored 20 subjects" in done.stdout, done.stdout
    assert any((out / "scores").glob("*.parquet"))


def test_engine_check_passes_where_the_engine_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from credence.scoring.engines import EngineNotInstalled, require_engine

    pytest.importorskip("pyspark")
    pytest.importorskip("pandas")
    require_engine("spark")  # installed: no error
    require_engine("local")

    monkeypatch.setitem(sys.modules, "pandas", None)  # pyspark's Arrow path needs pandas
    with pytest.raises(EngineNotInstalled) as refused:
        require_engine("spark")
    assert INSTALL_SPARK in refused.value.message
