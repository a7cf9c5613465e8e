"""``credence rulebook check | show | diff`` through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from credence.cli.rulebook import app
from credence.rulebook.loader import DEFAULT_PATH, check_text, content_hash, default_text

runner = CliRunner()
DEFAULT = default_text()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_check_default_passes() -> None:
    result = runner.invoke(app, ["check", str(DEFAULT_PATH)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"OK: version 2026.5, hash {content_hash(DEFAULT)}, 34 record types, 10 services"
    )


def test_check_bad_file_prints_every_problem_and_fails(tmp_path: Path) -> None:
    text = DEFAULT.replace("base = 1000\n", "base = 100\n", 1)
    text = text.replace('evidence = "default_registration"', 'evidence = "certificate"', 1)
    text += (
        '\n[[record_types]]\ncode = "attended_protest"\nname = "Attended a protest"\n'
        'description = "Reported by the police."\ncategory = "social"\n'
        'domain = "traffic_safety"\nstatute = "road_traffic_safety_law"\n'
        'subject_kinds = ["person"]\npoints = -20\nhalf_life_days = 180\n'
        'retention_days = 365\nevidence = "administrative_penalty"\nseverity = "general"\n'
        'name_zh = "参加活动"\ndescription_zh = "由警方报送。"\n'
    )
    bad = write(tmp_path / "bad.toml", text)
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    problems = check_text(text, origin=str(bad))
    assert len(problems) == 3
    lines = result.output.splitlines()
    for problem in problems:
        assert str(problem) in lines
    assert "3 problems" in lines
    assert "OK:" not in result.output


def test_check_syntax_error(tmp_path: Path) -> None:
    bad = write(tmp_path / "broken.toml", 'version = "x\n')
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:1:" in result.output
    assert "TOML syntax error" in result.output


def test_check_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2


def test_show_default() -> None:
    result = runner.invoke(app, ["show", "--db", "sqlite:///:memory:"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert content_hash(DEFAULT) in result.output
    for expected in ("AAA", "judgment_default", "hours (max 200)", "loan_rate_discount"):
        assert expected in result.output


def test_show_file(tmp_path: Path) -> None:
    text = DEFAULT.replace('version = "2026.5"', 'version = "pilot-1"', 1)
    path = write(tmp_path / "pilot.toml", text)
    result = runner.invoke(app, ["show", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "version pilot-1" in result.output
    assert content_hash(text) in result.output


def test_diff_prints_the_change(tmp_path: Path) -> None:
    new_text = DEFAULT.replace("points = -5\n", "points = -8\n", 1).replace(
        'version = "2026.5"', 'version = "2026.9"', 1
    )
    old = write(tmp_path / "old.toml", DEFAULT)
    new = write(tmp_path / "new.toml", new_text)
    result = runner.invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "changed record_type traffic_violation" in lines
    assert "    points: -5.0 -> -8.0" in lines
    assert "    version: '2026.5' -> '2026.9'" in lines


def test_diff_of_same_file_says_no_changes() -> None:
    result = runner.invoke(app, ["diff", str(DEFAULT_PATH), str(DEFAULT_PATH)])
    assert result.exit_code == 0
    assert "No changes." in result.output


def test_diff_refuses_an_invalid_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", DEFAULT.replace("base = 1000\n", "base = 100\n", 1))
    result = runner.invoke(app, ["diff", str(DEFAULT_PATH), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output
    assert "min < base < max" in result.output
