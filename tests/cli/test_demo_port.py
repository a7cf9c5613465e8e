"""``credence demo`` checks its port before it builds anything; ``make demo PORT=N``
passes the port on."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from credence.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on, for the length of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def test_demo_on_a_busy_port_fails_fast_without_building(busy_port: int, tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    env_file = tmp_path / "demo.env"
    started = time.perf_counter()
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--db",
            f"sqlite:///{database}",
            "--port",
            str(busy_port),
            "--subjects",
            "200",
            "--env-file",
            str(env_file),
        ],
        env={"COLUMNS": "200"},
    )
    seconds = time.perf_counter() - started
    assert result.exit_code == 1, result.output
    assert "port_in_use" in result.output
    assert f"127.0.0.1:{busy_port}" in result.output
    assert "--port" in result.output  # says how to choose another
    assert seconds < 5
    # Nothing was built: no database, no keys, no progress bars.
    assert not database.exists()
    assert not env_file.exists()
    assert "Tier distribution" not in result.output


def make_dry_run(*args: str) -> str:
    """What ``make -n ARGS`` would run, in the repository."""
    return subprocess.run(  # noqa: S603 - make with our own arguments
        ["make", "-n", "-C", str(ROOT), *args],  # noqa: S607 - make from PATH
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_make_demo_passes_its_port() -> None:
    assert "credence demo --reset --port 8123" in make_dry_run("demo", "PORT=8123")
    assert "credence demo --reset --port 8000" in make_dry_run("demo")
