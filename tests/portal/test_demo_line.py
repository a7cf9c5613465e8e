"""``credence demo`` (``make demo``) names the portal first."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from credence.cli import app


def test_the_demo_prints_the_portal_url_first(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(
        app,
        [
            *("demo", "--db", db, "--subjects", "40", "--records", "400", "--no-serve"),
            *("--port", "8123", "--env-file", str(tmp_path / "demo.env")),
        ],
        env={"COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.output
    first = next(line for line in result.output.splitlines() if line.strip())
    assert first == "Portal (public pages, no sign-in): http://127.0.0.1:8123/"
