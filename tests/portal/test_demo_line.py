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
    first, second = [line for line in result.output.splitlines() if line.strip()][:2]
    assert first == "Portal (public pages, no sign-in): http://127.0.0.1:8123/"
    # Then how to sign in as the demo subject: where their key is, never the person.
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in (tmp_path / "demo.env").read_text(encoding="utf-8").splitlines()
    )
    assert second == (
        "Your file, as the demo subject: http://127.0.0.1:8123/me/sign-in "
        f"(sign in with CREDENCE_SUBJECT_KEY from {tmp_path / 'demo.env'})"
    )
    assert env["CREDENCE_SUBJECT_KEY"].startswith("cr_sub_")
    assert env["CLEAR_IDENTIFIER"] not in result.output
